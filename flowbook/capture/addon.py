"""The mitmproxy addon: detect LLM calls, tee streamed bodies, hand everything to the recorder.

Runs on the proxy's event loop, so every hook does the least it can: stamp a time, build a
:class:`RequestView`, ask the :class:`~flowbook.capture.detection.CallDetector`, and queue the
rest. Streamed responses are
forwarded chunk by chunk unchanged (``flow.response.stream`` returns each chunk as it came);
the tee only records the chunk and its arrival time.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from flowbook.capture.detection import CallDetector
from flowbook.capture.recorder import FlowRecorder
from flowbook.providers.base import Detection, Provider, RequestView

if TYPE_CHECKING:
    from flowbook.intercept import InterceptController

_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_STREAM_TYPES = ("text/event-stream", "vnd.amazon.eventstream", "ndjson", "jsonl")
_CANCEL_MESSAGES = ("client disconnected", "connection killed")

META_KEY = "flowbook_id"


class StreamTee:
    """``flow.response.stream`` callable: forward each chunk unchanged, record a copy."""

    __slots__ = ("ended", "flow_id", "recorder")

    def __init__(self, recorder: FlowRecorder, flow_id: str) -> None:
        self.recorder = recorder
        self.flow_id = flow_id
        self.ended = False

    def __call__(self, data: bytes) -> bytes:
        t = time.time()
        if data:
            self.recorder.chunk(self.flow_id, t, data)
        else:
            self.end(t)
        return data

    def end(self, t: float) -> None:
        if not self.ended:
            self.ended = True
            self.recorder.response_end(self.flow_id, t, None)


def flow_id_of(flow: http.HTTPFlow) -> str:
    """The id flowbook gives a mitmproxy flow (the same in every process that sees it)."""
    return flow.id.replace("-", "")[:16]


def request_view(flow: http.HTTPFlow) -> RequestView:
    req = flow.request
    headers: dict[str, str] = {}
    for k, v in req.headers.items(multi=True):
        k = k.lower()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    body = req.get_content(strict=False) or b""
    return RequestView(
        method=req.method,
        url=req.pretty_url,
        host=req.pretty_host,
        path=req.path,
        headers=headers,
        body=body,
        port=req.port,
    )


def looks_streamed(flow: http.HTTPFlow) -> bool:
    """Should this response be streamed through (never buffered)?"""
    assert flow.response is not None
    ct = flow.response.headers.get("content-type", "").lower()
    if any(s in ct for s in _STREAM_TYPES):
        return True
    path = flow.request.path
    if (
        "streamGenerateContent" in path
        or "converse-stream" in path
        or "invoke-with-response-stream" in path
    ):
        return True
    raw = flow.request.raw_content or b""
    return bool(raw) and b'"stream"' in raw and _STREAM_FLAG.search(raw) is not None


class FlowbookAddon:
    """Hooks mitmproxy calls for every flow."""

    def __init__(
        self,
        recorder: FlowRecorder,
        interceptor: InterceptController | None = None,
        host: Any = None,
    ) -> None:
        self.recorder = recorder
        self.interceptor = interceptor
        self.intercept_host = host
        self.detector = CallDetector()
        self.ready = threading.Event()

    def running(self) -> None:
        self.ready.set()

    # The hooks return a coroutine only when they must wait (an interception): mitmproxy awaits
    # what a hook returns only when it is awaitable, and a coroutine per request and response
    # would cost every flow on the proxy's loop.

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        created = flow.request.timestamp_start or time.time()
        view = request_view(flow)
        found = self.detector.detect(view)
        if found is None:
            return None
        provider, detection = found
        client = flow.client_conn.peername
        client_addr = f"{client[0]}:{client[1]}" if client else None
        return self.record_request(flow, view, provider, detection, created, client_addr)

    def record_request(
        self,
        flow: http.HTTPFlow,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        created: float,
        client_addr: str | None,
    ) -> Awaitable[None] | None:
        """Record a detected LLM request; a coroutine when interception may pause it."""
        flow_id = flow_id_of(flow)
        flow.metadata[META_KEY] = flow_id
        ic = self.interceptor
        if ic is not None and ic.active():
            return self._intercept_request(
                ic, flow, flow_id, view, provider, detection, created, client_addr
            )
        self.recorder.begin(
            flow_id, view, provider, detection, created=created, client_address=client_addr
        )
        self.recorder.request_sent(flow_id, time.time())
        return None

    async def _intercept_request(
        self,
        ic: InterceptController,
        flow: http.HTTPFlow,
        flow_id: str,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        created: float,
        client_addr: str | None,
    ) -> None:
        llm = self.recorder.begin(
            flow_id,
            view,
            provider,
            detection,
            created=created,
            client_address=client_addr,
            parse_now=True,
        )
        assert llm is not None
        before = flow.request.get_content(strict=False)
        before_headers = flow.request.headers.copy()
        await ic.on_request(flow, llm, self.intercept_host)
        changed = None
        if (
            flow.request.get_content(strict=False) != before
            or flow.request.headers != before_headers
        ):
            changed = request_view(flow)
        self.recorder.request_sent(flow_id, time.time(), changed)
        if flow.response is not None:  # mocked / blocked / dropped before upstream
            self._mocked(flow, flow_id)

    def _mocked(self, flow: http.HTTPFlow, flow_id: str) -> None:
        # A response set in the request hook never reaches responseheaders; record it here.
        resp = flow.response
        assert resp is not None
        flow.metadata["flowbook_mocked"] = True
        now = time.time()
        self.recorder.response_headers(
            flow_id, now, resp.status_code, resp.reason, _headers(resp.headers), False
        )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        flow_id = flow.metadata.get(META_KEY)
        streamed = looks_streamed(flow)
        if flow_id is None:
            if streamed:
                resp.stream = True  # not an LLM call, but never buffer a stream either
            return
        ic = self.interceptor
        if ic is not None and ic.active() and ic.wants_response(flow, None):
            streamed_for_client = streamed
            streamed = False  # buffer: the whole response is paused and can be edited
            flow.metadata["flowbook_client_stream"] = streamed_for_client
        t = time.time()
        self.recorder.response_headers(
            flow_id, t, resp.status_code, resp.reason, _headers(resp.headers), streamed
        )
        if streamed:
            resp.stream = StreamTee(self.recorder, flow_id)

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        flow_id = flow.metadata.get(META_KEY)
        if flow_id is None:
            return None
        resp = flow.response
        assert resp is not None
        if isinstance(resp.stream, StreamTee):
            # Normally the tee saw the end already; a body-less response never reaches it.
            resp.stream.end(resp.timestamp_end or time.time())
            return None
        ic = self.interceptor
        if (
            ic is not None
            and ic.active()
            and not flow.metadata.get("flowbook_mocked")
            and ic.wants_response(flow, None)
        ):
            return self._intercept_response(ic, flow, flow_id, resp)
        self.recorder.response_end(flow_id, resp.timestamp_end or time.time(), resp.raw_content)
        return None

    async def _intercept_response(
        self, ic: InterceptController, flow: http.HTTPFlow, flow_id: str, resp: http.Response
    ) -> None:
        await ic.on_response(flow, None, self.intercept_host)  # edits ``resp`` in place
        self.recorder.response_end(flow_id, resp.timestamp_end or time.time(), resp.raw_content)

    def error(self, flow: http.HTTPFlow) -> None:
        flow_id = flow.metadata.get(META_KEY)
        if flow_id is None or flow.error is None:
            return
        msg = flow.error.msg
        cancelled = any(m in msg.lower() for m in _CANCEL_MESSAGES)
        self.recorder.failed(flow_id, time.time(), msg, cancelled=cancelled)


def _headers(headers: http.Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.items(multi=True):
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out

"""FlowRecorder: turns what the proxy sees into LLMFlows, off the proxy's event loop.

The mitmproxy addon only stamps times and hands raw material over through a queue (``put`` on a
``SimpleQueue`` costs well under a microsecond); one worker thread decodes content-encodings,
frames and provider events, estimates usage, prices the call, masks secrets and writes the store.
This keeps the proxy's hot path free of parsing, so streamed bytes reach the client as they
arrive.

A bug in a parser never breaks traffic: the exception is caught, the flow records a parse error,
and ``INTERNAL_ERRORS`` keeps the traceback so the test suite can fail on it.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowbook.model import (
    ErrorType,
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMResponse,
    Usage,
)
from flowbook.providers.base import Assembler, Detection, Provider, RequestView
from flowbook.store.memory import FlowStore
from flowbook.streams import FramingDecoder, make_decoder
from flowbook.streams.content_encoding import ContentDecodeError, ContentDecoder

log = logging.getLogger(__name__)

# Tracebacks of unexpected exceptions inside flowbook's parsing; tests assert it stays empty.
INTERNAL_ERRORS: list[str] = []

LIVE_UPDATE_INTERVAL = 0.1  # seconds between summary refreshes of a streaming flow


@dataclass
class _Record:
    flow: LLMFlow
    provider: Provider
    detection: Detection
    view: RequestView
    content: ContentDecoder | None = None
    decoder: FramingDecoder | None = None
    assembler: Assembler | None = None
    body: bytearray = field(default_factory=bytearray)
    streamed: bool = False
    last_touch: float = 0.0
    decode_failed: bool = False
    forced: tuple[FlowState, FlowError] | None = None


class FlowRecorder:
    """Owns every in-progress flow. All mutation happens on its worker thread."""

    def __init__(self, store: FlowStore) -> None:
        self.store = store
        self._q: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._records: dict[str, _Record] = {}
        self._records_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="flowbook-recorder", daemon=True)
        self._idle = threading.Condition()
        # Ops are numbered as they are queued (itertools.count is atomic under the GIL, so the
        # proxy loop takes no lock); wait_idle waits for the ops queued before it, not for an
        # empty queue, which under steady traffic might never come.
        self._counter = itertools.count(1)
        self._queued = 0
        self._done = 0
        self.on_complete: list[Callable[[LLMFlow], None]] = []
        self.session_provider: Callable[[], str | None] = lambda: None
        self.save_stream_events = True
        self.redact = True
        self._thread.start()

    # ---- called from the proxy's event loop (must stay cheap) -------------------------------

    def begin(
        self,
        flow_id: str,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        *,
        created: float,
        client_address: str | None = None,
        parse_now: bool = False,
    ) -> LLMFlow | None:
        """A detected LLM request arrived. With ``parse_now`` the flow is built synchronously
        (interception needs the parsed request to match filters) and returned."""
        if parse_now:
            rec = self._build(flow_id, view, provider, detection, created, client_address)
            with self._records_lock:
                self._records[flow_id] = rec
            self.store.put(rec.flow)
            return rec.flow
        self._put(("begin", flow_id, view, provider, detection, created, client_address))
        return None

    def request_sent(self, flow_id: str, t: float, changed_view: RequestView | None = None) -> None:
        self._put(("sent", flow_id, t, changed_view))

    def response_headers(
        self,
        flow_id: str,
        t: float,
        status: int,
        reason: str,
        headers: dict[str, str],
        streamed: bool,
    ) -> None:
        self._put(("headers", flow_id, t, status, reason, headers, streamed))

    def chunk(self, flow_id: str, t: float, data: bytes) -> None:
        self._put(("chunk", flow_id, t, data))

    def response_end(self, flow_id: str, t: float, raw_body: bytes | None) -> None:
        self._put(("end", flow_id, t, raw_body))

    def failed(self, flow_id: str, t: float, message: str, *, cancelled: bool) -> None:
        self._put(("error", flow_id, t, message, cancelled))

    def set_state(self, flow_id: str, state: FlowState) -> None:
        self._put(("state", flow_id, state))

    def force_outcome(self, flow_id: str, state: FlowState, error: FlowError) -> None:
        """End the flow in ``state`` with ``error`` whatever its response says (a dropped flow
        is Cancelled even though the client gets an error response)."""
        self._put(("force", flow_id, state, error))

    def call(self, flow_id: str, fn: Callable[[LLMFlow], None]) -> None:
        """Run ``fn(flow)`` on the recorder thread (ordered with the flow's other updates)."""
        self._put(("call", flow_id, fn))

    # ---- kernel side -------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every update queued before this call has been applied."""
        target = self._queued
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def active_ids(self) -> list[str]:
        with self._records_lock:
            return list(self._records)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)

    # ---- worker -----------------------------------------------------------------------------

    def _put(self, op: tuple[Any, ...]) -> None:
        self._queued = next(self._counter)
        self._q.put(op)

    def _run(self) -> None:
        while True:
            op = self._q.get()
            if op is None:
                return
            try:
                self._apply(op)
            except Exception:
                tb = traceback.format_exc()
                INTERNAL_ERRORS.append(tb)
                log.error("flowbook recorder error:\n%s", tb)
                self._mark_parse_error(op[1], "internal error while recording: " + tb[-300:])
            finally:
                with self._idle:
                    self._done += 1
                    self._idle.notify_all()

    def _rec(self, flow_id: str) -> _Record | None:
        with self._records_lock:
            return self._records.get(flow_id)

    def _apply(self, op: tuple[Any, ...]) -> None:
        kind, flow_id = op[0], op[1]
        if kind == "begin":
            _, _, view, provider, detection, created, client_address = op
            built = self._build(flow_id, view, provider, detection, created, client_address)
            with self._records_lock:
                self._records[flow_id] = built
            self.store.put(built.flow)
            return
        rec = self._rec(flow_id)
        if rec is None:
            return
        flow = rec.flow
        if kind == "sent":
            _, _, t, changed = op
            flow.timestamps.request_sent = t
            touch = changed is not None or flow.state == FlowState.INTERCEPTED
            if changed is not None:
                self._reparse(rec, changed)
            if flow.state == FlowState.INTERCEPTED:
                flow.state = FlowState.PENDING
            if touch:  # only a visible change is worth a summary refresh
                self.store.touch(flow)
        elif kind == "headers":
            self._on_headers(rec, *op[2:])
        elif kind == "chunk":
            self._on_chunk(rec, op[2], op[3])
        elif kind == "end":
            self._on_end(rec, op[2], op[3])
        elif kind == "error":
            self._on_error(rec, op[2], op[3], op[4])
        elif kind == "force":
            rec.forced = (op[2], op[3])
        elif kind == "state":
            flow.state = op[2]
            self.store.touch(flow)
        elif kind == "call":
            op[2](flow)
            self.store.put(flow)

    def _build(
        self,
        flow_id: str,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        created: float,
        client_address: str | None,
    ) -> _Record:
        from flowbook.providers.clients import detect_client

        meta = FlowMetadata(
            provider=detection.provider,
            api=detection.api,
            client=_safe(lambda: detect_client(view.headers)),
            user_agent=view.headers.get("user-agent"),
            client_address=client_address,
            session=self.session_provider(),
        )
        flow = LLMFlow(
            id=flow_id,
            flow_type=detection.api,
            metadata=meta,
            timestamps=FlowTimestamps(created=created),
        )
        rec = _Record(flow=flow, provider=provider, detection=detection, view=view)
        self._parse_request(rec, view)
        return rec

    def _parse_request(self, rec: _Record, view: RequestView) -> None:
        flow = rec.flow
        try:
            req = rec.provider.parse_request(view, rec.detection.api)
        except Exception as exc:
            INTERNAL_ERRORS.append(traceback.format_exc())
            from flowbook.model import LLMRequest

            req = LLMRequest()
            flow.metadata.parse_errors.append(f"request: {type(exc).__name__}: {exc}")
        # The raw facts always come from the wire, whatever the parser made of them.
        req.method, req.url, req.host, req.path = view.method, view.url, view.host, view.path
        req.body = view.body
        req.headers = dict(view.headers)
        if self.redact:
            from flowbook.redact import mask_headers, mask_url

            req.headers = mask_headers(req.headers)
            req.url = mask_url(req.url)
            req.path = mask_url(req.path)
        flow.request = req

    def _reparse(self, rec: _Record, view: RequestView) -> None:
        rec.view = view
        self._parse_request(rec, view)

    def _on_headers(
        self,
        rec: _Record,
        t: float,
        status: int,
        reason: str,
        headers: dict[str, str],
        streamed: bool,
    ) -> None:
        flow = rec.flow
        flow.timestamps.first_byte = t
        resp = LLMResponse(status_code=status, reason=reason, headers=dict(headers))
        if self.redact:
            from flowbook.redact import mask_headers

            resp.headers = mask_headers(resp.headers)
        flow.response = resp
        rec.streamed = streamed
        try:
            rec.assembler = rec.provider.assembler(rec.detection.api, flow.request, resp)
        except Exception as exc:
            INTERNAL_ERRORS.append(traceback.format_exc())
            flow.metadata.parse_errors.append(f"assembler: {exc}")
        if streamed:
            flow.state = FlowState.STREAMING
            try:
                rec.content = ContentDecoder(headers.get("content-encoding"))
            except ContentDecodeError as exc:
                rec.decode_failed = True
                flow.metadata.parse_errors.append(str(exc))
            ct = headers.get("content-type", "")
            framing = rec.provider.framing(rec.view, rec.detection.api, ct)
            if framing != "json":
                rec.decoder = make_decoder(framing)
            self.store.touch(flow)  # now Streaming; a buffered response shows at its end

    def _on_chunk(self, rec: _Record, t: float, data: bytes) -> None:
        flow = rec.flow
        if not data:
            return
        plain = data
        if rec.content is not None and not rec.decode_failed:
            try:
                plain = rec.content.feed(data)
            except ContentDecodeError as exc:
                rec.decode_failed = True
                flow.metadata.parse_errors.append(str(exc))
        rec.body += plain if not rec.decode_failed else data
        if rec.decoder is None or rec.decode_failed or rec.assembler is None:
            return
        self._feed_events(rec, rec.decoder.feed(plain, t), t)
        if t - rec.last_touch >= LIVE_UPDATE_INTERVAL:
            rec.last_touch = t
            self._live_usage(flow)
            self.store.touch(flow)

    def _feed_events(self, rec: _Record, events: list[Any], t: float) -> None:
        flow = rec.flow
        resp = flow.response
        assert resp is not None and rec.assembler is not None
        for ev in events:
            if self.save_stream_events:
                resp.events.append(ev)
            produced = rec.assembler.feed(ev)
            if produced and flow.timestamps.first_token is None:
                flow.timestamps.first_token = ev.t

    def _live_usage(self, flow: LLMFlow) -> None:
        """While streaming, show growing output tokens (an estimate, labelled as such)."""
        resp = flow.response
        if resp is None or (resp.usage and resp.usage.source == "reported"):
            return
        chars = (
            len(resp.text) + len(resp.thinking) + sum(len(c.arguments_raw) for c in resp.tool_calls)
        )
        resp.usage = Usage(
            output=chars // 4, source="estimated", details={"method": "live:chars/4"}
        )

    def _on_end(self, rec: _Record, t: float, raw_body: bytes | None) -> None:
        flow = rec.flow
        resp = flow.response
        if resp is None:  # no response headers were seen (e.g. a mocked response)
            return
        if rec.streamed:
            if rec.content is not None and not rec.decode_failed:
                try:
                    rec.content.close()
                except ContentDecodeError as exc:
                    flow.metadata.parse_errors.append(str(exc))
            if rec.decoder is not None and rec.assembler is not None and not rec.decode_failed:
                self._feed_events(rec, rec.decoder.close(t), t)
                for err in rec.decoder.errors:
                    flow.metadata.parse_errors.append(err)
            resp.body = bytes(rec.body)
        else:
            body = raw_body or b""
            try:
                content = ContentDecoder(resp.headers.get("content-encoding"))
                body = content.feed(body)
                content.close()
            except ContentDecodeError as exc:
                flow.metadata.parse_errors.append(str(exc))
            resp.body = body
        if resp.usage is not None and resp.usage.source == "estimated":
            resp.usage = None  # drop the live estimate; the real one is computed below
        self._assemble_final(rec)
        flow.timestamps.completed = t
        self._finish(rec, FlowState.COMPLETED)

    def _assemble_final(self, rec: _Record) -> None:
        flow = rec.flow
        resp = flow.response
        assert resp is not None
        body = resp.body or b""
        parsed: Any = body
        if not rec.streamed or rec.decoder is None:
            try:
                parsed = json.loads(body) if body.strip() else None
            except (ValueError, UnicodeDecodeError):
                parsed = body
        if resp.status_code >= 400:
            flow.error = rec.provider.parse_error(resp.status_code, parsed, resp.headers)
            return
        asm = rec.assembler
        if asm is None:
            return
        if not rec.streamed or rec.decoder is None:
            if rec.streamed and not body:
                pass
            elif isinstance(parsed, (bytes, bytearray)) and body:
                flow.metadata.parse_errors.append("response body is not valid JSON")
            if parsed is not None and not (isinstance(parsed, bytes) and not parsed):
                asm.feed_body(parsed)
        asm.finish()
        if asm.error is not None and flow.error is None:
            flow.error = asm.error

    def _on_error(self, rec: _Record, t: float, message: str, cancelled: bool) -> None:
        flow = rec.flow
        # An error the provider reported in the stream, before the connection broke (finish()
        # below may add "truncated", which is this hang-up itself, not its cause).
        in_stream = rec.assembler.error if rec.assembler is not None else None
        if rec.decoder is not None and rec.assembler is not None and not rec.decode_failed:
            try:
                self._feed_events(rec, rec.decoder.close(t), t)
                rec.assembler.finish()
            except Exception:
                INTERNAL_ERRORS.append(traceback.format_exc())
        if flow.response is not None and rec.body:
            flow.response.body = bytes(rec.body)
            if flow.response.usage is not None and flow.response.usage.source == "estimated":
                flow.response.usage = None
        flow.timestamps.completed = t
        if in_stream is not None and in_stream.type != ErrorType.PARSE:
            # The provider reported an error in the stream and the client (or upstream) hung up
            # because of it: the provider's error is the cause worth showing.
            flow.error = in_stream
            self._finish(rec, FlowState.ERROR)
        elif cancelled:
            flow.error = FlowError(ErrorType.CANCELLED, message or "client disconnected")
            self._finish(rec, FlowState.CANCELLED)
        else:
            lowered = message.lower()
            etype = (
                ErrorType.TIMEOUT
                if "timeout" in lowered or "timed out" in lowered
                else ErrorType.NETWORK
            )
            flow.error = FlowError(etype, message)
            self._finish(rec, FlowState.ERROR)

    def _finish(self, rec: _Record, state: FlowState) -> None:
        flow = rec.flow
        if flow.metadata.parse_errors and flow.error is None:
            flow.error = FlowError(ErrorType.PARSE, "; ".join(flow.metadata.parse_errors)[:1000])
        if (
            state == FlowState.COMPLETED
            and flow.error is not None
            and flow.error.type != ErrorType.PARSE
        ):
            state = FlowState.ERROR
        if rec.forced is not None:
            state, flow.error = rec.forced
        flow.state = state
        self._usage_and_cost(flow)
        if self.redact:
            _mask_bodies(flow)
        with self._records_lock:
            self._records.pop(flow.id, None)
        self.store.put(flow)
        for cb in self.on_complete:
            try:
                cb(flow)
            except Exception:
                INTERNAL_ERRORS.append(traceback.format_exc())

    def _usage_and_cost(self, flow: LLMFlow) -> None:
        from flowbook.analysis.pricing import cost_usd
        from flowbook.analysis.tokens import estimate_usage

        resp = flow.response
        # An HTTP error bills nothing: estimating tokens for it would invent usage.
        if resp is not None and resp.usage is None and resp.status_code < 400:
            resp.usage = _safe(lambda: estimate_usage(flow))
        usage = resp.usage if resp else None
        if usage is not None:
            flow.metadata.cost_usd = _safe(
                lambda: cost_usd(
                    flow.metadata.provider, flow.model, usage, timestamp=flow.timestamps.created
                )
            )

    def _mark_parse_error(self, flow_id: Any, message: str) -> None:
        rec = self._rec(flow_id) if isinstance(flow_id, str) else None
        if rec is not None:
            rec.flow.metadata.parse_errors.append(message)


def _mask_bodies(flow: LLMFlow) -> None:
    """Key-shaped strings in bodies are masked at rest (DESIGN §8); JSON stays valid."""
    from flowbook.redact import DEFAULT

    for holder in (flow.request, flow.response):
        if holder is not None and holder.body:
            holder.body = DEFAULT.mask_body(holder.body)


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        INTERNAL_ERRORS.append(traceback.format_exc())
        return None

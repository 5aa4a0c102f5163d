"""FlowRecorder, op by op: the ops are applied in an order the test chooses (no threads, no timing).

The streams are what flowbook's fake upstream writes for each provider, cut into its own chunks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowbook.capture.detection import CallDetector
from flowbook.capture.ops import (
    Begin,
    Chunk,
    Failed,
    Op,
    RequestSent,
    ResponseEnd,
    ResponseHeaders,
)
from flowbook.capture.recorder import FlowRecorder
from flowbook.fake_upstream.common import FakeRequest
from flowbook.fake_upstream.server import route
from flowbook.model import ErrorType, FlowState, LLMFlow
from flowbook.providers.base import Provider, RequestView
from tests.helpers.factories import request_view

USER = [{"role": "user", "content": "Write a haiku about HTTP proxies"}]

# provider case → (path with query, request body, extra request headers)
STREAMS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "openai_chat": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": USER, "stream": True,
         "stream_options": {"include_usage": True}},
        {},
    ),
    "openai_responses": (
        "/v1/responses", {"model": "gpt-4.1", "input": "Say hi", "stream": True}, {}
    ),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-sonnet-4-6", "max_tokens": 200, "messages": USER, "stream": True},
        {"anthropic-version": "2023-06-01"},
    ),
    "gemini": (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]},
        {},
    ),
    "kiro": (
        "/generateAssistantResponse",
        {"conversationState": {"currentMessage": {"userInputMessage": {
            "content": "Say hi", "modelId": "auto"}}, "chatTriggerType": "MANUAL"}},
        {},
    ),
    "ollama": ("/api/chat", {"model": "llama3.2", "messages": USER}, {}),
}  # fmt: skip


class ListSink:
    """A FlowSink that keeps what it was given."""

    def __init__(self) -> None:
        self.flows: dict[str, LLMFlow] = {}
        self.touched: list[str] = []

    def put(self, flow: LLMFlow) -> None:
        self.flows[flow.id] = flow

    def touch(self, flow: LLMFlow) -> None:
        self.touched.append(flow.id)


@dataclass
class Stream:
    """One recorded exchange, as ops: the request ones, the chunks, and the provider's reply."""

    view: RequestView
    provider: Provider
    status: int
    headers: dict[str, str]
    chunks: list[bytes]


def fake_stream(case: str) -> Stream:
    path, body, extra = STREAMS[case]
    parts = urlsplit(path)
    raw = json.dumps(body).encode()
    req = FakeRequest(
        method="POST",
        path=parts.path,
        query=dict(q.split("=", 1) for q in parts.query.split("&") if q),
        headers={"content-type": "application/json", **extra},
        body=raw,
        json=body,
    )
    handler = route(req)
    assert handler is not None
    reply = handler(req)
    assert reply.events is not None, f"{case}: the fake upstream did not stream"
    view = request_view(path, raw, headers={"content-type": "application/json", **extra})
    found = CallDetector().detect(view)
    assert found is not None
    headers = {k.lower(): v for k, v in reply.headers.items()}
    return Stream(view, found[0], reply.status, headers, list(reply.events))


def request_ops(s: Stream, fid: str = "f1") -> list[Op]:
    found = CallDetector().detect(s.view)
    assert found is not None
    return [
        Begin(fid, s.view, found[0], found[1], created=100.0),
        RequestSent(fid, 100.001),
        ResponseHeaders(fid, 100.01, s.status, "OK", s.headers, streamed=True),
    ]


def chunk_ops(chunks: list[bytes], fid: str = "f1") -> list[Op]:
    return [Chunk(fid, 100.02 + i * 0.001, c) for i, c in enumerate(chunks)]


@pytest.fixture
def recorder() -> Any:
    sink = ListSink()
    rec = FlowRecorder(sink)
    yield rec, sink
    rec.close()


def replay(rec: FlowRecorder, ops: list[Op]) -> None:
    for op in ops:
        rec.apply(op)


@pytest.mark.parametrize("case", sorted(STREAMS))
def test_hangup_reported_before_the_end_of_a_finished_stream_is_completed(
    case: str, recorder: Any
) -> None:
    """The race of issue 11 §1, pinned: the client read the last event and hung up, and
    mitmproxy's "client disconnected" reached the recorder before the tee's end of stream."""
    rec, sink = recorder
    s = fake_stream(case)
    chunks = chunk_ops(s.chunks)
    last = chunks[-1]
    assert isinstance(last, Chunk)
    replay(rec, request_ops(s) + chunks)
    rec.apply(Failed("f1", last.t + 0.5, "Client disconnected.", cancelled=True))
    rec.apply(ResponseEnd("f1", last.t + 0.6, None))  # the tee's end, too late: ignored
    raced = sink.flows["f1"]

    rec.apply(Begin("f2", s.view, *_detect(s), created=100.0))
    replay(rec, request_ops(s, "f2")[1:] + chunk_ops(s.chunks, "f2"))
    rec.apply(ResponseEnd("f2", last.t + 0.01, None))
    rec.apply(Failed("f2", last.t + 0.5, "Client disconnected.", cancelled=True))
    ordered = sink.flows["f2"]

    assert raced.state == FlowState.COMPLETED, raced.error
    assert raced.error is None and ordered.error is None
    assert raced.response is not None and ordered.response is not None
    assert raced.response.text and raced.response.text == ordered.response.text
    assert raced.response.stop_reason == ordered.response.stop_reason
    assert raced.response.usage == ordered.response.usage
    assert raced.response.body == ordered.response.body == b"".join(s.chunks)
    # The call ended with its last chunk, not when the hang-up was noticed.
    assert raced.timestamps.completed == last.t
    assert rec.active_ids() == []


@pytest.mark.parametrize("case", sorted(STREAMS))
@pytest.mark.parametrize(
    ("message", "cancelled", "state", "etype"),
    [
        ("Client disconnected.", True, FlowState.CANCELLED, ErrorType.CANCELLED),
        ("Server disconnected.", False, FlowState.ERROR, ErrorType.NETWORK),
    ],
)
def test_a_stream_cut_before_its_end_is_cancelled_or_an_error(
    case: str,
    message: str,
    cancelled: bool,
    state: FlowState,
    etype: ErrorType,
    recorder: Any,
) -> None:
    rec, sink = recorder
    s = fake_stream(case)
    cut = s.chunks[: max(2, len(s.chunks) // 2)]
    assert len(cut) < len(s.chunks)
    replay(rec, request_ops(s) + chunk_ops(cut))
    rec.apply(Failed("f1", 200.0, message, cancelled=cancelled))
    flow = sink.flows["f1"]
    assert flow.state == state
    assert flow.error is not None and flow.error.type == etype
    assert flow.response is not None and flow.response.body == b"".join(cut)
    assert flow.timestamps.completed == 200.0


def test_a_stream_is_streaming_until_it_ends(recorder: Any) -> None:
    rec, sink = recorder
    s = fake_stream("openai_chat")
    replay(rec, request_ops(s) + chunk_ops(s.chunks))
    flow = sink.flows["f1"]
    assert flow.state == FlowState.STREAMING and rec.active_ids() == ["f1"]
    assert "f1" in sink.touched  # the switch to Streaming was shown at once
    rec.apply(ResponseEnd("f1", 101.0, None))
    assert flow.state == FlowState.COMPLETED and rec.active_ids() == []


def test_ops_for_a_finished_or_unknown_flow_are_dropped(recorder: Any) -> None:
    rec, sink = recorder
    rec.apply(Chunk("nope", 1.0, b"data: x\n\n"))
    rec.apply(Failed("nope", 1.0, "Client disconnected.", cancelled=True))
    assert sink.flows == {}


def test_a_parser_bug_is_logged_and_recorded_on_the_flow(
    recorder: Any, _fail_on_internal_parser_errors: Any
) -> None:
    rec, sink = recorder
    s = fake_stream("openai_chat")

    class Broken(type(s.provider)):  # type: ignore[misc]
        def parse_request(self, req: RequestView, api: str) -> Any:
            raise RuntimeError("parser bug")

    found = _detect(s)
    rec.apply(Begin("f1", s.view, Broken(), found[1], created=100.0))
    replay(rec, request_ops(s)[1:] + chunk_ops(s.chunks))
    rec.apply(ResponseEnd("f1", 101.0, None))
    flow = sink.flows["f1"]
    # Traffic is unaffected: the response is rebuilt, the request keeps its wire facts.
    assert flow.response is not None and flow.response.text
    assert flow.request is not None and flow.request.body == s.view.body
    assert "request: RuntimeError: parser bug" in flow.metadata.parse_errors
    assert flow.error is not None and flow.error.type == ErrorType.PARSE
    logged = _fail_on_internal_parser_errors.take()  # taken, so this test does not fail on it
    assert len(logged) == 1 and "RuntimeError: parser bug" in logged[0]


def test_the_recorder_thread_applies_queued_ops_in_order(recorder: Any) -> None:
    rec, sink = recorder
    s = fake_stream("anthropic")
    for op in request_ops(s) + chunk_ops(s.chunks):
        rec.submit(op)
    rec.failed("f1", 200.0, "Client disconnected.", cancelled=True)
    assert rec.wait_idle(10)
    assert sink.flows["f1"].state == FlowState.COMPLETED


def _detect(s: Stream) -> Any:
    found = CallDetector().detect(s.view)
    assert found is not None
    return found

"""FlowRecorder's worker applies ops in batches and coalesces the store writes of a batch.

The batches are made deterministic without timing: a ``Call`` op holds the worker inside one
batch until the test has queued everything the next batch must hold.
"""

from __future__ import annotations

import threading

from flowbook.capture.detection import CallDetector
from flowbook.capture.ops import (
    Begin,
    Call,
    Chunk,
    Op,
    RequestSent,
    ResponseEnd,
    ResponseHeaders,
)
from flowbook.capture.recorder import FlowRecorder
from flowbook.model import FlowState, LLMFlow
from tests.helpers.factories import request_view

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}
JSON_ANSWER = (
    b'{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
)
SSE = [
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":'
    b'[{"index":0,"delta":{"content":"po"},"finish_reason":null}]}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":'
    b'[{"index":0,"delta":{"content":"ng"},"finish_reason":"stop"}]}\n\n',
    b"data: [DONE]\n\n",
]


class RecordingSink:
    """A FlowSink that logs each write with the flow's state at that moment."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, FlowState]] = []
        self.flows: dict[str, LLMFlow] = {}
        self.lock = threading.Lock()

    def put(self, flow: LLMFlow) -> None:
        with self.lock:
            self.log.append(("put", flow.id, flow.state))
            self.flows[flow.id] = flow

    def touch(self, flow: LLMFlow) -> None:
        with self.lock:
            self.log.append(("touch", flow.id, flow.state))

    def writes(self, flow_id: str) -> list[tuple[str, FlowState]]:
        with self.lock:
            return [(kind, state) for kind, fid, state in self.log if fid == flow_id]


def _begin(fid: str, stream: bool) -> list[Op]:
    view = request_view("/v1/chat/completions", {**BODY, **({"stream": True} if stream else {})})
    found = CallDetector().detect(view)
    assert found is not None
    return [Begin(fid, view, found[0], found[1], created=100.0), RequestSent(fid, 100.01)]


def _plain(fid: str) -> list[Op]:
    headers = {"content-type": "application/json"}
    return [
        *_begin(fid, stream=False),
        ResponseHeaders(fid, 100.1, 200, "OK", headers, False),
        ResponseEnd(fid, 100.2, JSON_ANSWER),
    ]


def _streamed(fid: str) -> list[Op]:
    headers = {"content-type": "text/event-stream"}
    return [
        *_begin(fid, stream=True),
        ResponseHeaders(fid, 100.1, 200, "OK", headers, True),
        *(Chunk(fid, 100.2 + i, c) for i, c in enumerate(SSE)),
        ResponseEnd(fid, 103.0, None),
    ]


def _hold_worker(rec: FlowRecorder, sink: RecordingSink) -> threading.Event:
    """Park the worker inside a batch; returns the event that lets it go."""
    entered, release = threading.Event(), threading.Event()
    for op in _begin("hold", stream=False):
        rec.submit(op)

    def block(_flow: LLMFlow) -> None:
        entered.set()
        assert release.wait(10)

    rec.submit(Call("hold", block))
    assert entered.wait(10)
    return release


def test_a_flow_that_ends_within_one_batch_is_written_once() -> None:
    sink = RecordingSink()
    rec = FlowRecorder(sink)
    done: list[tuple[str, bool]] = []
    rec.on_complete.append(lambda f: done.append((f.id, f.id in sink.flows)))
    try:
        release = _hold_worker(rec, sink)
        for op in _plain("p1") + _streamed("s1"):
            rec.submit(op)
        release.set()
        assert rec.wait_idle(10)
    finally:
        rec.close()
    assert sink.writes("p1") == [("put", FlowState.COMPLETED)]
    assert sink.writes("s1") == [("put", FlowState.COMPLETED)]
    assert sink.flows["s1"].response is not None and sink.flows["s1"].response.text == "pong"
    assert sink.flows["p1"].usage is not None and sink.flows["p1"].usage.source == "reported"
    # on_complete runs after the store has the finished flow
    assert ("p1", True) in done and ("s1", True) in done


def test_a_flow_spanning_batches_is_shown_in_progress_once_per_batch() -> None:
    sink = RecordingSink()
    rec = FlowRecorder(sink)
    try:
        ops = _streamed("s2")
        first, rest = ops[:4], ops[4:]  # begin, sent, headers, first chunk | the rest
        release = _hold_worker(rec, sink)
        for op in first:
            rec.submit(op)
        release.set()
        assert rec.wait_idle(10)
        # one write for the whole batch: the new flow, already Streaming
        assert sink.writes("s2") == [("put", FlowState.STREAMING)]
        release = _hold_worker(rec, sink)
        for op in rest:
            rec.submit(op)
        release.set()
        assert rec.wait_idle(10)
    finally:
        rec.close()
    assert sink.writes("s2") == [("put", FlowState.STREAMING), ("put", FlowState.COMPLETED)]


def test_wait_idle_sees_every_write_of_the_ops_queued_before_it() -> None:
    sink = RecordingSink()
    rec = FlowRecorder(sink)
    rec.batch_interval = 5.0  # a long pause between batches: wait_idle must cut it short
    try:
        for i in range(20):
            for op in _plain(f"w{i}"):
                rec.submit(op)
            assert rec.wait_idle(4)
            assert sink.writes(f"w{i}")[-1] == ("put", FlowState.COMPLETED)
    finally:
        rec.close()
    assert len(sink.flows) == 20


def test_ops_applied_directly_write_through_at_once() -> None:
    sink = RecordingSink()
    rec = FlowRecorder(sink)
    rec.close()  # no worker: the test orders the ops itself, as tests/unit/test_recorder.py does
    for op in _streamed("d1")[:3]:
        rec.apply(op)
    assert sink.writes("d1") == [("put", FlowState.PENDING), ("touch", FlowState.STREAMING)]

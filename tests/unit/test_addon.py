"""FlowbookAddon with mitmproxy's own test helpers: ``tflow`` flows, ``taddons`` context.

The hooks are called one by one, in the order each test needs (mitmproxy calls them in the same
way), and a real FlowRecorder writes to a list-backed sink.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from flowbook.capture.addon import META_KEY, FlowbookAddon, StreamTee
from flowbook.capture.recorder import FlowRecorder
from flowbook.model import ErrorType, FlowState, LLMFlow
from tests.unit.test_recorder import ListSink, fake_stream

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def _run(coro: Any) -> Any:
    """Run one hook's result as mitmproxy does (awaited when it is awaitable) on a loop of its
    own, in a thread of its own: the browser tests' session-wide Playwright keeps an event
    loop running on the main thread."""
    if coro is None:
        return None
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def addon() -> Iterator[tuple[FlowbookAddon, ListSink]]:
    sink = ListSink()
    recorder = FlowRecorder(sink)
    a = FlowbookAddon(recorder)
    with taddons.context(a):
        yield a, sink
    recorder.close()


def llm_flow(
    path: str, body: bytes, *, content_type: str = "application/json", host: str = "127.0.0.1"
) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.method = "POST"
    f.request.host, f.request.port, f.request.path = host, 8000, path
    f.request.headers["content-type"] = content_type
    f.request.content = body
    return f


def respond(f: http.HTTPFlow, status: int, content_type: str, body: bytes = b"") -> None:
    f.response = tutils.tresp(status_code=status, content=body)
    f.response.headers["content-type"] = content_type


def recorded(a: FlowbookAddon, sink: ListSink, f: http.HTTPFlow) -> LLMFlow:
    assert a.recorder.wait_idle(10)
    return sink.flows[f.metadata[META_KEY]]


def test_a_request_that_is_no_llm_call_is_left_alone(addon: Any) -> None:
    a, sink = addon
    f = llm_flow("/some/other/api", b'{"hello": "world"}')
    _run(a.request(f))
    assert META_KEY not in f.metadata
    respond(f, 200, "text/event-stream")
    a.responseheaders(f)
    assert f.response is not None and f.response.stream is True  # streamed, never buffered
    assert a.recorder.wait_idle(10) and sink.flows == {}


def test_client_hangup_reported_before_the_tee_sees_the_end_is_completed(addon: Any) -> None:
    """Issue 11 §1 through the real hooks: error() runs before the tee's end of stream."""
    a, sink = addon
    s = fake_stream("openai_chat")
    f = llm_flow("/v1/chat/completions", s.view.body)
    _run(a.request(f))
    respond(f, 200, s.headers["content-type"])
    a.responseheaders(f)
    assert f.response is not None
    tee = f.response.stream
    assert isinstance(tee, StreamTee)
    for chunk in s.chunks:
        assert tee(chunk) == chunk  # forwarded unchanged
    f.error = tflow.terr("Client disconnected.")
    a.error(f)
    tee(b"")  # the end of the body, seen after the error
    flow = recorded(a, sink, f)
    assert flow.state == FlowState.COMPLETED and flow.error is None
    assert flow.response is not None and flow.response.text
    assert flow.response.body == b"".join(s.chunks)


def test_client_hangup_in_the_middle_of_a_stream_is_cancelled(addon: Any) -> None:
    a, sink = addon
    s = fake_stream("openai_chat")
    f = llm_flow("/v1/chat/completions", s.view.body)
    _run(a.request(f))
    respond(f, 200, s.headers["content-type"])
    a.responseheaders(f)
    assert f.response is not None and isinstance(f.response.stream, StreamTee)
    for chunk in s.chunks[:2]:
        f.response.stream(chunk)
    f.error = tflow.terr("Client disconnected.")
    a.error(f)
    flow = recorded(a, sink, f)
    assert flow.state == FlowState.CANCELLED
    assert flow.error is not None and flow.error.type == ErrorType.CANCELLED


def test_a_buffered_call_goes_through_request_and_response(addon: Any) -> None:
    a, sink = addon
    body = dict(CHAT, stream=False)
    f = llm_flow("/v1/chat/completions", json.dumps(body).encode())
    _run(a.request(f))
    answer = {
        "id": "c1",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    respond(f, 200, "application/json", json.dumps(answer).encode())
    a.responseheaders(f)
    assert f.response is not None and not f.response.stream
    _run(a.response(f))
    flow = recorded(a, sink, f)
    assert flow.state == FlowState.COMPLETED
    assert flow.response is not None and flow.response.text == "hello"
    assert flow.usage is not None and flow.usage.total == 4


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"model": "gpt-4o", "messages": [', "ends before its JSON is complete"),
        (b"{}", "request body has no 'model', 'messages'"),
        (b"\x00\x9f\x92\x96binary", "request body is binary"),
    ],
)
def test_a_malformed_request_to_a_known_path_is_a_flow(
    addon: Any, body: bytes, problem: str
) -> None:
    a, sink = addon
    f = llm_flow("/v1/chat/completions", body)
    _run(a.request(f))
    assert META_KEY in f.metadata
    respond(f, 400, "application/json", b'{"error": {"message": "bad request body"}}')
    a.responseheaders(f)
    _run(a.response(f))
    flow = recorded(a, sink, f)
    assert flow.state == FlowState.ERROR
    assert flow.request is not None and flow.request.body == body
    assert flow.error is not None and flow.error.type == ErrorType.PARSE
    assert problem in flow.error.message and "bad request body" in flow.error.message
    assert flow.error.status == 400


def test_a_path_that_carried_a_call_is_known_for_its_malformed_requests(addon: Any) -> None:
    """A custom endpoint (here recognised by an Anthropic-shaped body) is remembered: the next
    request to it is a flow even when its body does not parse."""
    a, sink = addon
    good = {"model": "claude-x", "max_tokens": 5, "system": "s", "messages": [{"role": "user",
            "content": "hi"}]}  # fmt: skip
    first = llm_flow("/custom/llm", json.dumps(good).encode())
    _run(a.request(first))
    assert META_KEY in first.metadata
    other_port = llm_flow("/custom/llm", b"{oops")
    other_port.request.port = 9999
    _run(a.request(other_port))
    assert META_KEY not in other_port.metadata  # another server: nothing is known of it
    bad = llm_flow("/custom/llm", b"{oops")
    _run(a.request(bad))
    respond(bad, 400, "application/json", b'{"type": "error"}')
    a.responseheaders(bad)
    _run(a.response(bad))
    flow = recorded(a, sink, bad)
    assert flow.metadata.provider == "anthropic"
    assert flow.error is not None and "not valid JSON" in flow.error.message


def test_capture_side_imports_no_pandas() -> None:
    """The proxy side (addon, recorder, proxy thread, providers) never pays for pandas."""
    code = (
        "import sys\n"
        "import flowbook.capture.addon, flowbook.capture.recorder, flowbook.capture.proxy\n"
        "from flowbook.providers import registry\n"
        "registry.providers()\n"
        "heavy = ('pandas', 'numpy', 'pyarrow')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"imported on the proxy side: {out.stdout.strip()}"

"""The capture core end to end: real mitmproxy, the real openai SDK, flowbook's fake upstream.

What the SDK received is the ground truth: every captured flow must hold the same text, tool
calls and usage.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from tests.helpers.flows import only_flow, wait_for

pytestmark = pytest.mark.integration

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather",
    "parameters": WEATHER_TOOL["function"]["parameters"],
}  # type: ignore[index]


@pytest.fixture
def reverse(proxy_url: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=proxy_url + "/v1", api_key="sk-test-abcdef1234567890", max_retries=0
    )
    yield client
    client.close()


def test_start_is_idempotent_and_listens_on_loopback(
    data_dir: Path, upstream: FakeUpstream
) -> None:
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir)
    try:
        assert fb.start(port=0, data_dir=data_dir) is mon
        assert mon.host == "127.0.0.1" and mon.port > 0
        assert mon.proxy_url == f"http://127.0.0.1:{mon.port}"
        assert fb.status()["running"] is True
        assert "reverse" in repr(mon) and mon.proxy_url in repr(mon)
    finally:
        fb.stop()
    assert fb.monitor() is None
    # stop frees the port
    with socket.socket() as s:
        s.bind(("127.0.0.1", mon.port))


def test_bad_mode_gives_a_clear_error(data_dir: Path) -> None:
    with pytest.raises(Exception, match="invalid proxy mode 'nonsense:x'"):
        fb.start(port=0, mode="nonsense:x", data_dir=data_dir)


def test_chat_non_streamed(reverse: openai.OpenAI) -> None:
    r = reverse.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello to flowbook"}]
    )
    flow = only_flow()
    assert flow.provider in ("openai", "openai_compatible")
    assert flow.api == "chat" and flow.state == "completed"
    assert flow.request.model == "gpt-4o-mini"
    assert flow.request.messages[-1].text == "Say hello to flowbook"
    assert flow.response is not None
    assert flow.response.text == r.choices[0].message.content
    assert r.usage is not None and flow.usage is not None
    assert (flow.usage.input, flow.usage.output) == (
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
    )
    assert flow.usage.source == "reported"
    assert flow.timestamps.latency_ms is not None and flow.timestamps.ttft_ms is not None
    # the key is masked at rest, with a fingerprint
    auth = flow.request.headers["authorization"]
    assert "abcdef1234567890" not in auth and auth.endswith("7890")


def test_chat_streamed_with_tool_calls_and_usage(reverse: openai.OpenAI) -> None:
    stream = reverse.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.function and tc.function.name:
                    names[tc.index] = tc.function.name
                args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
    flow = only_flow()
    assert flow.request.stream is True
    assert flow.response is not None
    assert [c.name for c in flow.response.tool_calls] == [names[i] for i in sorted(names)]
    assert [c.arguments for c in flow.response.tool_calls] == [
        json.loads(args[i]) for i in sorted(args)
    ]
    assert usage is not None and flow.usage is not None
    assert (flow.usage.input, flow.usage.output) == (usage.prompt_tokens, usage.completion_tokens)
    assert flow.response.events, "stream events are kept with their arrival times"
    assert flow.timestamps.first_token is not None


def test_chat_streamed_without_usage_is_estimated(reverse: openai.OpenAI) -> None:
    stream = reverse.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me a story"}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    flow = only_flow()
    assert flow.response is not None and flow.response.text == text
    assert flow.usage is not None and flow.usage.source == "estimated"
    assert flow.usage.output > 0
    row = fb.flows().iloc[0]
    assert row["usage_source"] == "estimated"


def test_responses_non_streamed_and_streamed(reverse: openai.OpenAI) -> None:
    r = reverse.responses.create(
        model="gpt-4o-mini", input="Describe flowbook", instructions="Be brief"
    )
    text = ""
    final = None
    with reverse.responses.stream(
        model="gpt-4o-mini", input="What's the weather in Paris?", tools=[RESPONSES_TOOL]
    ) as s:  # type: ignore[list-item]
        for ev in s:
            if ev.type == "response.output_text.delta":
                text += ev.delta
        final = s.get_final_response()
    assert fb.wait_idle()
    df = fb.flows(sort_order="asc")
    assert list(df["api"]) == ["responses", "responses"]
    first, second = (fb.get_flow(i) for i in df["id"])
    assert first.response is not None and first.response.text == r.output_text
    assert first.request.system == "Be brief"
    assert first.usage is not None and r.usage is not None
    assert first.usage.input == r.usage.input_tokens
    assert first.usage.output == r.usage.output_tokens
    assert second.response is not None and second.response.text == text
    calls = [o for o in final.output if o.type == "function_call"]
    assert [c.name for c in second.response.tool_calls] == [c.name for c in calls]
    assert [c.arguments for c in second.response.tool_calls] == [
        json.loads(c.arguments) for c in calls
    ]
    assert second.usage is not None and final.usage is not None
    assert second.usage.output == final.usage.output_tokens


def test_error_status_becomes_a_flow_error(reverse: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        reverse.chat.completions.create(
            model="error-429", messages=[{"role": "user", "content": "hi"}]
        )
    flow = only_flow()
    assert flow.state == "error"
    assert flow.error is not None and flow.error.type == "rate_limit"
    assert flow.error.retryable is True
    row = fb.flows().iloc[0]
    assert row["status_code"] == 429 and row["error_type"] == "rate_limit"


def test_dataframe_columns_and_dtypes(reverse: openai.OpenAI) -> None:
    for i in range(3):
        reverse.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}]
        )
    fb.wait_idle()
    df = fb.flows()
    from flowbook.schema import COLUMNS

    assert list(df.columns) == list(COLUMNS)
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["input_tokens"].dtype.name == "Int64"
    assert df["latency_ms"].dtype.name == "float64"
    assert str(df["model"].dtype).startswith("string")
    assert df["timestamp"].is_monotonic_decreasing
    page = fb.flows(page=2, page_size=2)
    assert len(page) == 1 and page.attrs["total"] == 3
    with pytest.raises(ValueError, match="Did you mean 'latency_ms'"):
        fb.flows(sort_by="latency")


def test_forward_mode_over_tls_with_flowbooks_ca(data_dir: Path) -> None:
    with FakeUpstream(tls=True) as up:
        mon = fb.start(
            port=0,
            mode="regular",
            data_dir=data_dir,
            ssl_verify_upstream_trusted_ca=str(up.ca_cert_path),
        )
        try:
            assert mon.ca_cert_path.exists()
            key = data_dir / "mitmproxy" / "mitmproxy-ca.pem"
            assert key.stat().st_mode & 0o077 == 0, "CA private key readable by the user only"
            env = mon.client_env()
            assert env["HTTPS_PROXY"] == mon.proxy_url
            with mon.httpx_client() as http:
                client = openai.OpenAI(
                    base_url=f"{up.url}/v1", api_key="sk-x", http_client=http, max_retries=0
                )
                r = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "over TLS"}]
                )
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "stream TLS"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            fb.wait_idle()
            df = fb.flows(sort_order="asc")
            assert len(df) == 2
            a, b = (fb.get_flow(i) for i in df["id"])
            assert a.request.url.startswith("https://127.0.0.1:")
            assert a.response is not None and a.response.text == r.choices[0].message.content
            assert b.response is not None and b.response.text == streamed
            assert b.usage is not None and b.usage.source == "reported"
        finally:
            fb.stop()


# ---- streaming stays live --------------------------------------------------------------------


class _GatedSSE(BaseHTTPRequestHandler):
    """Sends one SSE event, then waits until the test has seen it before sending the next.

    If anything between here and the client buffered the body, the client would never see the
    first event while the server waits, and the test would time out instead of passing.
    """

    protocol_version = "HTTP/1.1"
    gates: list[threading.Event] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i, gate in enumerate(self.gates):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}],
            }
            self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            if not gate.wait(10):
                return
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def gated_proxy(data_dir: Path, n: int) -> Iterator[tuple[str, list[threading.Event]]]:
    """(proxy URL, gates): flowbook in front of a :class:`_GatedSSE` server sending ``n`` events.

    On the way out every gate is opened, so the server thread never waits on a failed test.
    """
    gates = [threading.Event() for _ in range(n)]
    _GatedSSE.gates = gates
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatedSSE)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mon = fb.start(
            port=0, mode=f"reverse:http://127.0.0.1:{server.server_port}", data_dir=data_dir
        )
        yield mon.proxy_url, gates
    finally:
        for g in gates:
            g.set()
        fb.stop()
        server.shutdown()


# The streamed chat request every gated test sends.
GO = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "go"}]}


def test_stream_reaches_the_client_event_by_event(data_dir: Path) -> None:
    with gated_proxy(data_dir, 5) as (url, gates):
        seen = []
        with (
            httpx.Client(base_url=url, timeout=5) as c,
            c.stream("POST", "/v1/chat/completions", json=GO) as resp,
        ):
            for line in resp.iter_lines():
                if line.startswith("data: {"):
                    seen.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
                    gates[len(seen) - 1].set()  # only now may the server send the next event
        assert seen == [f"w{i} " for i in range(5)]
        flow = only_flow()
        assert flow.response is not None and flow.response.text == "".join(seen)
        times = [e.t for e in flow.response.events]
        assert times == sorted(times) and len(set(times)) > 1


# ---- bad bodies pass through untouched -------------------------------------------------------


MALFORMED = [
    ("invalid-json", "application/json", [b'{"id": "x", "choices": [ nope'], False),
    (
        "truncated-sse",
        "text/event-stream",
        [
            b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
            b'"delta":{"content":"par'
        ],
        True,
    ),
    ("garbage", "text/event-stream", [b"\x00\xff\xfe garbage \x81\n\n", b"data: {{{\n\n"], True),
]


@pytest.mark.parametrize(
    ("name", "ctype", "chunks", "stream"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_bodies_pass_through_and_are_recorded(
    upstream: FakeUpstream,
    data_dir: Path,
    name: str,
    ctype: str,
    chunks: list[bytes],
    stream: bool,
) -> None:
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir)
    try:
        upstream.script(
            "/v1/chat/completions", status=200, headers={"content-type": ctype}, chunks=chunks
        )
        body = {
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [{"role": "user", "content": name}],
        }
        with httpx.Client(base_url=mon.proxy_url, timeout=10) as c:
            r = c.post("/v1/chat/completions", json=body)
            assert r.content == b"".join(chunks), "bytes reach the client unchanged"
            # and the proxy keeps serving
            ok = c.post(
                "/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "still up?"}],
                },
            )
            assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
        fb.wait_idle()
        df = fb.flows(sort_order="asc")
        bad = fb.get_flow(df.loc[0, "id"])
        assert bad.response is not None and bad.response.body == b"".join(chunks)
        assert bad.metadata.parse_errors, "the parse problem is recorded on the flow"
        assert bad.error is not None
        assert df.loc[1, "state"] == "completed" and df.loc[1, "error_type"] is pd_na()
    finally:
        fb.stop()


def pd_na() -> object:
    import pandas as pd

    return pd.NA


# ---- lifecycle: streaming, errors mid-stream, cancelled --------------------------------------


def test_flow_is_streaming_with_growing_text_then_completed(data_dir: Path) -> None:
    with gated_proxy(data_dir, 3) as (url, gates):
        with (
            httpx.Client(base_url=url, timeout=10) as c,
            c.stream("POST", "/v1/chat/completions", json=GO) as resp,
        ):
            lines = resp.iter_lines()
            seen = 0
            for line in lines:
                if not line.startswith("data: {"):
                    continue
                seen += 1
                want = "".join(f"w{i} " for i in range(seen))

                def live(want: str = want) -> bool:
                    df = fb.flows()
                    if len(df) != 1:
                        return False
                    f = fb.get_flow(df.loc[0, "id"])
                    return (
                        f.state == "streaming"
                        and f.response is not None
                        and f.response.text == want
                    )

                assert wait_for(live), f"flow not streaming with text {want!r}"
                row = fb.flows().iloc[0]
                assert row["state"] == "streaming" and row["output_tokens"] >= 0
                gates[seen - 1].set()
        flow = only_flow()
        assert flow.state == "completed"


def test_client_going_away_cancels_the_flow(data_dir: Path) -> None:
    with gated_proxy(data_dir, 3) as (url, _gates):
        with (
            httpx.Client(base_url=url, timeout=10) as c,
            c.stream("POST", "/v1/chat/completions", json=GO) as resp,
        ):
            for line in resp.iter_lines():
                if line.startswith("data: {"):
                    break  # leave after the first event: the client goes away
        assert wait_for(
            lambda: len(fb.flows()) == 1 and fb.flows().iloc[0]["state"] == "cancelled"
        ), fb.flows()
        flow = only_flow()
        assert flow.error is not None and flow.error.type == "cancelled"
        assert flow.response is not None and flow.response.text == "w0 "


def test_upstream_dying_midstream_is_an_error_with_partial_text(
    reverse: openai.OpenAI, upstream: FakeUpstream
) -> None:
    got = ""
    with pytest.raises(openai.APIError):
        stream = reverse.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": "one two three four five six seven"}],
            extra_headers={"x-fake-die-midstream": "1"},
        )
        for chunk in stream:
            if chunk.choices:
                got += chunk.choices[0].delta.content or ""
    assert wait_for(lambda: fb.flows().iloc[0]["state"] == "error")
    flow = only_flow()
    assert flow.error is not None and flow.error.type in ("network", "server_error")
    assert (
        flow.response is not None
        and flow.response.text
        and got.startswith(flow.response.text[: len(got)])
    )


def test_several_modes_at_once(upstream: FakeUpstream, data_dir: Path) -> None:
    mon = fb.start(port=0, mode=["regular", f"reverse:{upstream.url}"], data_dir=data_dir)
    try:
        assert [m.kind for m in mon.modes] == ["regular", "reverse"]
        assert mon.modes[0].port != mon.modes[1].port
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(proxy=mon.modes[0].url, timeout=10) as fwd:
            assert fwd.post(f"{upstream.url}/v1/chat/completions", json=body).status_code == 200
        with httpx.Client(base_url=mon.modes[1].url, timeout=10) as rev:
            assert rev.post("/v1/chat/completions", json=body).status_code == 200
        fb.wait_idle()
        assert len(fb.flows()) == 2
    finally:
        fb.stop()


def test_unknown_mitmproxy_option_is_a_clear_error(data_dir: Path) -> None:
    with pytest.raises(Exception, match="no_such_option"):
        fb.start(port=0, data_dir=data_dir, no_such_option=True)
    assert fb.monitor() is None


def test_non_llm_traffic_is_not_a_flow(upstream: FakeUpstream, data_dir: Path) -> None:
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir)
    try:
        with httpx.Client(base_url=mon.proxy_url, timeout=10) as c:
            c.get("/favicon.ico")
            c.post("/some/other/api", json={"hello": "world"})
        fb.wait_idle()
        assert len(fb.flows()) == 0
    finally:
        fb.stop()

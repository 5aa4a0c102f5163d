"""Bytes reach the client unchanged, whatever they are; flowbook only observes them.

* Every real recorded streamed body in ``tests/fixtures/real`` is served by the fake upstream with
  its recorded content type (and content encoding), through the proxy: the client receives it
  byte for byte, and the captured flow holds what the direct parser
  (``tests.helpers.fixtures.feed_whole``) makes of the same bytes.
* Corrupt event-stream frames, truncated streams and wrong content-encodings also reach the
  client unchanged; the flow records the problem (``metadata.parse_errors`` / ``error``) and the
  proxy keeps serving.

One proxy serves the whole module (starting mitmproxy costs about a second); each test looks at
the flows it made.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import flowbook as fb
from flowbook import api
from flowbook.fake_upstream import FakeUpstream
from flowbook.model import LLMFlow
from flowbook.providers import registry
from flowbook.providers.base import RequestView
from tests.helpers.fixtures import REAL, feed_whole, load_cassette, read_fixture

pytestmark = pytest.mark.integration

EVENTSTREAM = "application/vnd.amazon.eventstream"
KIRO_HEADERS = {
    "content-type": "application/x-amz-json-1.0",
    "x-amz-target": "AmazonCodeWhispererStreamingService.GenerateAssistantResponse",
}
# Request headers of a recording that must not be replayed as they are.
_HOP = ("host", "content-length", "connection", "accept-encoding", "transfer-encoding")


@dataclass
class Proxy:
    upstream: FakeUpstream
    url: str


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    data_dir = tmp_path_factory.mktemp("flowbook-data")
    with pytest.MonkeyPatch.context() as mp, FakeUpstream() as up:
        mp.setenv("FLOWBOOK_DATA_DIR", str(data_dir))
        api._reset_for_tests()
        mon = fb.start(port=0, mode=f"reverse:{up.url}", data_dir=data_dir)
        try:
            yield Proxy(up, mon.proxy_url)
        finally:
            fb.stop()
            api._reset_for_tests()


def exchange(
    url: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, Exception | None]:
    """POST through the proxy; the raw bytes received (httpx decodes nothing) and any error."""
    raw = bytearray()
    status = 0
    try:
        with (
            httpx.Client(base_url=url, timeout=10) as c,
            c.stream("POST", path, content=body, headers=headers) as r,
        ):
            status = r.status_code
            for chunk in r.iter_raw():
                raw += chunk
    except httpx.HTTPError as exc:
        return status, bytes(raw), exc
    return status, bytes(raw), None


def newest_flow() -> LLMFlow:
    assert fb.wait_idle()
    df = fb.flows(page_size=1)  # newest first
    return fb.get_flow(df.loc[0, "id"])


def assert_still_serving(url: str) -> None:
    """The next, ordinary request goes through and is recorded cleanly."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "still there?"}],
    }
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "Echo: still there?"
    flow = newest_flow()
    assert flow.state == "completed" and flow.error is None and not flow.metadata.parse_errors


# ---- every real recorded stream, replayed ----------------------------------------------------


@dataclass
class Replay:
    id: str
    path: str  # request path (with query) as recorded
    request_body: bytes
    request_headers: dict[str, str]
    content_type: str
    content_encoding: str | None
    wire: bytes  # the response body exactly as sent (still content-encoded)


def _from_cassette(
    id_: str, cassette: str, index: int, body_file: str | None = None, *, as_recorded: bool = False
) -> Replay:
    """``body_file`` (an extracted, decoded body) or, ``as_recorded``, the cassette's own bytes."""
    ia = load_cassette(cassette)[index]
    parts = urlsplit(ia.request.uri)
    headers = {k: v for k, v in ia.request.headers.items() if k not in _HOP}
    rs = ia.response
    wire = rs.body if as_recorded or body_file is None else read_fixture(body_file)
    encoding = rs.content_encoding if as_recorded else None
    return Replay(
        id_,
        parts.path + (f"?{parts.query}" if parts.query else ""),
        ia.request.body,
        headers,
        rs.content_type,
        encoding,
        wire,
    )


def _kiro(id_: str, body_file: str) -> Replay:
    row = json.loads((REAL / "kiro/gar-cli-text.row.json").read_text())
    return Replay(
        id_,
        "/",
        row["reqBody"].encode(),
        dict(KIRO_HEADERS),
        EVENTSTREAM,
        None,
        read_fixture(body_file),
    )


def replays() -> list[Replay]:
    oa, rs = (
        "openai/chat-stream-toolcalls-include-usage",
        "openai/responses-stream-function-call-then-text",
    )
    an = "anthropic/messages-stream-"
    gj = "gemini/stream-json-array-thought-functioncall-gzip"
    return [
        _from_cassette(
            "openai-chat-tool-calls", f"{oa}.cassette.yaml", 0, f"{oa}.response-1.sse.txt"
        ),
        _from_cassette("openai-chat-text", f"{oa}.cassette.yaml", 1, f"{oa}.response-2.sse.txt"),
        _from_cassette(
            "openai-responses-function-call", f"{rs}.cassette.yaml", 0, f"{rs}.response-1.sse.txt"
        ),
        _from_cassette(
            "openai-responses-text", f"{rs}.cassette.yaml", 1, f"{rs}.response-2.sse.txt"
        ),
        _from_cassette(
            "openrouter-in-stream-error",
            "openai-compatible/openrouter-stream-reasoning-then-error.cassette.yaml",
            0,
            "openai-compatible/openrouter-stream-reasoning-then-error.response.sse.txt",
        ),
        _from_cassette(
            "deepseek-reasoner",
            "openai-compatible/deepseek-reasoner-stream.cassette.yaml",
            0,
            as_recorded=True,
        ),
        _from_cassette(
            "anthropic-thinking-signature",
            f"{an}thinking-signature.cassette.yaml",
            0,
            f"{an}thinking-signature.response.sse.txt",
        ),
        _from_cassette(
            "anthropic-tool-use-json-delta",
            f"{an}tool-use-input-json-delta.cassette.yaml",
            0,
            f"{an}tool-use-input-json-delta.response-1.sse.txt",
        ),
        _from_cassette(
            "anthropic-tool-use-decoded",
            f"{an}tool-use-gzip.cassette.yaml",
            0,
            f"{an}tool-use-gzip.response.decoded.sse.txt",
        ),
        _from_cassette(
            "anthropic-tool-use-gzip", f"{an}tool-use-gzip.cassette.yaml", 0, as_recorded=True
        ),
        _from_cassette(
            "gemini-sse-function-call-thoughts",
            "gemini/stream-alt-sse-functioncall-thoughts.cassette.yaml",
            0,
            "gemini/stream-alt-sse-functioncall-thoughts.response-1.sse.txt",
        ),
        _from_cassette(
            "gemini-json-array-decoded", f"{gj}.cassette.yaml", 0, f"{gj}.response-1.decoded.json"
        ),
        *[
            _from_cassette(
                f"gemini-json-array-gzip-{i}", f"{gj}.cassette.yaml", i, as_recorded=True
            )
            for i in range(3)
        ],
        _from_cassette(
            "bedrock-converse-stream",
            "bedrock/converse-stream-claude-reasoning.cassette.yaml",
            0,
            "bedrock/converse-stream-claude-reasoning.response.bin",
        ),
        _kiro("kiro-text", "kiro/gar-cli-text.response.bin"),
        _kiro("kiro-tool-use", "kiro/gar-cli-tooluse.response.bin"),
    ]


REPLAYS = replays()


def _wire_chunks(data: bytes) -> list[bytes | object]:
    # Uneven pieces, so frames and events straddle HTTP chunks as on the network.
    out: list[bytes | object] = []
    i, n = 0, 1
    while i < len(data):
        size = 97 * n % 1024 + 1
        out.append(data[i : i + size])
        i, n = i + size, n + 1
    return out


def captured(flow: LLMFlow) -> dict[str, Any]:
    r = flow.response
    assert r is not None
    return {
        "text": r.text,
        "thinking": r.thinking,
        "signature": r.thinking_signature,
        "tool_calls": [(c.id, c.name, c.arguments) for c in r.tool_calls],
        "stop": r.stop_reason,
        "model": r.model,
        "refusal": r.refusal,
    }


@pytest.mark.parametrize("rp", REPLAYS, ids=[r.id for r in REPLAYS])
def test_recorded_stream_replayed_through_the_proxy(proxy: Proxy, rp: Replay) -> None:
    headers = {"content-type": rp.content_type}
    if rp.content_encoding:
        headers["content-encoding"] = rp.content_encoding
    proxy.upstream.script(rp.path, headers=headers, chunks=_wire_chunks(rp.wire))
    status, received, exc = exchange(proxy.url, rp.path, rp.request_body, rp.request_headers)
    assert exc is None and status == 200
    assert received == rp.wire, "the client receives the recorded bytes unchanged"

    flow = newest_flow()
    view = RequestView(
        method="POST",
        url=proxy.url + rp.path,
        host="127.0.0.1",
        path=rp.path,
        headers=dict(rp.request_headers),
        body=rp.request_body,
    )
    found = registry.detect(view)
    assert found is not None and found[0].name == flow.provider
    direct = feed_whole(found[0], found[1].api, view, rp.content_type, rp.content_encoding, rp.wire)
    assert flow.response is not None and flow.request.stream is True
    assert captured(flow) == captured(LLMFlow(response=direct.response))
    r = flow.response
    assert r.text or r.thinking or r.tool_calls, "something was rebuilt"
    if direct.response.usage is not None:
        assert flow.usage == direct.response.usage
    else:  # the provider reported none (Kiro): flowbook estimated it
        assert flow.usage is not None and flow.usage.source == "estimated"
    assert flow.metadata.parse_errors == direct.decoder_errors == []
    if direct.error is None:
        assert flow.error is None and flow.state == "completed"
    else:
        assert flow.error is not None and flow.state == "error"
        assert (flow.error.type, flow.error.message) == (direct.error.type, direct.error.message)
    assert len(flow.response.events) == len(direct.events)
    assert flow.response.body == direct.response.body, "the stored body is the decoded stream"


def _compress(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    if encoding == "br":
        import brotli

        return bytes(brotli.compress(data))
    from backports import zstd  # mitmproxy's dependency

    return bytes(zstd.compress(data))


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_stream_passes_through_and_is_decoded_for_the_record(
    proxy: Proxy, encoding: str
) -> None:
    plain = read_fixture("anthropic/messages-stream-thinking-signature.response.sse.txt")
    wire = _compress(encoding, plain)
    proxy.upstream.script(
        "/v1/messages",
        headers={"content-type": SSE, "content-encoding": encoding},
        chunks=_wire_chunks(wire),
    )
    status, received, exc = exchange(
        proxy.url, "/v1/messages", ANTHROPIC_REQUEST, ANTHROPIC_HEADERS
    )
    assert exc is None and status == 200 and received == wire
    flow = newest_flow()
    assert not flow.metadata.parse_errors and flow.error is None
    assert flow.response is not None and flow.response.body == plain
    view = RequestView(
        method="POST",
        url=proxy.url + "/v1/messages",
        host="127.0.0.1",
        path="/v1/messages",
        headers=ANTHROPIC_HEADERS,
        body=ANTHROPIC_REQUEST,
    )
    direct = feed_whole(registry.get("anthropic"), "messages", view, SSE, None, plain)
    assert captured(flow) == captured(LLMFlow(response=direct.response))
    assert flow.usage == direct.response.usage


# ---- broken bodies -----------------------------------------------------------------------------


KIRO_REQUEST = json.dumps(
    {
        "conversationState": {
            "currentMessage": {"userInputMessage": {"content": "hi", "modelId": "auto"}},
            "history": [],
        }
    }
).encode()
ANTHROPIC_REQUEST = json.dumps(
    {
        "model": "claude-sonnet-4-0",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()
ANTHROPIC_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
SSE = "text/event-stream; charset=utf-8"


def kiro_text() -> bytes:
    return read_fixture("kiro/gar-cli-text.response.bin")


def thinking_sse() -> bytes:
    return read_fixture("anthropic/messages-stream-thinking-signature.response.sse.txt")


def flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def run_bad(
    proxy: Proxy,
    path: str,
    request: bytes,
    req_headers: dict[str, str],
    resp_headers: dict[str, str],
    chunks: list[bytes | object],
) -> LLMFlow:
    """Serve ``chunks``; the client must get every byte sent before any disconnect."""
    proxy.upstream.script(path, headers=resp_headers, chunks=chunks)
    sent = b"".join(c for c in chunks if isinstance(c, bytes))
    cut = FakeUpstream.DISCONNECT in chunks
    if cut:
        sent = b"".join(
            c for c in chunks[: chunks.index(FakeUpstream.DISCONNECT)] if isinstance(c, bytes)
        )
    status, received, exc = exchange(proxy.url, path, request, req_headers)
    assert status == 200
    assert received == sent, "the client receives exactly the upstream bytes"
    assert (exc is not None) is cut, exc
    flow = newest_flow()
    assert flow.error is not None, "the problem is recorded on the flow"
    assert flow.response is not None
    return flow


def run_bad_anthropic(proxy: Proxy, chunks: list[bytes | object]) -> LLMFlow:
    """:func:`run_bad` for a streamed Anthropic Messages call answered with SSE ``chunks``."""
    return run_bad(
        proxy, "/v1/messages", ANTHROPIC_REQUEST, ANTHROPIC_HEADERS, {"content-type": SSE}, chunks
    )


@pytest.mark.parametrize("where", ["payload", "prelude"])
def test_kiro_frame_with_a_flipped_byte(proxy: Proxy, where: str) -> None:
    data = kiro_text()
    at = 2000 if where == "payload" else 3  # byte 3: the frame's total length
    flow = run_bad(
        proxy,
        "/",
        KIRO_REQUEST,
        KIRO_HEADERS,
        {"content-type": EVENTSTREAM},
        _wire_chunks(flip(data, at)),
    )
    assert flow.provider == "kiro"
    assert flow.error is not None and flow.error.type == "parse"
    assert any("crc" in e.lower() or "length" in e.lower() for e in flow.metadata.parse_errors)
    assert flow.state == "completed", "a parse problem is not a failed call"
    if where == "payload":  # the frames before the bad one were decoded
        assert flow.response is not None and flow.response.text
    assert_still_serving(proxy.url)


def test_bedrock_frame_with_a_flipped_byte(proxy: Proxy) -> None:
    data = read_fixture("bedrock/converse-stream-claude-reasoning.response.bin")
    path = "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"
    request = json.dumps(
        {"messages": [{"role": "user", "content": [{"text": "Hello"}]}], "inferenceConfig": {}}
    ).encode()
    flow = run_bad(
        proxy,
        path,
        request,
        {"content-type": "application/json"},
        {"content-type": EVENTSTREAM},
        _wire_chunks(flip(data, len(data) - 300)),
    )
    assert flow.provider == "bedrock"
    assert any("crc" in e.lower() for e in flow.metadata.parse_errors)
    assert flow.response is not None and flow.response.thinking
    assert_still_serving(proxy.url)


def test_kiro_stream_cut_inside_a_frame(proxy: Proxy) -> None:
    data = kiro_text()[:5001]
    flow = run_bad(
        proxy, "/", KIRO_REQUEST, KIRO_HEADERS, {"content-type": EVENTSTREAM}, _wire_chunks(data)
    )
    assert any("truncated" in e for e in flow.metadata.parse_errors)
    assert flow.response is not None and flow.response.body == data
    assert_still_serving(proxy.url)


def test_sse_stream_cut_by_a_disconnect(proxy: Proxy) -> None:
    data = thinking_sse()
    head = data[: data.index(b"event: content_block_stop")]
    flow = run_bad_anthropic(proxy, [head[:700], head[700:], FakeUpstream.DISCONNECT])
    assert flow.state == "error"
    assert flow.error is not None and flow.error.type == "network"
    assert flow.response is not None and flow.response.thinking, "the partial thinking is kept"
    assert flow.response.body == head
    assert_still_serving(proxy.url)


@pytest.mark.parametrize("end", ["message_delta", "content_block_start"])
def test_sse_stream_that_ends_early_without_an_error(proxy: Proxy, end: str) -> None:
    """The connection closes cleanly, at an event boundary, before ``message_stop``."""
    data = thinking_sse()
    head = data[: data.rindex(f"event: {end}".encode())]  # the last one: after the thinking
    flow = run_bad_anthropic(proxy, _wire_chunks(head))
    assert flow.state == "error" and not flow.metadata.parse_errors
    assert flow.error is not None and flow.error.code == "truncated_stream"
    assert flow.response is not None and flow.response.thinking
    assert_still_serving(proxy.url)


def test_sse_stream_cut_inside_an_event(proxy: Proxy) -> None:
    data = thinking_sse()
    flow = run_bad_anthropic(proxy, _wire_chunks(data[:1500]))
    assert any("ended inside an SSE event" in e for e in flow.metadata.parse_errors)
    assert_still_serving(proxy.url)


WRONG_ENCODINGS = [
    ("plain-labelled-gzip", "gzip", lambda d: d),
    ("gzip-labelled-br", "br", gzip.compress),
    ("unknown-encoding", "x-weird", lambda d: d),
    ("gzip-cut-short", "gzip", lambda d: gzip.compress(d)[:400]),
]


@pytest.mark.parametrize(
    ("name", "encoding", "make"), WRONG_ENCODINGS, ids=[w[0] for w in WRONG_ENCODINGS]
)
def test_stream_with_a_wrong_content_encoding(
    proxy: Proxy, name: str, encoding: str, make: Any
) -> None:
    body = make(thinking_sse())
    flow = run_bad(
        proxy,
        "/v1/messages",
        ANTHROPIC_REQUEST,
        ANTHROPIC_HEADERS,
        {"content-type": SSE, "content-encoding": encoding},
        _wire_chunks(body),
    )
    assert flow.metadata.parse_errors
    assert flow.error is not None and flow.error.type in ("parse", "network")
    assert flow.response is not None and flow.response.headers["content-encoding"] == encoding
    assert_still_serving(proxy.url)


def test_json_body_labelled_gzip_that_is_not(proxy: Proxy) -> None:
    body = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        }
    ).encode()
    request = json.dumps(
        {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    flow = run_bad(
        proxy,
        "/v1/messages",
        request,
        ANTHROPIC_HEADERS,
        {"content-type": "application/json", "content-encoding": "gzip"},
        [body],
    )
    assert any("gzip" in e for e in flow.metadata.parse_errors)
    assert flow.error is not None and flow.error.type == "parse"
    assert_still_serving(proxy.url)


def test_gemini_stream_dropped_mid_way(proxy: Proxy) -> None:
    """The fake's ``x-fake-die-midstream``: the connection drops after three events."""
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    request = json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": "one two three four five six seven"}]}]}
    ).encode()
    status, received, exc = exchange(
        proxy.url, path, request, {"content-type": "application/json", "x-fake-die-midstream": "1"}
    )
    assert status == 200 and exc is not None
    flow = newest_flow()
    assert flow.state == "error" and flow.error is not None and flow.error.type == "network"
    assert flow.response is not None and flow.response.body == received
    texts = [
        json.loads(line[6:])["candidates"][0]["content"]["parts"][0]["text"]
        for line in received.decode().split("\r\n")
        if line.startswith("data: ")
    ]
    assert flow.response.text == "".join(texts) and texts
    assert_still_serving(proxy.url)

"""Anthropic Messages: every recording rebuilt whole and in random chunks, plus the shapes no
recording shows (in-stream error, redacted thinking, Vertex), detection and error mapping."""

from __future__ import annotations

import json

import pytest

from flowbook.model import ErrorType, LLMRequest, LLMResponse, StreamEvent
from flowbook.providers import registry
from flowbook.providers.anthropic import (
    AnthropicAssembler,
    AnthropicProvider,
    AnthropicVertexProvider,
    anthropic_usage,
)
from flowbook.providers.base import HOST, PATH, SHAPE, RequestView
from tests.helpers.fixtures import (
    canonical,
    feed_in_random_chunks,
    feed_whole,
    load_cassette,
    read_fixture,
    run_interaction,
)

P = AnthropicProvider()
SEEDS = range(5)
CASSETTES = [
    "anthropic/messages-cache-write-then-read.cassette.yaml",
    "anthropic/messages-error-400-invalid-request.cassette.yaml",
    "anthropic/messages-stream-thinking-signature.cassette.yaml",
    "anthropic/messages-stream-tool-use-gzip.cassette.yaml",
    "anthropic/messages-stream-tool-use-input-json-delta.cassette.yaml",
]
SSE_FILES = [
    "anthropic/messages-stream-thinking-signature.response.sse.txt",
    "anthropic/messages-stream-tool-use-gzip.response.decoded.sse.txt",
    "anthropic/messages-stream-tool-use-input-json-delta.response-1.sse.txt",
]
CASES = [(c, i) for c in CASSETTES for i in range(len(load_cassette(c)))]


def recorded_events(sse_text: bytes) -> list[dict]:
    """The recording's events read naively (one ``data:`` line each), for expected values."""
    return [
        json.loads(line[5:]) for line in sse_text.decode().splitlines() if line.startswith("data:")
    ]


def deltas(events: list[dict], kind: str, field: str) -> str:
    return "".join(
        e["delta"][field]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == kind
    )


@pytest.mark.parametrize(("cassette", "index"), CASES)
def test_every_recording_rebuilds_the_same_in_random_chunks(cassette: str, index: int) -> None:
    ia = load_cassette(cassette)[index]
    whole = run_interaction(P, ia)
    assert whole.decoder_errors == []
    if ia.response.status < 400:
        assert whole.error is None
        assert whole.response.usage is not None and whole.response.usage.source == "reported"
        assert whole.response.stop_reason in ("end_turn", "tool_use")
    for seed in SEEDS:
        assert canonical(run_interaction(P, ia, seed=seed, max_size=17)) == canonical(whole)


@pytest.mark.parametrize("name", SSE_FILES)
def test_extracted_streams_match_their_recorded_deltas(name: str) -> None:
    body = read_fixture(name)
    events = recorded_events(body)
    results = [feed_whole(P, "messages", LLMRequest(), "text/event-stream", None, body)]
    results += [
        feed_in_random_chunks(P, "messages", LLMRequest(), "text/event-stream", None, body, s)
        for s in SEEDS
    ]
    for r in results:
        assert r.error is None and r.decoder_errors == []
        assert r.response.text == deltas(events, "text_delta", "text")
        assert r.response.thinking == deltas(events, "thinking_delta", "thinking")
        sig = deltas(events, "signature_delta", "signature")
        assert r.response.thinking_signature == (sig or None)
        assert canonical(r) == canonical(results[0])


def test_thinking_with_signature_and_usage() -> None:
    [ia] = load_cassette("anthropic/messages-stream-thinking-signature.cassette.yaml")
    r = run_interaction(P, ia, seed=3).response
    assert r.thinking.startswith("This is a straightforward question about pedestrian safety.")
    assert r.thinking.endswith("help prevent accidents.")
    assert r.thinking_signature and r.thinking_signature.startswith("EvMCCkYICxgCKkCHP2cS")
    assert r.text.startswith("Here are the basic steps for safely crossing the street:")
    assert r.model == "claude-sonnet-4-20250514"
    assert r.response_id == "msg_01ALwQ87pTS7hH1PjSdC9wJD"
    assert r.stop_reason == "end_turn"
    u = r.usage
    assert u is not None
    # message_start's placeholder output_tokens (1) is overwritten by message_delta's 282.
    assert (u.input, u.output, u.cache_read, u.cache_write, u.total) == (43, 282, 0, 0, 325)
    assert u.details["service_tier"] == "standard"


def test_thinking_request_is_parsed() -> None:
    [ia] = load_cassette("anthropic/messages-stream-thinking-signature.cassette.yaml")
    req = run_interaction(P, ia).request
    assert req.model == "claude-sonnet-4-0" and req.stream is True
    assert req.params == {
        "max_tokens": 4096,
        "thinking": {"budget_tokens": 1024, "type": "enabled"},
    }
    assert req.messages[0].role == "user"
    assert req.messages[0].text == "How do I cross the street?"


def test_tool_use_and_server_tool_use() -> None:
    ia1, ia2 = load_cassette("anthropic/messages-stream-tool-use-input-json-delta.cassette.yaml")
    r = run_interaction(P, ia1, seed=1).response
    server, client = r.tool_calls
    assert (server.type, server.name, server.id) == (
        "server_tool_use",
        "tool_search_tool_bm25",
        "srvtoolu_01S5swZdBmTzLDVzwcT5LbHp",
    )
    assert server.arguments == {"query": "USD EUR exchange rate currency conversion"}
    assert (client.type, client.name) == ("function", "get_exchange_rate")
    assert client.arguments == {"from_currency": "USD", "to_currency": "EUR"}
    assert client.arguments_raw == '{"from_currency": "USD", "to_currency": "EUR"}'
    [result] = r.extra["server_tool_results"]
    assert result["type"] == "tool_search_tool_result"
    assert r.text == (
        "Let me search for a tool that can provide current exchange rate information."
        "I found the right tool! Let me fetch the current USD to EUR exchange rate for you."
    )
    assert r.stop_reason == "tool_use"
    u = r.usage
    assert u is not None and (u.input, u.output) == (1591, 175)
    assert u.details["server_tool_use"] == {"web_search_requests": 0, "web_fetch_requests": 0}
    second = run_interaction(P, ia2, seed=2).response
    assert second.text.startswith("The current exchange rate is **1 USD = 0.92 EUR**.")
    assert second.usage is not None and second.usage.output == 59


def test_tool_history_request_is_parsed() -> None:
    _, ia2 = load_cassette("anthropic/messages-stream-tool-use-input-json-delta.cassette.yaml")
    req = run_interaction(P, ia2).request
    assistant, tool_turn = req.messages[1], req.messages[2]
    assert [p.type for p in assistant.parts] == [
        "text",
        "tool_call",
        "tool_result",
        "text",
        "tool_call",
    ]
    call = assistant.parts[4]
    assert (call.id, call.name) == ("toolu_01EFn5wTNBYA8Reni8rbmnHT", "get_exchange_rate")
    assert call.arguments == {"from_currency": "USD", "to_currency": "EUR"}
    [result] = tool_turn.parts
    assert result.tool_call_id == call.id and result.content == "1 USD = 0.92 EUR"
    assert not result.is_error
    names = [(t.name, t.type) for t in req.tools]
    assert names == [
        ("get_exchange_rate", "function"),
        ("stock_lookup", "function"),
        ("tool_search_tool_bm25", "tool_search_tool_bm25_20251119"),
    ]
    assert req.tools[0].parameters["required"] == ["from_currency", "to_currency"]
    assert req.params["tool_choice"] == {"type": "auto"}


def test_gzip_stream_tool_without_parameters_gets_empty_object() -> None:
    [ia] = load_cassette("anthropic/messages-stream-tool-use-gzip.cassette.yaml")
    assert ia.response.content_encoding == "gzip"
    for seed in (None, 0, 1, 2):
        r = run_interaction(P, ia, seed=seed)
        [call] = r.response.tool_calls
        assert call.name == "pelican_name_generator"
        assert call.arguments == {} and call.arguments_raw == "{}"
        assert r.response.body == read_fixture(
            "anthropic/messages-stream-tool-use-gzip.response.decoded.sse.txt"
        )


def test_cache_write_then_read() -> None:
    write, read = (
        run_interaction(P, ia).response
        for ia in load_cassette("anthropic/messages-cache-write-then-read.cassette.yaml")
    )
    assert write.text == read.text == "OK"
    assert write.usage is not None and read.usage is not None
    assert (write.usage.input, write.usage.cache_write, write.usage.cache_read) == (1592, 1590, 0)
    assert write.usage.details["cache_write_5m"] == 1590
    assert write.usage.details["cache_write_1h"] == 0
    assert (read.usage.input, read.usage.cache_write, read.usage.cache_read) == (1592, 0, 1590)
    assert read.usage.details["input_uncached"] == 2
    assert (read.usage.output, read.usage.reasoning, read.usage.total) == (4, 0, 1596)


def test_cache_request_system_string_and_odd_system_role() -> None:
    ia, _ = load_cassette("anthropic/messages-cache-write-then-read.cassette.yaml")
    req = run_interaction(P, ia).request
    assert req.system == "Reply with OK."
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "system"]
    assert req.stream is False


def test_http_error_body() -> None:
    [ia] = load_cassette("anthropic/messages-error-400-invalid-request.cassette.yaml")
    err = run_interaction(P, ia).error
    assert err is not None
    assert (err.type, err.status, err.code, err.retryable) == (
        ErrorType.BAD_REQUEST,
        400,
        "invalid_request_error",
        False,
    )
    assert err.message.startswith("This model does not support effort level 'xhigh'")


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("invalid_request_error", 400, ErrorType.BAD_REQUEST),
        ("authentication_error", 401, ErrorType.AUTHENTICATION),
        ("permission_error", 403, ErrorType.AUTHENTICATION),
        ("not_found_error", 404, ErrorType.MODEL_UNAVAILABLE),
        ("rate_limit_error", 429, ErrorType.RATE_LIMIT),
        ("overloaded_error", 529, ErrorType.SERVER_ERROR),
        ("api_error", 500, ErrorType.SERVER_ERROR),
        ("timeout_error", 504, ErrorType.TIMEOUT),
        ("billing_error", 402, ErrorType.OTHER),
        ("something_new", 503, ErrorType.SERVER_ERROR),
    ],
)
def test_error_types(kind: str, status: int, expected: ErrorType) -> None:
    body = {"type": "error", "error": {"type": kind, "message": "m"}, "request_id": "req_1"}
    err = P.parse_error(status, body, {})
    assert (err.type, err.code, err.message, err.status) == (expected, kind, "m", status)
    assert P.parse_error(status, b"<html>bad gateway</html>", {}).message.startswith("<html>")


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "model": "claude-x",
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 20,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
            "output_tokens": 1,
        },
    },
}


def block(i: int, cb: dict) -> dict:
    return {"type": "content_block_start", "index": i, "content_block": cb}


def delta(i: int, d: dict) -> dict:
    return {"type": "content_block_delta", "index": i, "delta": d}


def test_in_stream_error_keeps_partial_text() -> None:
    body = sse(
        START,
        block(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Partial ans"}),
        delta(0, {"type": "text_delta", "text": "wer"}),
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    for seed in (None, 0, 1, 2):
        r = feed_in_random_chunks(
            P, "messages", LLMRequest(), "text/event-stream", None, body, seed
        )
        assert r.response.text == "Partial answer"
        assert r.error is not None
        assert (r.error.type, r.error.code, r.error.retryable) == (
            ErrorType.SERVER_ERROR,
            "overloaded_error",
            True,
        )
        assert r.error.message == "Overloaded"
        assert r.response.usage is not None and r.response.usage.input == 60


def test_redacted_thinking_interleaved_thinking_and_usage_merge() -> None:
    body = sse(
        START,
        block(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"}),
        {"type": "content_block_stop", "index": 0},
        block(1, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(1, {"type": "thinking_delta", "thinking": "Hmm."}),
        delta(1, {"type": "signature_delta", "signature": "sig-1"}),
        block(2, {"type": "text", "text": "Hi"}),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 77, "output_tokens_details": {"thinking_tokens": 50}},
        },
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 60}},
    )
    r = feed_in_random_chunks(P, "messages", LLMRequest(), "text/event-stream", None, body, 4)
    assert r.error is None
    resp = r.response
    assert resp.extra["redacted_thinking"] == ["EmwKAhgBEgy3va"]
    assert (resp.thinking, resp.thinking_signature, resp.text) == ("Hmm.", "sig-1", "Hi")
    assert resp.stop_reason == "max_tokens"
    assert resp.extra["bedrock_invocation_metrics"] == {"inputTokenCount": 60}
    u = resp.usage
    assert u is not None
    # Cache fields from message_start survive a message_delta that only carries output.
    assert (u.input, u.cache_write, u.cache_read, u.output, u.reasoning) == (60, 30, 20, 77, 50)
    assert (u.details["cache_write_5m"], u.details["cache_write_1h"]) == (10, 20)


def test_bedrock_style_events_without_event_names() -> None:
    body = read_fixture("anthropic/messages-stream-tool-use-input-json-delta.response-1.sse.txt")
    named = feed_whole(P, "messages", LLMRequest(), "text/event-stream", None, body)
    asm = AnthropicAssembler(LLMRequest(), LLMResponse())
    for data in recorded_events(body):
        asm.feed(StreamEvent(t=0.0, event=None, data=data))
    asm.finish()
    assert asm.error is None
    assert asm.response.to_dict() == named.response.to_dict(include_events=False) | {
        "body": None,
        "headers": {},
        "status_code": 0,
    }


def test_first_output_is_the_first_text_or_tool_event() -> None:
    body = read_fixture("anthropic/messages-stream-thinking-signature.response.sse.txt")
    r = feed_whole(P, "messages", LLMRequest(), "text/event-stream", None, body)
    assert r.first_output is not None
    ev = r.events[r.first_output].data
    assert ev["delta"] == {"type": "thinking_delta", "thinking": "This"}


def test_malformed_events_are_recorded_not_raised() -> None:
    asm = AnthropicAssembler(LLMRequest(), LLMResponse())
    assert asm.feed(StreamEvent(0.0, "message_start", "{not json")) is False
    assert asm.error is not None and asm.error.type == ErrorType.PARSE
    asm.feed(StreamEvent(0.0, None, {"type": "content_block_delta", "delta": {}}))  # no index
    asm.feed(StreamEvent(0.0, None, delta(9, {"type": "input_json_delta", "partial_json": "{"})))
    asm.feed(StreamEvent(0.0, None, {"type": "ping"}))
    asm.finish()
    assert len(asm.response.extra["parse_errors"]) == 3
    body_asm = AnthropicAssembler(LLMRequest(), LLMResponse())
    body_asm.feed_body(b"<html>not json</html>")
    assert body_asm.error is not None and body_asm.error.type == ErrorType.PARSE


def test_non_streamed_body_with_all_block_kinds() -> None:
    body = {
        "id": "msg_2",
        "model": "claude-y",
        "content": [
            {"type": "thinking", "thinking": "T", "signature": "S"},
            {"type": "redacted_thinking", "data": "R"},
            {"type": "text", "text": "A"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
            {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"q": "y"}},
            {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 6},
    }
    asm = AnthropicAssembler(LLMRequest(), LLMResponse())
    asm.feed_body(body)
    asm.finish()
    r = asm.response
    assert (r.thinking, r.thinking_signature, r.text, r.stop_reason) == ("T", "S", "A", "tool_use")
    assert [(c.type, c.name, c.arguments) for c in r.tool_calls] == [
        ("function", "f", {"x": 1}),
        ("server_tool_use", "web_search", {"q": "y"}),
    ]
    assert r.tool_calls[0].arguments_raw == '{"x": 1}'
    assert r.extra["redacted_thinking"] == ["R"]
    assert r.extra["server_tool_results"][0]["type"] == "web_search_tool_result"
    assert r.usage is not None and (r.usage.input, r.usage.output, r.usage.total) == (5, 6, 11)


def test_usage_without_cache_fields() -> None:
    u = anthropic_usage({"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": None})
    assert (u.input, u.output, u.cache_read, u.cache_write, u.source) == (3, 4, 0, 0, "reported")


def view(host: str, path: str, body: object = None, **headers: str) -> RequestView:
    raw = json.dumps(body).encode() if body is not None else b""
    return RequestView("POST", f"https://{host}{path}", host, path, dict(headers), raw)


ANTHROPIC_BODY = {"model": "m", "max_tokens": 5, "system": "s", "messages": []}


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (view("api.anthropic.com", "/v1/messages?beta=true"), ("messages", HOST)),
        (view("api.anthropic.com", "/v1/messages"), ("messages", HOST)),
        (view("api.anthropic.com", "/v1/messages/count_tokens"), ("other", HOST)),
        (view("api.anthropic.com", "/v1/models"), ("other", HOST)),
        (
            view(
                "localhost", "/anthropic/v1/messages", None, **{"anthropic-version": "2023-06-01"}
            ),
            ("messages", PATH),
        ),
        (view("gw.corp", "/v1/messages", ANTHROPIC_BODY), ("messages", PATH)),
        (
            view("gw.corp", "/v1/messages/count_tokens", {}, **{"anthropic-version": "x"}),
            ("other", PATH),
        ),
        (view("gw.corp", "/llm", ANTHROPIC_BODY), ("messages", SHAPE)),
        (view("gw.corp", "/v1/messages", {"model": "m", "messages": []}), None),
        (view("api.openai.com", "/v1/chat/completions", {"model": "m", "messages": []}), None),
    ],
)
def test_detection(req: RequestView, expected: tuple[str, int] | None) -> None:
    d = P.detect(req)
    assert (None if d is None else (d.api, d.strength)) == expected
    if d is not None:
        assert d.provider == "anthropic"


VERTEX_PATH = (
    "/v1/projects/p/locations/us-east5/publishers/anthropic/models/"
    "claude-sonnet-4@20250514:streamRawPredict"
)


def test_vertex_detection_request_and_stream() -> None:
    body = {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
        "system": [{"type": "text", "text": "be brief"}, {"type": "text", "text": "really"}],
    }
    req = view("us-east5-aiplatform.googleapis.com", VERTEX_PATH, body)
    found = registry.detect(req)
    assert found is not None
    provider, det = found
    assert (provider.name, det.provider, det.api, det.strength) == (
        "anthropic_vertex",
        "anthropic_vertex",
        "messages",
        HOST,
    )
    assert registry.get("anthropic_vertex") is provider
    assert P.detect(req) is not None and P.detect(req).strength == SHAPE  # type: ignore[union-attr]
    parsed = provider.parse_request(req, det.api)
    assert parsed.model == "claude-sonnet-4@20250514" and parsed.stream is True
    assert parsed.system == "be brief\nreally"
    assert parsed.params["anthropic_version"] == "vertex-2023-10-16"
    assert parsed.messages[0].text == "hi"
    body_bytes = read_fixture("anthropic/messages-stream-thinking-signature.response.sse.txt")
    r = feed_in_random_chunks(provider, det.api, req, "text/event-stream", None, body_bytes, 7)
    assert r.error is None and r.response.thinking_signature is not None
    non_stream = view(
        "aiplatform.googleapis.com", VERTEX_PATH.replace("streamRawPredict", "rawPredict")
    )
    d2 = AnthropicVertexProvider().detect(non_stream)
    assert d2 is not None and d2.api == "messages"
    assert AnthropicVertexProvider().parse_request(non_stream, "messages").stream is False


def test_request_block_kinds_are_mapped() -> None:
    body = {
        "model": "claude",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://x/doc.pdf"}},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "bad",
                        "is_error": True,
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "th", "signature": "sg"},
                    {"type": "redacted_thinking", "data": "rd"},
                    {"type": "container_upload", "file_id": "f"},
                ],
            },
        ],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
    }
    req = P.parse_request(view("api.anthropic.com", "/v1/messages", body), "messages")
    image, doc, result = req.messages[0].parts
    assert (image.type, image.media_type, image.data) == ("image", "image/png", "AAA")
    assert (doc.type, doc.url) == ("document", "https://x/doc.pdf")
    assert (result.type, result.tool_call_id, result.content, result.is_error) == (
        "tool_result",
        "t1",
        "bad",
        True,
    )
    thinking, redacted, other = req.messages[1].parts
    assert (thinking.type, thinking.text, thinking.signature) == ("thinking", "th", "sg")
    assert (redacted.type, redacted.redacted, redacted.data) == ("thinking", True, "rd")
    assert other.type == "other" and other.content["file_id"] == "f"
    [tool] = req.tools
    assert (tool.name, tool.type, tool.parameters) == (
        "web_search",
        "web_search_20250305",
        {"max_uses": 3},
    )
    garbage = P.parse_request(
        RequestView(
            "POST",
            "https://api.anthropic.com/v1/messages",
            "api.anthropic.com",
            "/v1/messages",
            {},
            b"\xff{",
        ),
        "messages",
    )
    assert garbage.model is None and garbage.messages == [] and garbage.body == b"\xff{"

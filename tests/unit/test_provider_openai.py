"""OpenAI provider: real recordings (whole and in random chunks), synthetic edge cases,
request parsing, error mapping and detection."""

from __future__ import annotations

import json

import pytest

from flowbook.model import ErrorType, LLMRequest
from flowbook.providers import registry
from flowbook.providers.base import HOST, PATH, SSE, RequestView
from flowbook.providers.openai import OpenAIProvider, api_for_path
from tests.helpers.fixtures import (
    canonical,
    feed_body,
    feed_in_random_chunks,
    feed_whole,
    load_cassette,
    read_fixture,
    run_interaction,
    split_random,
)

OPENAI = registry.get("openai")
SEEDS = range(6)
CASSETTES = [
    "openai/chat-stream-toolcalls-include-usage.cassette.yaml",
    "openai/responses-stream-function-call-then-text.cassette.yaml",
    "openai/responses-stream-reasoning-usage.cassette.yaml",
    "openai/chat-error-404-model-not-found.cassette.yaml",
]
CASES = [(c, i) for c in CASSETTES for i in range(len(load_cassette(c)))]


def replay(cassette: str, index: int, seed: int | None = None, max_size: int = 64):
    ia = load_cassette(cassette)[index]
    det = registry.detect(ia.request.view())
    assert det is not None
    return run_interaction(det[0], ia, seed=seed, max_size=max_size)


def view(url: str, body: object = None, method: str = "POST", port: int | None = None):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    raw = json.dumps(body).encode() if body is not None else b""
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return RequestView(method, url, parts.hostname or "", path, {}, raw, port or parts.port)


def sse(*chunks: object) -> bytes:
    return b"".join(
        b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + b"\n\n"
        for c in chunks
    )


def chat_request() -> LLMRequest:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    return OPENAI.parse_request(view("https://api.openai.com/v1/chat/completions", body), "chat")


# --- the helper itself -------------------------------------------------------------------------


def test_split_random_keeps_bytes_and_respects_bounds() -> None:
    data = bytes(range(256)) * 3
    pieces = split_random(data, seed=3, min_size=1, max_size=7)
    assert b"".join(pieces) == data
    assert all(1 <= len(p) <= 7 for p in pieces)
    assert split_random(data, seed=3, max_size=7) == pieces  # seeded: reproducible


@pytest.mark.parametrize(
    ("cassette", "index", "extracted"),
    [
        ("openai/chat-stream-toolcalls-include-usage.cassette.yaml", 0, "response-1"),
        ("openai/chat-stream-toolcalls-include-usage.cassette.yaml", 1, "response-2"),
        ("openai/responses-stream-function-call-then-text.cassette.yaml", 0, "response-1"),
        ("openai/responses-stream-function-call-then-text.cassette.yaml", 1, "response-2"),
    ],
)
def test_extracted_sse_bodies_parse_like_the_cassette(
    cassette: str, index: int, extracted: str
) -> None:
    body = read_fixture(cassette.replace("cassette.yaml", f"{extracted}.sse.txt"))
    ia = load_cassette(cassette)[index]
    assert ia.response.decoded_body() == body
    det = OPENAI.detect(ia.request.view())
    assert det is not None
    from_file = feed_whole(OPENAI, det.api, ia.request.view(), "text/event-stream", None, body)
    assert canonical(from_file) == canonical(run_interaction(OPENAI, ia))


# --- every recording: chunking never changes the result -----------------------------------------


@pytest.mark.parametrize(("cassette", "index"), CASES)
def test_random_chunking_matches_whole_body(cassette: str, index: int) -> None:
    whole = canonical(replay(cassette, index))
    for seed in SEEDS:
        assert canonical(replay(cassette, index, seed)) == whole, f"seed {seed}"
    assert canonical(replay(cassette, index, 99, max_size=2)) == whole


def test_chat_stream_tool_call_turn() -> None:
    r = replay(CASSETTES[0], 0)
    assert r.framing == SSE and r.error is None and not r.decoder_errors
    assert r.request.model == "gpt-4o-mini" and r.request.stream
    assert r.request.params["stream_options"] == {"include_usage": True}
    assert [t.name for t in r.request.tools] == ["get_capital"]
    [call] = r.response.tool_calls
    assert (call.name, call.arguments) == ("get_capital", {"country": "UK"})
    assert call.id and call.id.startswith("call_")
    assert r.response.stop_reason == "tool_calls"
    assert r.response.text == ""
    assert r.response.model == "gpt-4o-mini-2024-07-18"
    assert r.response.usage is not None and r.response.usage.source == "reported"
    assert r.first_output == 0  # the first chunk already holds the first tool-call fragment


def test_chat_stream_text_turn_usage_and_history() -> None:
    r = replay(CASSETTES[0], 1)
    assert r.response.text == "The capital of the UK is London."
    u = r.response.usage
    assert u is not None and (u.input, u.output, u.total) == (78, 9, 87)
    assert r.response.stop_reason == "stop"
    assert r.response.response_id and r.response.response_id.startswith("chatcmpl-")
    roles = [m.role for m in r.request.messages]
    assert roles == ["user", "assistant", "tool"]
    call = r.request.messages[1].parts[0]
    assert call.type == "tool_call" and call.arguments == {"country": "UK"}
    result = r.request.messages[2].parts[0]
    assert result.type == "tool_result" and result.tool_call_id == call.id
    assert result.content == "London"


def test_responses_function_call_then_text() -> None:
    first = replay(CASSETTES[1], 0)
    [call] = first.response.tool_calls
    assert (call.name, call.arguments) == ("multiply", {"a": 1231, "b": 2331})
    assert call.id == "call_sVidsfFJ6zlzRpelrPkTPlpd"
    assert first.response.stop_reason == "tool_calls"
    assert first.response.usage is not None
    assert (first.response.usage.input, first.response.usage.output) == (58, 23)
    second = replay(CASSETTES[1], 1)
    assert second.response.text == "1231 × 2331 = **2,869,461**"
    assert second.response.stop_reason == "stop"
    assert second.response.model == "gpt-5.5-2026-04-23"
    kinds = [[p.type for p in m.parts] for m in second.request.messages]
    assert kinds == [["text"], ["tool_call"], ["tool_result"]]
    assert second.request.messages[2].parts[0].content == "2869461"
    assert second.request.params["reasoning"] == {"effort": "low"}


def test_responses_reasoning_usage() -> None:
    r = replay(CASSETTES[2], 0)
    u = r.response.usage
    assert u is not None
    assert (u.input, u.output, u.reasoning, u.total) == (53, 469, 448, 522)
    assert r.response.tool_calls[0].arguments == {"result": 6666}
    assert r.request.params["tool_choice"] == "required"


def test_http_404_model_not_found() -> None:
    r = replay(CASSETTES[3], 0)
    assert r.error is not None
    assert r.error.type == ErrorType.MODEL_UNAVAILABLE
    assert r.error.status == 404 and r.error.code == "model_not_found"
    assert "gpt-5.2-proo" in r.error.message


# --- synthetic: what no recording shows ----------------------------------------------------------


def _chunk(delta: dict, finish: str | None = None, **top: object) -> dict:
    return {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": delta,
            "finish_reason": finish}], **top}  # fmt: skip


def test_chat_refusal_and_no_usage_without_include_usage() -> None:
    body = sse(
        _chunk({"role": "assistant", "content": None, "refusal": ""}),
        _chunk({"refusal": "I can't "}),
        _chunk({"refusal": "help with that."}),
        _chunk({}, "stop"),
        b"[DONE]",
    )
    for seed in (None, 1, 2):
        r = feed_in_random_chunks(
            OPENAI, "chat", chat_request(), "text/event-stream", None, body, seed
        )
        assert r.response.refusal == "I can't help with that."
        assert r.response.usage is None  # nothing reported: the pipeline estimates
        assert r.response.stop_reason == "stop" and r.error is None


def test_chat_in_stream_error_keeps_partial_text() -> None:
    err = {"error": {"message": "The server had an error", "type": "server_error"}}
    body = sse(_chunk({"content": "Hello"}), _chunk({"content": " wor"}), err)
    r = feed_whole(OPENAI, "chat", chat_request(), "text/event-stream", None, body)
    assert r.response.text == "Hello wor"
    assert r.error is not None and r.error.type == ErrorType.SERVER_ERROR
    assert r.error.retryable


def test_malformed_data_line_is_recorded_not_raised() -> None:
    body = sse(_chunk({"content": "ok"})) + b'data: {"choices": [\n\n' + sse(_chunk({}, "stop"))
    r = feed_whole(OPENAI, "chat", chat_request(), "text/event-stream", None, body)
    assert r.response.text == "ok" and r.response.stop_reason == "stop"
    assert r.error is not None and r.error.type == ErrorType.PARSE
    assert "not JSON" in r.error.message


def test_chat_reasoning_deltas_and_cached_usage() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 30,
        "total_tokens": 130,
        "prompt_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    body = sse(
        _chunk({"reasoning_content": "think "}),
        _chunk({"reasoning": "more"}),
        _chunk({"content": "done"}, "stop"),
        {"id": "c1", "choices": [], "usage": usage},
        b"[DONE]",
    )
    r = feed_whole(OPENAI, "chat", chat_request(), "text/event-stream", None, body)
    assert r.response.thinking == "think more" and r.response.text == "done"
    u = r.response.usage
    assert u is not None
    assert (u.input, u.cache_read, u.cache_write, u.output, u.reasoning) == (100, 64, 8, 30, 20)


def test_chat_non_streamed_body() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "add", "arguments": "{\"a\":1}"}},
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }  # fmt: skip
    r = feed_body(OPENAI, "chat", chat_request(), json.dumps(body))
    assert [(c.id, c.name, c.arguments) for c in r.response.tool_calls] == [
        ("call_1", "add", {"a": 1})
    ]
    assert r.response.stop_reason == "tool_calls" and r.response.model == "gpt-4o-2024-08-06"
    assert r.response.usage is not None and r.response.usage.total == 17


def _resp_events(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def responses_request() -> LLMRequest:
    body = {"model": "gpt-5", "input": "hi", "stream": True}
    return OPENAI.parse_request(view("https://api.openai.com/v1/responses", body), "responses")


def test_responses_error_event_keeps_partial_text() -> None:
    body = _resp_events(
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5"}},
        {"type": "response.output_text.delta", "delta": "Par", "item_id": "m1"},
        {"type": "response.output_text.delta", "delta": "tial", "item_id": "m1"},
        {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None},
    )
    r = feed_whole(OPENAI, "responses", responses_request(), "text/event-stream", None, body)
    assert r.response.text == "Partial" and r.response.response_id == "resp_1"
    assert r.error is not None and r.error.type == ErrorType.RATE_LIMIT
    assert r.error.message == "Slow down"


def test_responses_failed_and_incomplete() -> None:
    failed = _resp_events(
        {"type": "response.output_text.delta", "delta": "x"},
        {"type": "response.failed", "response": {"id": "r", "status": "failed",
         "error": {"code": "server_error", "message": "boom"}}},
    )  # fmt: skip
    r = feed_whole(OPENAI, "responses", responses_request(), "text/event-stream", None, failed)
    assert r.error is not None and r.error.type == ErrorType.SERVER_ERROR
    assert r.response.text == "x" and r.response.stop_reason == "failed"
    usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    incomplete = _resp_events(
        {"type": "response.reasoning_summary_part.added"},
        {"type": "response.reasoning_summary_text.delta", "delta": "plan"},
        {"type": "response.reasoning_summary_part.added"},
        {"type": "response.reasoning_summary_text.delta", "delta": "act"},
        {"type": "response.refusal.delta", "delta": "no"},
        {"type": "response.incomplete", "response": {"status": "incomplete",
         "incomplete_details": {"reason": "max_output_tokens"}, "usage": usage}},
    )  # fmt: skip
    r = feed_whole(OPENAI, "responses", responses_request(), "text/event-stream", None, incomplete)
    assert r.response.thinking == "plan\n\nact" and r.response.refusal == "no"
    assert r.response.stop_reason == "max_output_tokens"
    assert r.error is not None and "max_output_tokens" in r.error.message
    assert r.response.usage is not None and r.response.usage.output == 7


def test_responses_non_streamed_body() -> None:
    body = {
        "id": "resp_9",
        "object": "response",
        "status": "completed",
        "model": "gpt-5",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "why"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi!"}]},
        ],
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
                  "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 1}},
    }  # fmt: skip
    r = feed_body(OPENAI, "responses", responses_request(), body)
    assert (r.response.text, r.response.thinking, r.response.stop_reason) == ("Hi!", "why", "stop")
    u = r.response.usage
    assert u is not None and (u.input, u.cache_read, u.output, u.reasoning) == (10, 4, 3, 1)


# --- request parsing ---------------------------------------------------------------------------


def test_chat_request_parsing() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "look", "arguments": "{\"q\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        ],
        "tools": [{"type": "function", "function": {"name": "look", "description": "Look",
                   "parameters": {"type": "object"}}}],
        "temperature": 0.2,
        "max_tokens": 50,
    }  # fmt: skip
    req = OPENAI.parse_request(view("https://api.openai.com/v1/chat/completions", body), "chat")
    assert req.system == "Be brief.\n\nUse tools."
    assert [m.role for m in req.messages] == ["user", "assistant", "tool"]
    text, inline, linked = req.messages[0].parts
    assert text.text == "What is this?"
    assert (inline.type, inline.media_type, inline.data) == ("image", "image/png", "AAAA")
    assert linked.url == "https://x/y.png"
    assert req.messages[1].parts[0].arguments == {"q": "x"}
    assert req.messages[2].parts[0].tool_call_id == "c1"
    assert [(t.name, t.description, t.parameters) for t in req.tools] == [
        ("look", "Look", {"type": "object"})
    ]
    assert req.params == {"temperature": 0.2, "max_tokens": 50} and not req.stream


def test_responses_request_parsing() -> None:
    body = {
        "model": "gpt-5",
        "instructions": "You are terse.",
        "input": [
            {"role": "developer", "content": "No emojis."},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "hi"},
                         {"type": "input_image", "image_url": "https://i/x.png"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c9", "output": "42"},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {}}, {"type": "web_search"}],
        "max_output_tokens": 99,
        "stream": True,
    }  # fmt: skip
    req = OPENAI.parse_request(view("https://api.openai.com/v1/responses", body), "responses")
    assert req.system == "You are terse.\n\nNo emojis."
    assert [m.role for m in req.messages] == ["user", "assistant", "tool"]
    assert [p.type for p in req.messages[0].parts] == ["text", "image"]
    thinking, call = req.messages[1].parts
    assert thinking.type == "thinking" and thinking.redacted
    assert (call.type, call.id, call.arguments) == ("tool_call", "c9", {})
    assert [(t.name, t.type) for t in req.tools] == [
        ("f", "function"),
        ("web_search", "web_search"),
    ]
    assert req.params == {"max_output_tokens": 99} and req.stream


# --- errors and detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": {"code": "invalid_api_key", "type": "invalid_request_error"}},
         ErrorType.AUTHENTICATION),
        (429, {"error": {"code": "insufficient_quota", "type": "insufficient_quota"}},
         ErrorType.RATE_LIMIT),
        (429, {"error": {"code": "rate_limit_exceeded", "type": "requests"}}, ErrorType.RATE_LIMIT),
        (400, {"error": {"code": "context_length_exceeded"}}, ErrorType.BAD_REQUEST),
        (400, {"error": {"code": "content_filter", "message": "filtered"}},
         ErrorType.CONTENT_FILTER),
        (400, {"error": {"code": None, "type": "invalid_request_error"}}, ErrorType.BAD_REQUEST),
        (500, {"error": {"type": "server_error"}}, ErrorType.SERVER_ERROR),
        (503, b"<html>upstream down</html>", ErrorType.SERVER_ERROR),
    ],
)  # fmt: skip
def test_parse_error_types(status: int, body: object, expected: ErrorType) -> None:
    err = OPENAI.parse_error(status, body, {})
    assert err.type == expected and err.status == status


def test_insufficient_quota_is_not_retryable() -> None:
    err = OPENAI.parse_error(429, {"error": {"code": "insufficient_quota", "message": "x"}}, {})
    assert err.retryable is False


@pytest.mark.parametrize(
    ("url", "body", "method", "provider", "api", "strength"),
    [
        ("https://api.openai.com/v1/chat/completions", {"model": "m", "messages": []}, "POST",
         "openai", "chat", HOST),
        ("https://api.openai.com/v1/responses", {"model": "m", "input": "x"}, "POST",
         "openai", "responses", HOST),
        ("https://api.openai.com/v1/embeddings", {"model": "m", "input": "x"}, "POST",
         "openai", "embeddings", HOST),
        ("https://api.openai.com/v1/models", None, "GET", "openai", "other", HOST),
        ("https://chatgpt.com/backend-api/codex/responses", {"model": "m", "input": []}, "POST",
         "openai", "responses", HOST),
        ("https://res1.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=1",
         {"messages": []}, "POST", "azure_openai", "chat", HOST),
        ("https://openrouter.ai/api/v1/chat/completions", {"model": "m", "messages": []}, "POST",
         "openrouter", "chat", HOST),
        ("https://api.groq.com/openai/v1/chat/completions", {"model": "m", "messages": []},
         "POST", "groq", "chat", HOST),
        ("http://127.0.0.1:8000/v1/chat/completions", {"model": "m", "messages": []}, "POST",
         "openai_compatible", "chat", PATH),
        ("http://localhost:1234/v1/responses", {"model": "m", "input": "x"}, "POST",
         "openai_compatible", "responses", PATH),
    ],
)  # fmt: skip
def test_detection_table(
    url: str, body: object, method: str, provider: str, api: str, strength: int
) -> None:
    found = registry.detect(view(url, body, method))
    assert found is not None
    p, det = found
    assert (det.provider, det.api, det.strength) == (provider, api, strength)
    assert p.name == provider and registry.get(provider) is p


def test_not_detected() -> None:
    assert OPENAI.detect(view("https://chatgpt.com/backend-api/conversation", {})) is None
    compat = registry.get("openai_compatible")
    # A chat-looking path without a model in the body is not an LLM call we can parse.
    assert compat.detect(view("http://10.0.0.1/v1/chat/completions", {"messages": []})) is None
    assert compat.detect(view("http://10.0.0.1/v1/chat/completions", None, "GET")) is None


def test_azure_model_from_deployment_path() -> None:
    url = "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=x"
    azure = registry.get("azure_openai")
    req = azure.parse_request(view(url, {"messages": [{"role": "user", "content": "x"}]}), "chat")
    assert req.model == "my-gpt4o"
    assert isinstance(azure, OpenAIProvider)


def test_api_for_path() -> None:
    assert api_for_path("/v1/responses/resp_123") == "responses"
    assert api_for_path("/v1/responses/resp_123/input_items") == "other"
    assert api_for_path("/v1/chat/completions/") == "chat"
    assert api_for_path("/v1/files") == "other"


def test_embeddings_body() -> None:
    req = OPENAI.parse_request(
        view("https://api.openai.com/v1/embeddings", {"model": "e", "input": ["a", "b"]}),
        "embeddings",
    )
    assert [m.text for m in req.messages] == ["a", "b"]
    body = {"model": "text-embedding-3-small", "data": [{}, {}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}}  # fmt: skip
    r = feed_body(OPENAI, "embeddings", req, body)
    assert r.response.usage is not None and r.response.usage.input == 4
    assert r.response.extra["embeddings"] == 2

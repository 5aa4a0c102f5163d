"""AWS Bedrock runtime: Converse, ConverseStream and InvokeModel (docs/wire-formats.md §7, §3.7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowbook.model import ErrorType, LLMRequest
from flowbook.providers.base import EVENTSTREAM, HOST, JSON, PATH, SHAPE, RequestView
from flowbook.providers.bedrock import BedrockProvider
from flowbook.streams.eventstream_encode import bedrock_chunk_frame, event_frame, exception_frame
from tests.helpers.fixtures import (
    canonical,
    feed_body,
    feed_in_random_chunks,
    load_cassette,
    run_interaction,
)

ES = "application/vnd.amazon.eventstream"
HOSTNAME = "bedrock-runtime.us-east-1.amazonaws.com"
MODEL = "us.anthropic.claude-sonnet-4-20250514-v1%3A0"
P = BedrockProvider()


def _view(
    op: str = "converse-stream",
    body: dict[str, Any] | None = None,
    host: str = HOSTNAME,
    model: str = MODEL,
    path: str | None = None,
) -> RequestView:
    path = path or f"/model/{model}/{op}"
    raw = json.dumps(body).encode() if body is not None else b""
    return RequestView("POST", f"https://{host}{path}", host, path, {}, raw)


ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 256,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
}


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("op", "body", "expected"),
    [
        ("converse", {"messages": []}, "converse"),
        ("converse-stream", {"messages": []}, "converse"),
        ("invoke", ANTHROPIC_BODY, "messages"),
        ("invoke-with-response-stream", ANTHROPIC_BODY, "messages"),
        ("invoke", {"inputText": "hi", "textGenerationConfig": {}}, "other"),
        ("count-tokens", {"input": {}}, "other"),
    ],
)
def test_detect_operations(op: str, body: dict[str, Any], expected: str) -> None:
    det = P.detect(_view(op, body))
    assert det is not None
    assert (det.provider, det.api, det.strength) == ("bedrock", expected, HOST)


def test_detect_custom_host_shape_and_non_matches() -> None:
    det = P.detect(_view("converse", {"messages": []}, host="127.0.0.1:9000"))
    assert det is not None and (det.api, det.strength) == ("converse", PATH)
    det = P.detect(_view(host="bedrock-runtime.eu-west-1.amazonaws.com", path="/guardrail/x"))
    assert det is not None and (det.api, det.strength) == ("other", HOST)
    converse_body = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 5},
    }
    det = P.detect(_view(host="proxy.local", path="/chat", body=converse_body))
    assert det is not None and (det.api, det.strength) == ("converse", SHAPE)
    anthropic_like = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}
    assert (
        P.detect(_view(host="api.anthropic.com", path="/v1/messages", body=anthropic_like)) is None
    )


def test_framing() -> None:
    assert P.framing(_view("converse-stream"), "converse", ES) == EVENTSTREAM
    assert P.framing(_view("converse-stream"), "converse", "") == EVENTSTREAM
    assert P.framing(_view("converse"), "converse", "application/json") == JSON
    assert P.framing(_view("converse-stream"), "converse", "application/json") == JSON  # error


# ---------------------------------------------------------------- the real recording


def test_real_converse_stream_cassette() -> None:
    [ia] = load_cassette("bedrock/converse-stream-claude-reasoning.cassette.yaml")
    whole = run_interaction(P, ia)
    req = whole.request
    assert req.model == "us.anthropic.claude-sonnet-4-20250514-v1:0"  # URL-decoded path id
    assert req.stream is True
    assert req.messages[0].role == "user" and req.messages[0].text == "Hello"
    assert req.system is None
    assert req.params["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024
    r = whole.response
    assert r.thinking == (
        'The user has greeted me with a simple "Hello". I should respond in a friendly and '
        "welcoming manner. This is a straightforward greeting, so I'll respond warmly and ask "
        "how I can help them today."
    )
    assert r.thinking_signature is not None and r.thinking_signature.startswith("Eu0CCkgIBxAB")
    assert r.thinking_signature.endswith("YAQ==")
    assert r.text == "Hello! It's nice to meet you. How can I help you today?"
    assert r.stop_reason == "end_turn"
    assert r.usage is not None
    assert (r.usage.input, r.usage.output, r.usage.total, r.usage.source) == (
        36,
        73,
        109,
        "reported",
    )
    assert r.extra["latency_ms"] == 1999
    assert "abcdefghijkl" not in json.dumps(r.to_dict(include_events=False)["extra"])  # "p"
    assert whole.error is None and whole.decoder_errors == []
    assert len(whole.events) == 25
    assert whole.first_output == 1
    for seed in range(3):
        assert canonical(run_interaction(P, ia, seed=seed, max_size=40)) == canonical(whole)


def test_corrupted_real_stream_keeps_events_before_the_damage() -> None:
    [ia] = load_cassette("bedrock/converse-stream-claude-reasoning.cassette.yaml")
    body = bytearray(ia.response.body)
    body[len(body) - 300] ^= 0x10  # inside the last frames (messageStop/metadata)
    res = feed_in_random_chunks(P, "converse", ia.request.view(), ES, None, bytes(body), 4)
    assert res.decoder_errors and "CRC" in res.decoder_errors[0]
    assert res.response.text == "Hello! It's nice to meet you. How can I help you today?"
    assert res.response.usage is None  # the metadata frame was lost


# ---------------------------------------------------------------- Converse


def _d(idx: int, delta: dict[str, Any]) -> bytes:
    return event_frame("contentBlockDelta", {"contentBlockIndex": idx, "delta": delta, "p": "abc"})


def test_converse_stream_tool_use_and_cache_usage() -> None:
    frames = [
        event_frame("messageStart", {"role": "assistant", "p": "ab"}),
        _d(0, {"text": "Let me check."}),
        event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        event_frame(
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_1", "name": "w"}}},
        ),
        _d(1, {"toolUse": {"input": '{"city":'}}),
        _d(1, {"toolUse": {"input": ' "Paris"}'}}),
        event_frame("contentBlockStop", {"contentBlockIndex": 1}),
        event_frame("messageStop", {"stopReason": "tool_use"}),
        event_frame(
            "metadata",
            {
                "usage": {
                    "inputTokens": 10,
                    "outputTokens": 20,
                    "totalTokens": 530,
                    "cacheReadInputTokens": 300,
                    "cacheWriteInputTokens": 200,
                },
                "metrics": {"latencyMs": 42},
            },
        ),
    ]
    data = b"".join(frames)
    res = feed_in_random_chunks(P, "converse", LLMRequest(model="m"), ES, None, data, 3)
    r = res.response
    assert r.text == "Let me check."
    [call] = r.tool_calls
    assert (call.id, call.name, call.arguments) == ("tu_1", "w", {"city": "Paris"})
    assert r.stop_reason == "tool_use"
    assert r.usage is not None
    assert (r.usage.input, r.usage.cache_read, r.usage.cache_write, r.usage.output) == (
        510,
        300,
        200,
        20,
    )
    assert r.usage.details["totalTokens"] == 530
    assert r.extra["latency_ms"] == 42


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        ("throttlingException", ErrorType.RATE_LIMIT),
        ("modelStreamErrorException", ErrorType.SERVER_ERROR),
        ("validationException", ErrorType.BAD_REQUEST),
        ("internalServerException", ErrorType.SERVER_ERROR),
        ("serviceUnavailableException", ErrorType.SERVER_ERROR),
    ],
)
def test_converse_stream_exception_frame(exception: str, expected: ErrorType) -> None:
    frames = [_d(0, {"text": "partial"}), exception_frame(exception, "went wrong")]
    res = feed_in_random_chunks(P, "converse", LLMRequest(), ES, None, b"".join(frames), 1)
    assert res.error is not None
    assert (res.error.type, res.error.message, res.error.code) == (
        expected,
        "went wrong",
        exception,
    )
    assert res.response.text == "partial"


def test_parse_converse_request() -> None:
    body = {
        "system": [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Look:"},
                    {"image": {"format": "png", "source": {"bytes": "iVBO"}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s1"}}},
                    {"toolUse": {"toolUseId": "tu_1", "name": "w", "input": {"city": "Paris"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tu_1",
                            "content": [{"json": {"temp": 21}}],
                            "status": "success",
                        }
                    }
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.2, "topP": 0.9},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "w",
                        "description": "weather",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
    }
    req = P.parse_request(_view("converse", body), "converse")
    assert req.model == "us.anthropic.claude-sonnet-4-20250514-v1:0"
    assert req.stream is False
    assert req.system == "You are terse."
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert [p.type for p in req.messages[0].parts] == ["text", "image"]
    assert req.messages[0].parts[1].media_type == "image/png"
    thinking, call = req.messages[1].parts
    assert (thinking.type, thinking.text, thinking.signature) == ("thinking", "hmm", "s1")
    assert (call.type, call.id, call.arguments) == ("tool_call", "tu_1", {"city": "Paris"})
    [result] = req.messages[2].parts
    assert (result.type, result.tool_call_id, result.content) == (
        "tool_result",
        "tu_1",
        [{"temp": 21}],
    )
    assert req.params["max_tokens"] == 512
    assert req.params["temperature"] == 0.2
    assert req.params["top_p"] == 0.9
    assert req.params["tool_choice"] == {"auto": {}}
    [tool] = req.tools
    assert (tool.name, tool.description, tool.parameters) == ("w", "weather", {"type": "object"})


def test_non_stream_converse_body() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sg"}}},
                    {"text": "Calling."},
                    {"toolUse": {"toolUseId": "tu_9", "name": "w", "input": {"a": 1}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
        "metrics": {"latencyMs": 321},
    }
    res = feed_body(P, "converse", LLMRequest(), json.dumps(body))
    r = res.response
    assert (r.thinking, r.thinking_signature, r.text) == ("think", "sg", "Calling.")
    [call] = r.tool_calls
    assert (call.id, call.name, call.arguments, json.loads(call.arguments_raw)) == (
        "tu_9",
        "w",
        {"a": 1},
        {"a": 1},
    )
    assert r.stop_reason == "tool_use"
    assert r.usage is not None and (r.usage.input, r.usage.output) == (7, 3)
    assert r.extra["latency_ms"] == 321
    assert feed_body(P, "converse", LLMRequest(), b"\x00not json").error is not None


# ---------------------------------------------------------------- InvokeModel (Anthropic)

ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Check"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ing."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": 'is"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 12,
            "outputTokenCount": 20,
            "invocationLatency": 500,
            "firstByteLatency": 100,
        },
    },
]


def test_invoke_with_response_stream_anthropic_chunks() -> None:
    view = _view("invoke-with-response-stream", ANTHROPIC_BODY)
    req = P.parse_request(view, "messages")
    assert req.model == "us.anthropic.claude-sonnet-4-20250514-v1:0"
    assert req.stream is True
    assert req.system == "Be brief."
    assert req.messages[0].text == "Weather in Paris?"
    assert [t.name for t in req.tools] == ["get_weather"]
    assert req.params["anthropic_version"] == "bedrock-2023-05-31"
    data = b"".join(bedrock_chunk_frame(e) for e in ANTHROPIC_EVENTS)
    results = [
        feed_in_random_chunks(P, "messages", view, ES, None, data, seed, max_size=23)
        for seed in (None, 1, 2)
    ]
    r = results[0].response
    assert r.text == "Checking."
    [call] = r.tool_calls
    assert (call.id, call.name, call.arguments) == ("toolu_1", "get_weather", {"city": "Paris"})
    assert r.stop_reason == "tool_use"
    assert r.usage is not None and (r.usage.input, r.usage.output) == (12, 20)
    assert r.extra["bedrock_invocation_metrics"]["invocationLatency"] == 500
    assert results[0].error is None
    assert results[0].first_output == 2
    assert all(canonical(x) == canonical(results[0]) for x in results[1:])


def test_invoke_stream_exception_and_bad_chunk() -> None:
    view = _view("invoke-with-response-stream", ANTHROPIC_BODY)
    frames = [bedrock_chunk_frame(e) for e in ANTHROPIC_EVENTS[:3]]
    frames.append(exception_frame("throttlingException", "Too many tokens"))
    res = feed_in_random_chunks(P, "messages", view, ES, None, b"".join(frames), 5)
    assert res.error is not None and res.error.type == ErrorType.RATE_LIMIT
    assert res.response.text == "Check"
    bad = event_frame("chunk", {"bytes": "***not base64***"})
    res = feed_in_random_chunks(P, "messages", view, ES, None, bad, None)
    assert res.error is not None and res.error.type == ErrorType.PARSE


def test_invoke_non_stream_anthropic_body() -> None:
    view = _view("invoke", ANTHROPIC_BODY)
    assert P.parse_request(view, "messages").stream is False
    body = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Sunny."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 9, "output_tokens": 2},
    }
    res = feed_body(P, "messages", view, body)
    assert res.response.text == "Sunny."
    assert res.response.stop_reason == "end_turn"
    assert res.response.usage is not None and res.response.usage.output == 2


def test_invoke_other_model_family() -> None:
    view = _view("invoke-with-response-stream", {"inputText": "hi"}, model="amazon.titan-text-v1")
    det = P.detect(view)
    assert det is not None and det.api == "other"
    chunks = [
        {"outputText": "Hel", "index": 0},
        {
            "outputText": "lo",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3, "outputTokenCount": 2},
        },
    ]
    frames = [event_frame("chunk", {"bytes": _b64(c)}) for c in chunks]
    res = feed_in_random_chunks(P, "other", view, ES, None, b"".join(frames), 0)
    assert res.response.text == "Hello"
    assert res.response.usage is not None and (
        res.response.usage.input,
        res.response.usage.output,
    ) == (3, 2)


def _b64(obj: Any) -> str:
    import base64

    return base64.b64encode(json.dumps(obj).encode()).decode()


# ---------------------------------------------------------------- errors


def test_error_body_without_type_header() -> None:
    """The recorded shape (pydantic-ai): only a message; the status decides."""
    err = P.parse_error(400, {"message": "The provided model identifier is invalid."}, {})
    assert err.type == ErrorType.BAD_REQUEST
    assert err.message == "The provided model identifier is invalid."
    assert err.code is None


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (
            400,
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            ErrorType.BAD_REQUEST,
        ),
        (429, "ThrottlingException", ErrorType.RATE_LIMIT),
        (403, "AccessDeniedException", ErrorType.AUTHENTICATION),
        (424, "ModelErrorException", ErrorType.SERVER_ERROR),
        (408, "ModelTimeoutException", ErrorType.TIMEOUT),
        (404, "ResourceNotFoundException", ErrorType.MODEL_UNAVAILABLE),
        (503, "ServiceUnavailableException", ErrorType.SERVER_ERROR),
    ],
)
def test_error_type_header(status: int, header: str, expected: ErrorType) -> None:
    err = P.parse_error(status, b'{"message":"nope"}', {"X-Amzn-ErrorType": header})
    assert err.type == expected
    assert err.code == header.split(":")[0]
    assert err.message == "nope"
    assert err.status == status

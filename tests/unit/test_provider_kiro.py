"""Kiro / CodeWhisperer GenerateAssistantResponse (docs/wire-formats.md §6)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from flowbook.model import ErrorType, LLMRequest, LLMResponse, StreamEvent
from flowbook.providers import registry
from flowbook.providers.base import EVENTSTREAM, HOST, JSON, PATH, SHAPE, RequestView
from flowbook.providers.kiro import KiroProvider, kiro_input_estimate
from flowbook.streams.eventstream import split_frames
from flowbook.streams.eventstream_encode import error_frame, event_frame, exception_frame
from tests.helpers.fixtures import canonical, feed_in_random_chunks, feed_whole, read_fixture

ES = "application/vnd.amazon.eventstream"
GAR_TARGET = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"
P = KiroProvider()


def _view(
    host: str = "q.us-east-1.amazonaws.com",
    path: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes | dict[str, Any] = b"",
) -> RequestView:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return RequestView("POST", f"https://{host}{path}", host, path, headers or {}, raw)


def _row_view(name: str = "kiro/gar-cli-text.row.json") -> RequestView:
    row = json.loads(read_fixture(name))
    return _view(headers=row["reqHeaders"], body=row["reqBody"].encode())


def _gar_view(body: bytes | dict[str, Any] = b"") -> RequestView:
    return _view(headers={"x-amz-target": GAR_TARGET}, body=body)


def _request(model: str = "claude-sonnet-4.5") -> LLMRequest:
    return LLMRequest(model=model)


def _run(frames: list[bytes], model: str = "claude-sonnet-4.5", seed: int | None = None) -> Any:
    return feed_in_random_chunks(P, "kiro", _request(model), ES, None, b"".join(frames), seed)


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("host", "path", "headers", "expected"),
    [
        ("q.us-east-1.amazonaws.com", "/", {"x-amz-target": GAR_TARGET}, ("kiro", HOST)),
        ("q.eu-central-1.amazonaws.com", "/generateAssistantResponse", {}, ("kiro", HOST)),
        ("codewhisperer.us-east-1.amazonaws.com", "/generateAssistantResponse", {}, ("kiro", HOST)),
        ("runtime.us-east-1.kiro.dev", "/generateAssistantResponse", {}, ("kiro", HOST)),
        (
            "q.us-east-1.amazonaws.com",
            "/?origin=KIRO_CLI",
            {"x-amz-target": "AmazonCodeWhispererService.ListAvailableModels"},
            ("other", HOST),
        ),
        (
            "q.us-east-1.amazonaws.com",
            "/",
            {"x-amz-target": "AmazonCodeWhispererService.SendTelemetryEvent"},
            ("other", HOST),
        ),
        ("127.0.0.1", "/generateAssistantResponse", {}, ("kiro", PATH)),
        ("localhost", "/", {"x-amz-target": GAR_TARGET}, ("kiro", PATH)),
    ],
)
def test_detect(host: str, path: str, headers: dict[str, str], expected: tuple[str, int]) -> None:
    det = P.detect(_view(host, path, headers))
    assert det is not None
    assert (det.api, det.strength) == expected


def test_detect_body_shape_and_non_matches() -> None:
    det = P.detect(_view("proxy.local", "/v1/x", body={"conversationState": {"history": []}}))
    assert det is not None and (det.api, det.strength) == ("kiro", SHAPE)
    assert P.detect(_view("api.openai.com", "/v1/chat/completions", body={"model": "x"})) is None
    assert P.detect(_view("q.amazonaws.com.evil.example", "/")) is None


def test_registry_picks_kiro_for_the_real_capture() -> None:
    found = registry.detect(_row_view())
    assert found is not None
    assert (found[0].name, found[1].api) == ("kiro", "kiro")


# ---------------------------------------------------------------- requests


def test_parse_real_text_request() -> None:
    req = P.parse_request(_row_view(), "kiro")
    assert req.model == "auto"
    assert req.stream is True
    assert req.system is None  # Kiro has no system field (§6.2)
    [msg] = req.messages
    assert msg.role == "user"
    assert msg.text.startswith("[SYSTEM NOTE: This is an automated checkpoint")
    assert req.params["origin"] == "KIRO_CLI"
    assert req.params["chatTriggerType"] == "MANUAL"
    assert req.params["agentTaskType"] == "vibe"
    assert req.params["conversationId"] == "7bb9c137-f057-4b63-baa6-b7a5607e27c5"
    assert req.params["operation"] == "GenerateAssistantResponse"
    assert req.params["envState"]["operatingSystem"] == "linux"
    assert req.params["profileArn"].startswith("arn:aws:codewhisperer:")


def test_parse_real_tool_result_request() -> None:
    body = read_fixture("kiro/gar-cli-toolresult.request.json")
    req = P.parse_request(_gar_view(body), "kiro")
    assert req.model == "auto"
    assert [m.role for m in req.messages] == ["user", "assistant"] * 4 + ["user"]
    call = req.messages[7].parts[-1]
    assert call.type == "tool_call"
    assert (call.id, call.name) == ("tooluse_QSfOosa0r0YluOOQ0MolaE", "introspect")
    assert call.arguments["query"] == "percentage display bottom bar context window usage"
    [result] = req.messages[8].parts  # the current message has empty content: only the result
    assert result.type == "tool_result"
    assert result.tool_call_id == "tooluse_QSfOosa0r0YluOOQ0MolaE"
    assert result.is_error is False
    assert "percentage display" in result.content[0]["documentation"]
    assert len(req.tools) == 13
    tools = {t.name: t for t in req.tools}
    assert {"shell", "read", "write", "introspect"} <= set(tools)
    assert tools["shell"].parameters["type"] == "object"
    assert tools["shell"].description


def test_parse_images_text_results_and_errors() -> None:
    body = {
        "conversationState": {
            "currentMessage": {
                "userInputMessage": {
                    "content": "what is this?",
                    "modelId": "claude-haiku-4.5",
                    "origin": "AI_EDITOR",
                    "images": [{"format": "jpeg", "source": {"bytes": "QUJD"}}],
                    "userInputMessageContext": {
                        "toolResults": [
                            {"toolUseId": "t1", "content": [{"text": "failed"}], "status": "error"}
                        ]
                    },
                }
            }
        }
    }
    req = P.parse_request(_gar_view(body), "kiro")
    assert req.model == "claude-haiku-4.5"
    [msg] = req.messages
    assert [p.type for p in msg.parts] == ["tool_result", "text", "image"]
    assert msg.parts[0].content == "failed" and msg.parts[0].is_error is True
    assert (msg.parts[2].media_type, msg.parts[2].data) == ("image/jpeg", "QUJD")


def test_other_operations_parse_without_messages() -> None:
    view = _view(headers={"x-amz-target": "AmazonCodeWhispererService.ListAvailableModels"})
    req = P.parse_request(view, "other")
    assert req.messages == [] and req.model is None
    assert req.params == {"operation": "ListAvailableModels"}


def test_framing() -> None:
    view = _row_view()
    assert P.framing(view, "kiro", ES) == EVENTSTREAM
    assert P.framing(view, "kiro", "application/x-amz-json-1.0") == JSON


# ---------------------------------------------------------------- real responses


def _contents(name: str, event_type: str) -> list[dict[str, Any]]:
    out = []
    for f in split_frames(read_fixture(name)):
        if f.headers[":event-type"] == event_type:
            out.append(json.loads(f.payload))
    return out


def test_real_text_response_whole_and_chunked() -> None:
    name = "kiro/gar-cli-text.response.bin"
    whole = feed_whole(P, "kiro", _row_view(), ES, None, read_fixture(name))
    expected = "".join(p["content"] for p in _contents(name, "assistantResponseEvent"))
    r = whole.response
    assert r.text == expected
    assert r.text.startswith("## OBJECTIVE\nUnable to determine.")
    assert r.model == "auto"
    assert r.stop_reason == "end_turn"
    assert r.usage is None  # no tokens on the wire: the pipeline estimates
    assert r.extra["credits"] == pytest.approx(0.03580885572139303)
    assert r.extra["credits_unit"] == "credits"
    assert r.extra["context_usage_pct"] == pytest.approx(0.4552000164985657)
    assert r.extra["input_tokens_estimate"] == round(0.4552000164985657 / 100 * 200_000)
    assert whole.error is None and whole.decoder_errors == []
    assert len(whole.events) == 76
    assert whole.first_output == 1
    for seed in range(3):
        chunked = feed_in_random_chunks(P, "kiro", _row_view(), ES, None, read_fixture(name), seed)
        assert canonical(chunked) == canonical(whole)


def test_real_tool_use_response() -> None:
    name = "kiro/gar-cli-tooluse.response.bin"
    whole = feed_whole(P, "kiro", _request("auto"), ES, None, read_fixture(name))
    r = whole.response
    [call] = r.tool_calls
    assert (call.id, call.name) == ("tooluse_QSfOosa0r0YluOOQ0MolaE", "introspect")
    assert call.arguments == {
        "__tool_use_purpose": "查找关于界面中百分比显示的文档说明",
        "query": "percentage display bottom bar context window usage",
    }
    assert r.text == ""
    assert r.stop_reason == "tool_use"
    assert r.extra["credits"] == pytest.approx(0.04613388159203981)
    assert r.extra["context_usage_pct"] == pytest.approx(1.9767999649047852)
    assert "unfinished_tool_calls" not in r.extra
    chunked = feed_in_random_chunks(P, "kiro", _request("auto"), ES, None, read_fixture(name), 7)
    assert canonical(chunked) == canonical(whole)


def _excerpt_frames() -> list[bytes]:
    """The source's text rendering (``[event-type] payload`` per line) turned back into frames."""
    row = json.loads(read_fixture("kiro/gar-reasoning-tooluse.decoded-events.excerpt.json"))
    frames = []
    for line in row["resBodyEventstream"].split("\n"):
        m = re.fullmatch(r"\[([^\]]+)\] (.*)", line)
        assert m, line
        frames.append(event_frame(m[1], json.loads(m[2])))
    return frames


def test_reasoning_excerpt_rebuilds_thinking_and_tool_call() -> None:
    frames = _excerpt_frames()
    assert len(frames) == 10
    res = _run(frames, model="minimax-m2.5", seed=2)
    r = res.response
    assert r.thinking.startswith("用户想让我读取")
    assert r.thinking.endswith("我需要用图片读取功能来查看这张图片。\n")
    assert r.text == "\n\n\n"
    assert r.model == "minimax-m2.5"
    [call] = r.tool_calls
    assert call.name == "read"
    assert call.arguments["operations"][0]["mode"] == "Image"
    assert r.stop_reason == "tool_use"
    assert r.extra["context_usage_pct"] == pytest.approx(7.308163642883301)
    assert "input_tokens_estimate" not in r.extra  # minimax's window is not known
    assert res.first_output == 2  # the reasoning frame, not the empty text before it


def test_400_validation_exception_excerpt() -> None:
    row = json.loads(read_fixture("kiro/gar-cli-error-400-validation-exception.excerpt.json"))
    body = json.loads(row["resBodyText"])
    err = P.parse_error(row["statusCode"], body, row["resHeaders"])
    assert err.type == ErrorType.BAD_REQUEST
    assert err.status == 400
    assert err.code == "ValidationException"
    assert "image content block" in err.message
    assert "IMAGE_FORMAT_UNSUPPORTED" in err.message
    assert err.raw["reason"] == "IMAGE_FORMAT_UNSUPPORTED"
    assert err.retryable is False
    # Raw bytes work too.
    assert P.parse_error(400, row["resBodyText"].encode(), {}).type == ErrorType.BAD_REQUEST


@pytest.mark.parametrize(
    ("name", "status", "expected"),
    [
        ("com.amazon.kiro#ThrottlingException", 429, ErrorType.RATE_LIMIT),
        ("AccessDeniedException", 403, ErrorType.AUTHENTICATION),
        ("InternalServerException", 500, ErrorType.SERVER_ERROR),
        ("ServiceQuotaExceededException", 402, ErrorType.RATE_LIMIT),
        ("ResourceNotFoundException", 404, ErrorType.MODEL_UNAVAILABLE),
        ("SomethingNewException", 503, ErrorType.SERVER_ERROR),  # unknown: status decides
    ],
)
def test_parse_error_types(name: str, status: int, expected: ErrorType) -> None:
    err = P.parse_error(status, {"__type": name, "message": "m"}, {})
    assert err.type == expected
    assert err.message == "m"


# ---------------------------------------------------------------- synthetic streams


def _text(c: str) -> bytes:
    return event_frame("assistantResponseEvent", {"content": c, "modelId": "claude-sonnet-4.5"})


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        ("throttlingException", ErrorType.RATE_LIMIT),
        ("validationException", ErrorType.BAD_REQUEST),
        ("accessDeniedException", ErrorType.AUTHENTICATION),
        ("internalServerException", ErrorType.SERVER_ERROR),
        ("serviceUnavailableException", ErrorType.SERVER_ERROR),
        ("conflictException", ErrorType.BAD_REQUEST),
    ],
)
def test_exception_frame_sets_error_and_keeps_partial_text(
    exception: str, expected: ErrorType
) -> None:
    res = _run([_text("Hel"), _text("lo"), exception_frame(exception, "it broke")], seed=1)
    assert res.error is not None
    assert res.error.type == expected
    assert res.error.message == "it broke"
    assert res.error.code == exception
    assert res.response.text == "Hello"
    assert res.response.stop_reason is None


def test_error_message_type_frame() -> None:
    res = _run([_text("x"), error_frame("InternalError", "backend died")])
    assert res.error is not None and res.error.type == ErrorType.SERVER_ERROR
    assert res.error.message == "backend died"


def test_metadata_event_usage_and_stop_reason() -> None:
    usage = {
        "uncachedInputTokens": 100,
        "outputTokens": 40,
        "totalTokens": 1640,
        "cacheReadInputTokens": 1000,
        "cacheWriteInputTokens": 500,
    }
    frames = [
        _text("ok"),
        event_frame("metadataEvent", {"tokenUsage": usage, "stopReason": "MAX_TOKENS"}),
    ]
    res = _run(frames)
    u = res.response.usage
    assert u is not None and u.source == "reported"
    assert (u.input, u.output, u.cache_read, u.cache_write) == (1600, 40, 1000, 500)
    assert u.total == 1640
    assert res.response.stop_reason == "max_tokens"  # reported beats derived


def test_message_metadata_event_wrapped_and_plain_payloads() -> None:
    frames = [
        event_frame("assistantResponseEvent", {"assistantResponseEvent": {"content": "wrapped"}}),
        event_frame("messageMetadataEvent", {"tokenUsage": {"uncachedInputTokens": 5}}),
    ]
    res = _run(frames)
    assert res.response.text == "wrapped"
    assert res.response.usage is not None and res.response.usage.input == 5


def test_repeated_identical_content_is_kept_and_counted() -> None:
    res = _run([_text("ha"), _text("ha"), _text("!")])
    assert res.response.text == "haha!"
    assert res.response.extra["repeated_content_events"] == 1


def test_unknown_events_ignored_known_extras_kept() -> None:
    frames = [
        _text("a"),
        event_frame("followupPromptEvent", {"followupPrompt": {"content": "next?"}}),
        event_frame("codeReferenceEvent", {"references": [{"licenseName": "MIT"}]}),
        event_frame("brandNewEvent", {"whatever": 1}),
        event_frame("reasoningContentEvent", {"redactedContent": "b64=="}),
        event_frame("reasoningContentEvent", {"signature": "sig"}),
    ]
    res = _run(frames)
    r = res.response
    assert r.text == "a"
    assert r.extra["followupPromptEvent"] == [{"followupPrompt": {"content": "next?"}}]
    assert r.extra["codeReferenceEvent"][0]["references"][0]["licenseName"] == "MIT"
    assert "brandNewEvent" not in json.dumps(r.extra)
    assert r.extra["redacted_thinking"] == ["b64=="]
    assert r.thinking_signature == "sig"
    assert res.error is None


def test_truncated_stream_inside_a_tool_call() -> None:
    frames = [
        event_frame("toolUseEvent", {"name": "shell", "toolUseId": "t1"}),
        event_frame("toolUseEvent", {"input": '{"cmd": "ls', "name": "shell", "toolUseId": "t1"}),
        event_frame("toolUseEvent", {"input": '"}', "name": "shell", "toolUseId": "t1"}),
    ]
    body = b"".join(frames)[:-10]
    res = feed_whole(P, "kiro", _request(), ES, None, body)
    assert res.decoder_errors and res.decoder_errors[0].startswith("truncated frame")
    [call] = res.response.tool_calls
    assert call.name == "shell"
    assert call.arguments_raw == '{"cmd": "ls'
    assert call.arguments == '{"cmd": "ls'  # unparseable: kept as the string
    assert res.response.extra["unfinished_tool_calls"] == ["t1"]


def test_feed_body_with_a_whole_stored_stream() -> None:
    data = read_fixture("kiro/gar-cli-tooluse.response.bin")
    asm = P.assembler("kiro", _request("auto"), LLMResponse())
    asm.feed_body(data)
    asm.finish()
    assert asm.response.tool_calls[0].name == "introspect"
    assert asm.response.stop_reason == "tool_use"
    bad = P.assembler("kiro", _request("auto"), LLMResponse())
    bad.feed_body(data[:-3])
    assert bad.error is not None and bad.error.type == ErrorType.PARSE


def test_events_without_headers_still_work() -> None:
    """Events replayed from storage may come back without frame headers."""
    asm = P.assembler("kiro", _request(), LLMResponse())
    assert asm.feed(StreamEvent(0.0, "assistantResponseEvent", {"content": "hi"})) is True
    assert asm.feed(StreamEvent(0.0, "throttlingException", {"message": "slow"})) is False
    asm.finish()
    assert asm.response.text == "hi"
    assert asm.error is not None and asm.error.type == ErrorType.RATE_LIMIT


def test_kiro_input_estimate() -> None:
    assert kiro_input_estimate(50.0, "auto") == 100_000
    assert kiro_input_estimate(1.0, "claude-sonnet-4.5") == 2_000
    assert kiro_input_estimate(1.0, "CLAUDE_SONNET_4_5_20250929_V1_0") == 2_000
    assert kiro_input_estimate(1.0, None) == 2_000
    assert kiro_input_estimate(1.0, "glm-5") is None
    assert kiro_input_estimate(None, "auto") is None

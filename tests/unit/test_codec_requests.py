"""encode_request is the inverse of parse_request: a real request parsed, encoded and parsed
again gives the same neutral request (model, system, messages, tools, params, stream).

Code generation and replay rely on this; so do the edit helpers (``param_path``,
``set_system``) that interception uses on the same bodies.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowbook.model import Api, LLMRequest, Message, Part, Tool
from flowbook.providers import registry
from flowbook.providers.base import RequestView
from flowbook.providers.codec import EditError
from tests.helpers.fixtures import load_cassette, read_fixture

CASSETTES = [
    "openai/chat-stream-toolcalls-include-usage.cassette.yaml",
    "openai/responses-stream-function-call-then-text.cassette.yaml",
    "openai/responses-stream-reasoning-usage.cassette.yaml",
    "openai-compatible/deepseek-reasoner-stream.cassette.yaml",
    "anthropic/messages-cache-write-then-read.cassette.yaml",
    "anthropic/messages-stream-thinking-signature.cassette.yaml",
    "anthropic/messages-stream-tool-use-input-json-delta.cassette.yaml",
    "gemini/generate-content-cached-content-tokens.cassette.yaml",
    "gemini/stream-alt-sse-functioncall-thoughts.cassette.yaml",
    "bedrock/converse-stream-claude-reasoning.cassette.yaml",
]


def neutral(r: LLMRequest) -> dict[str, Any]:
    return {
        "model": r.model,
        "system": r.system,
        "messages": [m.to_dict() for m in r.messages],
        "tools": [t.to_dict() for t in r.tools],
        "params": r.params,
        "stream": r.stream,
    }


def views() -> list[tuple[str, RequestView]]:
    out = []
    for name in CASSETTES:
        for i, ia in enumerate(load_cassette(name)):
            out.append((f"{name}#{i}", ia.request.view()))
    for name in ("kiro/gar-cli-text.row.json",):
        row = json.loads(read_fixture(name))
        body = row["reqBody"].encode()
        out.append(
            (
                name,
                RequestView(
                    "POST", row["url"], "q.us-east-1.amazonaws.com", "/", row["reqHeaders"], body
                ),
            )
        )
    body = read_fixture("kiro/gar-cli-toolresult.request.json")
    headers = {"x-amz-target": "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"}
    out.append(
        (
            "kiro/toolresult",
            RequestView(
                "POST",
                "https://q.us-east-1.amazonaws.com/",
                "q.us-east-1.amazonaws.com",
                "/",
                headers,
                body,
            ),
        )
    )
    return out


VIEWS = views()


def _reparse(view: RequestView, body: bytes) -> LLMRequest:
    again = RequestView(view.method, view.url, view.host, view.path, dict(view.headers), body)
    again.port = view.port
    found = registry.detect(again)
    assert found is not None
    provider, det = found
    return provider.parse_request(again, det.api)


@pytest.mark.parametrize(("name", "view"), VIEWS, ids=[v[0] for v in VIEWS])
def test_parse_encode_parse_is_stable(name: str, view: RequestView) -> None:
    found = registry.detect(view)
    assert found is not None
    provider, det = found
    first = provider.parse_request(view, det.api)
    assert first.messages, "the source must hold a conversation"
    body = provider.encode_request(first, det.api)
    second = _reparse(view, body)
    assert neutral(second) == neutral(first)


SAMPLE = LLMRequest(
    model="m-1",
    system="be brief",
    messages=[
        Message("user", [Part("text", text="weather in Paris?")]),
        Message(
            "assistant",
            [Part("tool_call", id="call_1", name="get_weather", arguments={"city": "Paris"})],
        ),
        Message("tool", [Part("tool_result", tool_call_id="call_1", content="sunny")]),
    ],
    tools=[Tool("get_weather", "Weather for a city", {"type": "object"})],
    params={"temperature": 0.5},
    stream=True,
)

TARGETS = [
    ("openai", "chat", "https://api.openai.com/v1/chat/completions"),
    ("openai", "responses", "https://api.openai.com/v1/responses"),
    ("anthropic", "messages", "https://api.anthropic.com/v1/messages"),
    ("ollama", "chat", "http://localhost:11434/api/chat"),
    (
        "bedrock",
        "converse",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/m-1/converse-stream",
    ),
    (
        "gemini",
        "generate_content",
        "https://generativelanguage.googleapis.com/v1beta/models/m-1:streamGenerateContent",
    ),
    ("kiro", "kiro", "https://q.us-east-1.amazonaws.com/generateAssistantResponse"),
]


@pytest.mark.parametrize(("provider_name", "api", "url"), TARGETS)
def test_a_tool_loop_survives_every_codec(provider_name: str, api: str, url: str) -> None:
    """A conversation with a tool call and its result, encoded by each codec and parsed back."""
    provider = registry.get(provider_name)
    body = provider.encode_request(SAMPLE, api)
    host = url.split("/")[2].split(":")[0]
    path = "/" + url.split("/", 3)[3]
    view = RequestView("POST", url, host, path, {}, body, port=11434 if "11434" in url else 443)
    parsed = provider.parse_request(view, api)
    assert parsed.model == "m-1" or provider_name == "gemini"  # Gemini's model is in the path
    texts = [m.text for m in parsed.messages]
    assert any("weather in Paris?" in t for t in texts)
    calls = [p for m in parsed.messages for p in m.parts if p.type == "tool_call"]
    results = [p for m in parsed.messages for p in m.parts if p.type == "tool_result"]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert len(results) == 1 and "sunny" in json.dumps(results[0].content)
    assert [t.name for t in parsed.tools] == ["get_weather"]
    if provider_name != "kiro":  # Kiro has no system field: the prompt joins the first turn
        assert parsed.system == "be brief"


def test_edit_helpers_put_fields_where_each_api_keeps_them() -> None:
    codecs = registry.api_codecs()
    assert codecs[Api.GENERATE_CONTENT].param_path("temperature", {}) == (
        "generationConfig.temperature"
    )
    assert codecs[Api.RESPONSES].param_path("max_tokens", {}) == "max_output_tokens"
    assert codecs[Api.CHAT].param_path("max_tokens", {"max_completion_tokens": 1}) == (
        "max_completion_tokens"
    )
    assert codecs[Api.CONVERSE].param_path("max_tokens", {}) == "inferenceConfig.maxTokens"
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}]}
    codecs[Api.CHAT].set_system(body, "sys")
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    with pytest.raises(EditError, match="no system prompt"):
        codecs[Api.KIRO].set_system({}, "sys")
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert codecs[Api.GENERATE_CONTENT].model_path(path, "gemini-2.5-pro") == (
        "/v1beta/models/gemini-2.5-pro:generateContent"
    )
    with pytest.raises(EditError, match="'contents' must be a list"):
        codecs[Api.GENERATE_CONTENT].validate_request({"contents": "x"})
    with pytest.raises(EditError, match="expected a list in 'candidates'"):
        codecs[Api.GENERATE_CONTENT].validate_response({"candidates": {}})
    # Code Assist's envelope is looked through.
    codecs[Api.GENERATE_CONTENT].validate_response({"response": {"candidates": []}})

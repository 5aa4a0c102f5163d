"""The official google-genai SDK through flowbook's proxy (reverse mode, custom base URL).

The SDK always streams with ``alt=sse``; the JSON-array stream (no ``alt``) is driven with httpx.
What the client received is the ground truth for text, thoughts, function calls and usage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.model import LLMFlow, Usage
from flowbook.providers import registry
from flowbook.providers.base import HOST, RequestView
from tests.helpers.flows import only_flow, wait_until_final

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
KEY = "AIzaTestKey0123456789abcdefghijklm"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city",
            parameters_json_schema={
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        )
    ]
)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


def make_client(proxy_url: str, headers: dict[str, str] | None = None) -> genai.Client:
    return genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=proxy_url, headers=headers)
    )


@pytest.fixture
def client(proxy_url: str) -> genai.Client:
    return make_client(proxy_url)


def assert_usage(usage: Usage | None, meta: types.GenerateContentResponseUsageMetadata) -> None:
    """input = prompt tokens; output = candidates + thoughts (genai-prices meaning)."""
    assert usage is not None and usage.source == "reported"
    assert usage.input == meta.prompt_token_count
    assert usage.output == (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    assert usage.reasoning == (meta.thoughts_token_count or 0)


def split_parts(chunks: list[types.GenerateContentResponse]) -> dict[str, Any]:
    """Visible text, thought text and function calls the SDK handed to the caller."""
    text, thoughts, calls = "", "", []
    for ch in chunks:
        for cand in ch.candidates or []:
            for p in (cand.content.parts if cand.content else None) or []:
                if p.function_call:
                    calls.append((p.function_call.name, p.function_call.args))
                elif p.thought:
                    thoughts += p.text or ""
                elif p.text:
                    text += p.text
    return {"text": text, "thinking": thoughts, "calls": calls}


def captured(flow: LLMFlow) -> dict[str, Any]:
    assert flow.response is not None
    return {
        "text": flow.response.text,
        "thinking": flow.response.thinking,
        "calls": [(c.name, c.arguments) for c in flow.response.tool_calls],
    }


def test_generate_content(client: genai.Client) -> None:
    r = client.models.generate_content(
        model=MODEL,
        contents="Hello, Gemini",
        config=types.GenerateContentConfig(system_instruction="Be terse", temperature=0.2),
    )
    flow = only_flow()
    assert (flow.provider, flow.api, flow.state) == ("gemini", "generate_content", "completed")
    assert flow.request.model == MODEL and flow.request.stream is False
    assert flow.request.system == "Be terse"
    assert flow.request.messages[-1].text == "Hello, Gemini"
    assert flow.response is not None and flow.response.text == r.text
    assert r.usage_metadata is not None
    assert_usage(flow.usage, r.usage_metadata)
    assert KEY not in json.dumps(flow.request.headers), "the API key is masked at rest"


def test_generate_content_function_call(client: genai.Client) -> None:
    r = client.models.generate_content(
        model=MODEL,
        contents="What's the weather in Paris?",
        config=types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC),
    )
    assert r.function_calls, "the fake upstream must answer with a function call"
    flow = only_flow()
    assert captured(flow) == split_parts([r])
    assert flow.request.tools and flow.request.tools[0].name == "get_weather"
    assert r.usage_metadata is not None
    assert_usage(flow.usage, r.usage_metadata)


def test_stream_text_uses_alt_sse(client: genai.Client) -> None:
    chunks = list(
        client.models.generate_content_stream(model=MODEL, contents="Stream some words please")
    )
    flow = only_flow()
    assert "alt=sse" in flow.request.path and flow.request.stream is True
    assert flow.state == "completed"
    assert captured(flow) == split_parts(chunks)
    assert flow.response is not None and flow.response.text.startswith("Echo: ")
    last = [c.usage_metadata for c in chunks if c.usage_metadata][-1]
    assert_usage(flow.usage, last)
    assert len(flow.response.events) == len(chunks)
    assert flow.timestamps.first_token is not None


def test_stream_thoughts_and_function_call(client: genai.Client) -> None:
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL,
            contents="What's the weather in Paris?",
            config=types.GenerateContentConfig(
                tools=[WEATHER],
                automatic_function_calling=NO_AFC,
                thinking_config=types.ThinkingConfig(include_thoughts=True),
            ),
        )
    )
    sdk = split_parts(chunks)
    assert sdk["thinking"] and sdk["calls"], "the fake must send thoughts and a function call"
    flow = only_flow()
    assert captured(flow) == sdk
    last = [c.usage_metadata for c in chunks if c.usage_metadata][-1]
    assert last.thoughts_token_count
    assert_usage(flow.usage, last)


def test_gzip_sse_stream(proxy_url: str) -> None:
    client = make_client(proxy_url, headers={"x-fake-gzip": "1"})
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="gzip me a stream"))
    flow = only_flow()
    assert flow.response is not None
    assert flow.response.headers.get("content-encoding") == "gzip"
    assert not flow.metadata.parse_errors and flow.error is None
    assert captured(flow) == split_parts(chunks)
    assert_usage(flow.usage, [c.usage_metadata for c in chunks if c.usage_metadata][-1])


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_json_array_stream(proxy_url: str, gzip: bool) -> None:
    """``streamGenerateContent`` without ``alt=sse``: one JSON array that grows."""
    body = {
        "contents": [{"role": "user", "parts": [{"text": "What's the weather in Paris?"}]}],
        "tools": [
            {"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}
        ],
        "generationConfig": {"thinkingConfig": {"includeThoughts": True}},
    }
    headers = {"x-goog-api-key": KEY, **({"x-fake-gzip": "1"} if gzip else {})}
    with (
        httpx.Client(base_url=proxy_url, timeout=10) as http,
        http.stream(
            "POST",
            f"/v1beta/models/{MODEL}:streamGenerateContent",
            json=body,
            headers=headers,
        ) as resp,
    ):
        assert resp.status_code == 200
        assert (resp.headers.get("content-encoding") == "gzip") is gzip
        data = json.loads(resp.read())  # httpx removes the gzip
    assert isinstance(data, list) and len(data) > 1
    sdk = split_parts([types.GenerateContentResponse.model_validate(d) for d in data])
    flow = only_flow()
    assert flow.request.stream is True and "alt=" not in flow.request.path
    assert not flow.metadata.parse_errors and flow.state == "completed"
    assert captured(flow) == sdk and sdk["calls"] and sdk["thinking"]
    last = types.GenerateContentResponseUsageMetadata.model_validate(data[-1]["usageMetadata"])
    assert_usage(flow.usage, last)


def test_error_status_becomes_a_flow_error(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="error-429", contents="too fast")
    flow = only_flow()
    assert flow.state == "error" and info.value.code == 429
    assert flow.error is not None and flow.error.type == "rate_limit"
    assert flow.error.message == info.value.message
    assert fb.flows().iloc[0]["status_code"] == 429


def test_in_stream_error_keeps_partial_text(client: genai.Client) -> None:
    received = []
    with pytest.raises(errors.APIError):  # the error chunk arrives mid-iteration
        for ch in client.models.generate_content_stream(
            model="error-midstream", contents="one two three four"
        ):
            received.append(ch)
    sdk = split_parts(received)
    assert sdk["text"], "some text arrived before the error"
    assert wait_until_final()
    flow = only_flow()
    assert flow.state == "error"
    assert flow.response is not None and flow.response.text == sdk["text"]
    assert flow.error is not None and flow.error.type == "server_error"


# ---- Gemini's OpenAI-compatible endpoint -----------------------------------------------------


def _view(path: str, body: dict[str, Any]) -> RequestView:
    host = "generativelanguage.googleapis.com"
    return RequestView(
        method="POST",
        url=f"https://{host}{path}",
        host=host,
        path=path,
        headers={"content-type": "application/json"},
        body=json.dumps(body).encode(),
    )


@pytest.mark.parametrize(
    ("path", "provider", "api"),
    [
        ("/v1beta/openai/chat/completions", "gemini_openai", "chat"),
        ("/v1beta/openai/embeddings", "gemini_openai", "embeddings"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini", "generate_content"),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini", "generate_content"),
    ],
)
def test_openai_compatible_endpoint_detection(path: str, provider: str, api: str) -> None:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    found = registry.detect(_view(path, chat))
    assert found is not None
    assert (found[1].provider, found[1].api, found[1].strength) == (provider, api, HOST)


def test_openai_compatible_endpoint_through_the_proxy(
    upstream: FakeUpstream, data_dir: Path
) -> None:
    """The openai SDK at Gemini's ``/v1beta/openai/`` base URL, with the official Host header
    kept by the proxy (``keep_host_header``), as when DNS sends that host to flowbook."""
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir, keep_host_header=True)
    try:
        c = openai.OpenAI(
            base_url=mon.proxy_url + "/v1beta/openai",
            api_key=KEY,
            max_retries=0,
            default_headers={"Host": "generativelanguage.googleapis.com"},
        )
        stream = c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hello compat"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        c.close()
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        usage = [ch.usage for ch in chunks if ch.usage][-1]
        flow = only_flow()
        assert flow.request.host == "generativelanguage.googleapis.com"
        assert (flow.provider, flow.api, flow.model) == ("gemini_openai", "chat", MODEL)
        assert flow.response is not None and flow.response.text == text
        assert flow.usage is not None
        assert (flow.usage.input, flow.usage.output) == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
    finally:
        fb.stop()

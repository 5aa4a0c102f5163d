"""The official anthropic SDK through flowbook's proxy (reverse mode, custom base URL).

What the SDK received is the ground truth: every captured flow must hold the same text,
thinking (with its signature), tool calls and usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from tests.helpers.fixtures import load_cassette, read_fixture
from tests.helpers.flows import only_flow, wait_until_final

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-5"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Say hello to flowbook"}]


@pytest.fixture
def client(proxy_url: str) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(
        base_url=proxy_url, api_key="sk-ant-test-abcdef1234567890", max_retries=0
    )
    yield c
    c.close()


def sdk_input_tokens(u: anthropic.types.Usage) -> int:
    """genai-prices meaning: input includes cache reads and cache writes."""
    return u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)


def test_messages_create_non_streamed(client: anthropic.Anthropic) -> None:
    r = client.messages.create(model=MODEL, max_tokens=256, system="You are terse.", messages=USER)
    flow = only_flow()
    assert (flow.provider, flow.api, flow.state) == ("anthropic", "messages", "completed")
    assert flow.request.model == MODEL and flow.request.stream is False
    assert flow.request.system == "You are terse."
    assert flow.request.messages[-1].text == "Say hello to flowbook"
    assert flow.response is not None
    assert flow.response.text == "".join(b.text for b in r.content if b.type == "text")
    assert flow.response.stop_reason == r.stop_reason
    assert flow.usage is not None and flow.usage.source == "reported"
    assert (flow.usage.input, flow.usage.output) == (
        sdk_input_tokens(r.usage),
        r.usage.output_tokens,
    )
    # The SDK sends the key as x-api-key or (newer releases) a Bearer token: masked either way.
    auth = flow.request.headers.get("x-api-key") or flow.request.headers["authorization"]
    assert "abcdef1234567890" not in auth and auth.endswith("7890")


def test_streamed_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Stream a few words"}]
    ) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    flow = only_flow()
    assert flow.request.stream is True and flow.state == "completed"
    assert flow.response is not None
    assert flow.response.text == streamed == final.content[0].text  # type: ignore[union-attr]
    assert flow.response.stop_reason == final.stop_reason
    assert flow.usage is not None and flow.usage.source == "reported"
    assert (flow.usage.input, flow.usage.output) == (
        sdk_input_tokens(final.usage),
        final.usage.output_tokens,
    )
    assert flow.response.events and flow.timestamps.first_token is not None


def test_streamed_thinking_and_tool_use(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as s:
        for _ in s:
            pass
        final = s.get_final_message()
    thinking = [b for b in final.content if b.type == "thinking"]
    tools = [b for b in final.content if b.type == "tool_use"]
    assert thinking and tools, "the fake upstream must answer with thinking and a tool call"
    flow = only_flow()
    assert flow.response is not None
    assert flow.response.thinking == "".join(b.thinking for b in thinking)
    assert flow.response.thinking_signature == thinking[-1].signature
    assert [(c.id, c.name, c.arguments) for c in flow.response.tool_calls] == [
        (b.id, b.name, b.input) for b in tools
    ]
    assert flow.response.stop_reason == final.stop_reason == "tool_use"
    assert flow.usage is not None
    assert (flow.usage.input, flow.usage.output) == (
        sdk_input_tokens(final.usage),
        final.usage.output_tokens,
    )
    assert flow.request.tools and flow.request.tools[0].name == "get_weather"


def test_recorded_cache_usage_counts_in_input(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    """A real non-streamed body with cache writes and reads, served to the SDK through flowbook."""
    write, read = load_cassette("anthropic/messages-cache-write-then-read.cassette.yaml")
    seen = []
    for ia in (write, read):
        upstream.script(
            "/v1/messages", headers={"content-type": "application/json"}, chunks=[ia.response.body]
        )
        seen.append(client.messages.create(model=MODEL, max_tokens=64, messages=USER))
    assert fb.wait_idle()
    df = fb.flows(sort_order="asc")
    assert len(df) == 2
    for flow_id, r in zip(df["id"], seen, strict=True):
        flow = fb.get_flow(flow_id)
        assert flow.usage is not None and flow.response is not None
        assert flow.usage.input == sdk_input_tokens(r.usage)
        assert flow.usage.cache_read == (r.usage.cache_read_input_tokens or 0)
        assert flow.usage.cache_write == (r.usage.cache_creation_input_tokens or 0)
        assert flow.usage.output == r.usage.output_tokens
        assert flow.response.text == "".join(b.text for b in r.content if b.type == "text")
    first, second = seen
    assert first.usage.cache_creation_input_tokens and second.usage.cache_read_input_tokens


def test_recorded_thinking_stream_through_the_sdk(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    body = read_fixture("anthropic/messages-stream-thinking-signature.response.sse.txt")
    upstream.script(
        "/v1/messages",
        headers={"content-type": "text/event-stream"},
        chunks=[body[i : i + 700] for i in range(0, len(body), 700)],
    )
    with client.messages.stream(
        model="claude-sonnet-4-0", max_tokens=2048, messages=[{"role": "user", "content": "think"}]
    ) as s:
        final = s.get_final_message()
    flow = only_flow()
    assert flow.response is not None
    thinking = [b for b in final.content if b.type == "thinking"]
    assert flow.response.thinking == thinking[0].thinking
    assert flow.response.thinking_signature == thinking[0].signature
    assert flow.response.text == "".join(b.text for b in final.content if b.type == "text")
    assert flow.usage is not None
    assert (flow.usage.input, flow.usage.output) == (
        sdk_input_tokens(final.usage),
        final.usage.output_tokens,
    )
    assert flow.response.model == final.model


@pytest.mark.parametrize(
    ("model", "exc", "error_type"),
    [
        ("error-400", anthropic.BadRequestError, "bad_request"),
        ("error-401", anthropic.AuthenticationError, "authentication"),
        ("error-429", anthropic.RateLimitError, "rate_limit"),
        ("error-500", anthropic.InternalServerError, "server_error"),
    ],
)
def test_error_status_becomes_a_flow_error(
    client: anthropic.Anthropic, model: str, exc: type[Exception], error_type: str
) -> None:
    with pytest.raises(exc) as info:
        client.messages.create(model=model, max_tokens=16, messages=USER)
    flow = only_flow()
    assert flow.state == "error"
    assert flow.error is not None and flow.error.type == error_type
    sdk_body = info.value.body  # type: ignore[attr-defined]
    assert flow.error.message == sdk_body["error"]["message"]
    assert flow.error.code == sdk_body["error"]["type"]
    row = fb.flows().iloc[0]
    assert row["status_code"] == int(model[-3:]) and row["error_type"] == error_type


def test_in_stream_error_keeps_partial_text(client: anthropic.Anthropic) -> None:
    received = ""
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="error-midstream",
            max_tokens=64,
            messages=[{"role": "user", "content": "one two three"}],
        ) as s,
    ):
        for text in s.text_stream:  # the error event arrives mid-loop
            received += text
    assert received, "some text arrived before the error"
    assert wait_until_final()
    flow = only_flow()
    assert flow.state == "error"
    assert flow.response is not None and flow.response.text == received
    assert flow.error is not None and flow.error.type == "server_error"
    assert flow.error.code == "overloaded_error" and flow.error.retryable is True
    assert "overloaded_error" in json.dumps(info.value.body)


def test_beta_path_is_captured(client: anthropic.Anthropic) -> None:
    # Claude Code and older SDKs' beta namespace call /v1/messages?beta=true.
    r = client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=USER,
        extra_query={"beta": "true"},
    )
    flow = only_flow()
    assert "beta=true" in flow.request.path
    assert (flow.provider, flow.api) == ("anthropic", "messages")
    assert flow.response is not None
    assert flow.response.text == "".join(b.text for b in r.content if b.type == "text")

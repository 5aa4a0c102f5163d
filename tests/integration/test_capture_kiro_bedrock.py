"""Kiro (CodeWhisperer) and AWS Bedrock through flowbook's proxy: AWS event-stream responses.

Kiro: a Kiro-CLI-shaped httpx client (the request shape of ``flowbook.demo.drive_kiro``) against
the fake upstream. Bedrock: the real ``converse-stream`` recording served by the fake upstream.
The client decodes what it received with flowbook's own event-stream decoder; the captured flow
must agree with it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.model import LLMFlow, StreamEvent
from flowbook.streams.eventstream import EventStreamDecoder
from tests.helpers.fixtures import load_cassette, read_fixture
from tests.helpers.flows import only_flow

pytestmark = pytest.mark.integration

KIRO_MODEL = "claude-sonnet-4.5"
KIRO_HEADERS = {
    "content-type": "application/x-amz-json-1.0",
    "x-amz-target": "AmazonCodeWhispererStreamingService.GenerateAssistantResponse",
    "authorization": "Bearer aoaAAAAAtest0123456789abcdef",
    "user-agent": "aws-sdk-rust/1.3.16 ua/2.1 api/codewhispererstreaming/0.1.16551 "
    "os/linux lang/rust/1.92.0 md/appVersion-2.4.1 app/AmazonQ-For-CLI",
}
KIRO_TOOL = {
    "toolSpecification": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
}
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BEDROCK_PATH = "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"
EVENTSTREAM = "application/vnd.amazon.eventstream"


def kiro_body(text: str, model: str = KIRO_MODEL, tools: bool = False) -> dict[str, Any]:
    ctx: dict[str, Any] = {"envState": {"operatingSystem": "linux"}}
    if tools:
        ctx["tools"] = [KIRO_TOOL]
    return {
        "conversationState": {
            "conversationId": str(uuid.uuid4()),
            "chatTriggerType": "MANUAL",
            "currentMessage": {
                "userInputMessage": {
                    "content": text,
                    "modelId": model,
                    "origin": "KIRO_CLI",
                    "userInputMessageContext": ctx,
                }
            },
            "history": [],
        },
        "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/TEST",
    }


def post_stream(
    base_url: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Response, bytes, list[StreamEvent]]:
    """POST, read the raw bytes (no decoding by httpx), decode the frames as a client would."""
    dec = EventStreamDecoder()
    events: list[StreamEvent] = []
    raw = bytearray()
    with (
        httpx.Client(base_url=base_url, timeout=10) as c,
        c.stream("POST", path, json=body, headers=headers) as r,
    ):
        for chunk in r.iter_raw():
            raw += chunk
            events += dec.feed(chunk, 0.0)
    events += dec.close(0.0)
    assert not dec.errors
    return r, bytes(raw), events


def payloads(events: list[StreamEvent], name: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.event == name]


# ---- Kiro --------------------------------------------------------------------------------------


def test_kiro_text_credits_and_context_usage(proxy_url: str) -> None:
    r, _, events = post_stream(proxy_url, "/", kiro_body("Explain what a proxy does"), KIRO_HEADERS)
    assert r.status_code == 200
    text = "".join(p["content"] for p in payloads(events, "assistantResponseEvent"))
    [metering] = payloads(events, "meteringEvent")
    [context] = payloads(events, "contextUsageEvent")
    flow = only_flow()
    assert (flow.provider, flow.state) == ("kiro", "completed")
    assert flow.request.model == KIRO_MODEL and flow.request.stream is True
    assert flow.request.messages[-1].text == "Explain what a proxy does"
    assert flow.metadata.client is not None and "kiro" in flow.metadata.client.lower()
    assert flow.response is not None and flow.response.text == text
    assert flow.response.extra["credits"] == metering["usage"]
    assert flow.response.extra["context_usage_pct"] == context["contextUsagePercentage"]
    # Kiro reports no token counts: flowbook estimates them and says so.
    assert flow.usage is not None and flow.usage.source == "estimated"
    assert flow.usage.output > 0 and flow.usage.input > 0
    row = fb.flows().iloc[0]
    assert row["usage_source"] == "estimated"
    assert "0123456789abcdef" not in flow.request.headers["authorization"]


def test_kiro_tool_use(proxy_url: str) -> None:
    _, _, events = post_stream(
        proxy_url, "/", kiro_body("What's the weather in Paris?", tools=True), KIRO_HEADERS
    )
    tool_events = payloads(events, "toolUseEvent")
    assert tool_events, "the fake upstream must answer with a tool use"
    arguments = json.loads("".join(p.get("input", "") for p in tool_events))
    flow = only_flow()
    assert flow.response is not None
    assert [(c.id, c.name, c.arguments) for c in flow.response.tool_calls] == [
        (tool_events[0]["toolUseId"], tool_events[0]["name"], arguments)
    ]
    assert flow.request.tools and flow.request.tools[0].name == "get_weather"
    assert flow.usage is not None and flow.usage.source == "estimated"


def test_kiro_thinking(proxy_url: str) -> None:
    _, _, events = post_stream(
        proxy_url, "/", kiro_body("Think first", KIRO_MODEL + "-thinking"), KIRO_HEADERS
    )
    thinking = "".join(p["text"] for p in payloads(events, "reasoningContentEvent"))
    assert thinking
    flow = only_flow()
    assert flow.response is not None and flow.response.thinking == thinking
    assert flow.response.text == "".join(
        p["content"] for p in payloads(events, "assistantResponseEvent")
    )


def test_kiro_error_status(proxy_url: str) -> None:
    with httpx.Client(base_url=proxy_url, timeout=10) as c:
        r = c.post("/", json=kiro_body("hi", "error-429"), headers=KIRO_HEADERS)
    assert r.status_code == 429
    flow = only_flow()
    assert flow.state == "error"
    assert flow.error is not None and flow.error.type == "rate_limit"
    assert flow.error.message == r.json()["message"]


def test_kiro_exception_frame_mid_stream(proxy_url: str) -> None:
    _, _, events = post_stream(
        proxy_url, "/", kiro_body("one two three four", "error-midstream"), KIRO_HEADERS
    )
    text = "".join(p["content"] for p in payloads(events, "assistantResponseEvent"))
    assert text
    flow = only_flow()
    assert flow.state == "error"
    assert flow.response is not None and flow.response.text == text
    assert flow.error is not None and flow.error.type == "server_error"
    assert "unexpected error" in flow.error.message


# ---- Bedrock -----------------------------------------------------------------------------------


def bedrock_expected(events: list[StreamEvent]) -> dict[str, Any]:
    """Text, reasoning, signature and usage as a Converse client assembles them."""
    text = thinking = signature = ""
    for d in payloads(events, "contentBlockDelta"):
        delta = d["delta"]
        text += delta.get("text", "")
        reasoning = delta.get("reasoningContent") or {}
        thinking += reasoning.get("text", "")
        signature += reasoning.get("signature", "")
    [meta] = payloads(events, "metadata")
    [stop] = payloads(events, "messageStop")
    return {
        "text": text,
        "thinking": thinking,
        "signature": signature,
        "usage": (meta["usage"]["inputTokens"], meta["usage"]["outputTokens"]),
        "stop": stop["stopReason"],
    }


def replay_bedrock(
    upstream: FakeUpstream, base_url: str, host: str | None = None
) -> tuple[bytes, bytes, list[StreamEvent]]:
    [ia] = load_cassette("bedrock/converse-stream-claude-reasoning.cassette.yaml")
    recorded = read_fixture("bedrock/converse-stream-claude-reasoning.response.bin")
    # Cut across frame boundaries, as the network does.
    upstream.script(
        BEDROCK_PATH,
        headers={"content-type": EVENTSTREAM},
        chunks=[recorded[i : i + 333] for i in range(0, len(recorded), 333)],
    )
    headers = {"content-type": "application/json", "authorization": "AWS4-HMAC-SHA256 x"}
    if host:
        headers["host"] = host
    _, raw, events = post_stream(base_url, BEDROCK_PATH, json.loads(ia.request.body), headers)
    return recorded, raw, events


def check_bedrock_flow(flow: LLMFlow, expected: dict[str, Any]) -> None:
    assert (flow.provider, flow.api, flow.state) == ("bedrock", "converse", "completed")
    assert flow.request.model == BEDROCK_MODEL and flow.request.stream is True
    assert flow.request.messages[-1].text == "Hello"
    assert flow.response is not None and not flow.metadata.parse_errors
    assert flow.response.text == expected["text"]
    assert flow.response.thinking == expected["thinking"]
    assert flow.response.thinking_signature == expected["signature"]
    assert flow.response.stop_reason == expected["stop"]
    assert flow.usage is not None and flow.usage.source == "reported"
    assert (flow.usage.input, flow.usage.output) == expected["usage"]


def test_bedrock_converse_stream_recording_by_path(upstream: FakeUpstream, proxy_url: str) -> None:
    """Reverse mode: the host is the fake's 127.0.0.1, so the ``/model/{id}/converse-stream``
    path alone identifies Bedrock."""
    recorded, raw, events = replay_bedrock(upstream, proxy_url)
    assert raw == recorded, "the client receives the recorded bytes unchanged"
    expected = bedrock_expected(events)
    assert expected["text"] and expected["thinking"] and expected["signature"]
    flow = only_flow()
    assert flow.request.host == "127.0.0.1"
    check_bedrock_flow(flow, expected)
    assert flow.response is not None and flow.response.body == recorded


def test_bedrock_converse_stream_recording_by_host(upstream: FakeUpstream, data_dir: Path) -> None:
    """The official Host header kept by the proxy (as when DNS sends that host to flowbook)."""
    host = "bedrock-runtime.us-east-1.amazonaws.com"
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir, keep_host_header=True)
    try:
        recorded, raw, events = replay_bedrock(upstream, mon.proxy_url, host=host)
        assert raw == recorded
        assert upstream.requests[-1].headers["host"] == host
        flow = only_flow()
        assert flow.request.host == host
        check_bedrock_flow(flow, bedrock_expected(events))
    finally:
        fb.stop()

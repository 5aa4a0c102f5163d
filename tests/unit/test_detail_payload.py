"""The detail view's payload, built from recorded traffic of every provider, and the static
HTML/Markdown reprs of a flow. Flows are rebuilt from tests/fixtures/real through each provider's
real parser (tests/helpers/fixtures.py) and masked the way the recorder stores them."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from flowbook.analysis.pricing import flow_cost
from flowbook.analysis.tokens import estimate_usage
from flowbook.model import (
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    StreamEvent,
)
from flowbook.providers import registry
from flowbook.providers.base import RequestView
from flowbook.redact import redact_flow
from flowbook.ui.context_window import split_turn, window_size
from flowbook.ui.detail_payload import detail_payload
from flowbook.ui.detail_stream import MAX_EVENTS, event_text
from flowbook.ui.detail_text import BODY_LIMIT
from flowbook.ui.flow_repr import flow_html, flow_markdown, usd
from tests.helpers.fixtures import (
    FeedResult,
    feed_whole,
    load_cassette,
    read_fixture,
    run_interaction,
)

T0 = 1_760_000_000.0
KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2


def _flow(result: FeedResult, provider: str, api: str) -> LLMFlow:
    """A stored-looking flow from a replay: events stamped 50 ms apart, usage estimated when the
    provider reported none, priced, and masked like the recorder masks at rest."""
    resp = result.response
    resp.events = list(result.events)
    for i, ev in enumerate(resp.events):
        ev.t = T0 + 0.2 + 0.05 * i
    flow = LLMFlow(
        flow_type="llm",
        state=FlowState.ERROR if result.error else FlowState.COMPLETED,
        request=result.request,
        response=resp,
        error=result.error,
        metadata=FlowMetadata(provider=provider, api=api),
        timestamps=FlowTimestamps(
            created=T0,
            request_sent=T0,
            first_byte=T0 + 0.2,
            first_token=T0 + 0.25 if resp.events else T0 + 0.2,
            completed=T0 + 0.3 + 0.05 * len(resp.events),
        ),
    )
    if resp.usage is None:
        resp.usage = estimate_usage(flow)
    flow.metadata.cost_usd = flow_cost(flow)
    return redact_flow(flow)


def _cassette(provider: str, path: str, index: int = 0) -> LLMFlow:
    prov = registry.get(provider)
    ia = load_cassette(path)[index]
    det = prov.detect(ia.request.view())
    assert det is not None
    return _flow(run_interaction(prov, ia), provider, det.api)


def _kiro() -> LLMFlow:
    row = json.loads(read_fixture("kiro/gar-cli-text.row.json"))
    host = "q.us-east-1.amazonaws.com"
    view = RequestView(
        "POST", f"https://{host}/", host, "/", row["reqHeaders"], row["reqBody"].encode()
    )
    result = feed_whole(
        registry.get("kiro"),
        "kiro",
        view,
        "application/vnd.amazon.eventstream",
        None,
        read_fixture("kiro/gar-cli-text.response.bin"),
    )
    return _flow(result, "kiro", "kiro")


CASES = {
    "openai-chat": lambda: _cassette(
        "openai", "openai/chat-stream-toolcalls-include-usage.cassette.yaml"
    ),
    "openai-responses": lambda: _cassette(
        "openai", "openai/responses-stream-reasoning-usage.cassette.yaml"
    ),
    "anthropic": lambda: _cassette(
        "anthropic", "anthropic/messages-stream-thinking-signature.cassette.yaml"
    ),
    "gemini": lambda: _cassette(
        "gemini", "gemini/stream-alt-sse-functioncall-thoughts.cassette.yaml"
    ),
    "bedrock": lambda: _cassette(
        "bedrock", "bedrock/converse-stream-claude-reasoning.cassette.yaml"
    ),
    "kiro": _kiro,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_payload_for_each_provider(case: str) -> None:
    flow = CASES[case]()
    p = detail_payload(flow)
    # JSON-safe: what the widget sends must survive a JSON round trip unchanged.
    assert json.loads(json.dumps(p)) == p
    assert p["id"] == flow.id and p["provider"] == flow.provider
    resp = flow.response
    assert resp is not None
    assert p["response"]["text"] == resp.text
    assert [c["name"] for c in p["response"]["tool_calls"]] == [c.name for c in resp.tool_calls]
    # The conversation has every request message (plus the system prompt as its own turn).
    assert len(p["conversation"]["turns"]) == len(flow.request.messages) + bool(flow.request.system)
    # Stream: every event listed with a non-decreasing offset from the request.
    s = p["stream_events"]
    assert s["total"] == len(resp.events) > 0
    offsets = [e["offset_ms"] for e in s["events"]]
    assert offsets == sorted(offsets) and offsets[0] == pytest.approx(200.0)
    if resp.text or resp.thinking:
        assert s["tokens"] > 0 and s["series"][-1][1] == s["tokens"]
    # Timing bar marks are offsets from the request, in order.
    t = p["overview"]["timing"]
    assert t["sent_ms"] == 0.0 and t["first_byte_ms"] == pytest.approx(200.0)
    assert t["first_token_ms"] <= t["last_token_ms"] <= t["completed_ms"]
    # Usage and its source; the context fill is an estimate split into four parts.
    ov = p["overview"]
    assert ov["usage_source"] == resp.usage.source if resp.usage else "missing"
    ctx = ov["context"]
    assert [x["key"] for x in ctx["parts"]] == ["system", "tools", "history", "new_turn"]
    assert ctx["parts_estimated"] is True and ctx["used"] > 0
    # Raw: headers as pairs, bodies as text (or a hex dump for binary frames).
    raw = p["raw"]
    assert raw["request"]["body"]["size"] == flow.request.size
    assert raw["response"]["body"]["kind"] in ("text", "json", "binary")


def test_known_facts_of_recorded_flows() -> None:
    chat = detail_payload(CASES["openai-chat"]())
    assert chat["response"]["tool_calls"][0]["name"]
    assert chat["overview"]["usage_source"] == "reported"
    assert (
        chat["overview"]["cost"]["usd"] is not None
        and "genai-prices" in chat["overview"]["cost"]["how"]
    )
    assert chat["overview"]["context"]["window_source"] == "genai-prices"
    assert chat["overview"]["context"]["window"] >= 128_000

    anth = detail_payload(CASES["anthropic"]())
    assert anth["response"]["thinking"]  # the thinking block was rebuilt

    kiro = detail_payload(CASES["kiro"]())
    assert kiro["overview"]["cost"]["usd"] is None  # Kiro bills credits, never a made-up $0
    assert kiro["overview"]["cost"]["credits"] == pytest.approx(0.03580885572139303)
    assert kiro["overview"]["context"]["used_source"].startswith("reported (Kiro")
    assert kiro["raw"]["response"]["body"]["kind"] == "binary"
    assert kiro["overview"]["usage_source"] == "estimated"

    responses = CASES["openai-responses"]()
    rp = detail_payload(responses)
    # Responses' summary events (*.done, response.completed) repeat the whole answer: only the
    # delta events count as new tokens.
    counted = [e["event"] for e in rp["stream_events"]["events"] if e["tokens"]]
    assert counted and all("delta" in (name or "") for name in counted)
    assert any(e["event"] == "response.completed" for e in rp["stream_events"]["events"])


def test_secrets_masked_in_headers_bodies_and_events() -> None:
    req = LLMRequest(
        method="POST",
        url="https://api.openai.com/v1/chat/completions?key=" + KEY,
        host="api.openai.com",
        path="/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        body=json.dumps(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": f"my key {KEY}"}]}
        ).encode(),
        model="gpt-4o",
        messages=[Message("user", [Part("text", text="hi")])],
    )
    resp = LLMResponse(
        status_code=200,
        headers={"set-cookie": f"session={KEY}"},
        body=f'{{"echo": "{KEY}"}}'.encode(),
        text="ok",
    )
    resp.events = [
        StreamEvent(t=T0 + i, event="delta", data={"delta": {"text": f"{i} {KEY}"}})
        for i in range(3)
    ]
    flow = LLMFlow(request=req, response=resp, metadata=FlowMetadata(provider="openai", api="chat"))
    # Deliberately NOT masked at rest (an import of raw traffic): the payload masks anyway.
    dumped = json.dumps(detail_payload(flow), ensure_ascii=False)
    assert KEY not in dumped
    assert "sk-proj-…" in dumped  # the fingerprint stays, so keys remain distinguishable


def test_bodies_truncated_with_a_flag_and_events_capped() -> None:
    big = "x" * (BODY_LIMIT + 10)
    flow = LLMFlow(
        request=LLMRequest(body=big.encode(), headers={"content-type": "text/plain"}),
        response=LLMResponse(status_code=200, body=b"\x00\x01\xff" * 1000),
    )
    flow.response.events = [  # type: ignore[union-attr]
        StreamEvent(t=T0 + i * 0.01, event="delta", data={"delta": {"text": "word "}})
        for i in range(MAX_EVENTS + 50)
    ]
    flow.timestamps = FlowTimestamps(created=T0, request_sent=T0)
    p = detail_payload(flow)
    body = p["raw"]["request"]["body"]
    assert body["truncated"] is True and len(body["text"]) == BODY_LIMIT
    assert body["size"] == BODY_LIMIT + 10
    assert p["raw"]["response"]["body"]["kind"] == "binary"
    s = p["stream_events"]
    assert s["total"] == MAX_EVENTS + 50 and s["shown"] == MAX_EVENTS
    assert len(s["series"]) <= 601 and s["series"][-1][1] == s["tokens"]


def test_intercepted_flow_shows_original_and_modified() -> None:
    original = LLMRequest(
        method="POST",
        url="http://up/v1/chat/completions",
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
        body=b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "original question"}]}',
    )
    modified = LLMRequest(
        method="POST",
        url="http://up/v1/chat/completions",
        headers={"content-type": "application/json"},
        body=b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "edited"}]}',
    )
    meta = FlowMetadata(
        provider="openai",
        api="chat",
        original_request=original.to_dict(),
        intercepted=[{"stage": "request", "outcome": "resumed_edited"}],
    )
    p = detail_payload(LLMFlow(request=modified, metadata=meta))
    ic = p["intercept"]
    assert ic is not None and ic["events"][0]["outcome"] == "resumed_edited"
    assert "original question" in ic["request"]["original"]["body"]["text"]
    assert "edited" in ic["request"]["modified"]["body"]["text"]
    assert ic["request"]["original"]["body"]["kind"] == "json"
    assert KEY not in json.dumps(ic)
    # A flow nobody intercepted has no intercept section.
    assert detail_payload(LLMFlow(request=modified))["intercept"] is None


def test_images_only_as_data_urls() -> None:
    msg = Message(
        "user",
        [
            Part("image", media_type="image/png", data="iVBORw0KGgo="),
            Part("image", url="https://evil.example/pixel.png"),
        ],
    )
    p = detail_payload(LLMFlow(request=LLMRequest(messages=[msg])))
    a, b = p["conversation"]["turns"][0]["parts"]
    assert a["data_url"] == "data:image/png;base64,iVBORw0KGgo="
    assert "data_url" not in b and b["remote_url"] == "https://evil.example/pixel.png"


def test_context_window_sources_and_turn_split() -> None:
    assert window_size("openai", "gpt-4o")[1] == "genai-prices"
    assert window_size("ollama", "llama3.1:8b") == (128_000, "known-models")
    assert window_size("custom", "my-own-model") == (None, "unknown")
    msgs = [
        Message("user", [Part("text", text="a")]),
        Message("assistant", [Part("text", text="b")]),
        Message("tool", [Part("tool_result", content="r")]),
    ]
    history, new = split_turn(msgs)
    assert [m.role for m in history] == ["user", "assistant"] and [m.role for m in new] == ["tool"]


def test_event_text_finds_provider_deltas() -> None:
    assert event_text({"choices": [{"delta": {"content": "Hel"}}]}) == "Hel"
    assert event_text({"type": "content_block_delta", "delta": {"text": "lo"}}) == "lo"
    assert event_text({"candidates": [{"content": {"parts": [{"text": "!"}]}}]}) == "!"
    assert event_text({"usage": {"output_tokens": 5}}) == ""


HOSTILE = (
    '<script>window.__pwned=1</script><img src=x onerror="alert(1)"> '
    "[click](javascript:alert(1)) ![i](https://evil.example/x.png) **bold** ``` | a |"
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [k for k, _ in attrs]


def _hostile_flow() -> LLMFlow:
    req = LLMRequest(
        model="gpt-4o",
        host="api.openai.com",
        path="/v1/chat/completions",
        messages=[Message("user", [Part("text", text=HOSTILE)])],
    )
    resp = LLMResponse(status_code=200, text=HOSTILE)
    return LLMFlow(
        request=req,
        response=resp,
        state=FlowState.COMPLETED,
        metadata=FlowMetadata(provider="openai", api="chat"),
    )


def test_repr_html_escapes_hostile_content() -> None:
    flow = _hostile_flow()
    out = flow._repr_html_()
    parser = _Tags()
    parser.feed(out)
    assert set(parser.tags) <= {"div", "table", "tr", "th", "td", "strong", "pre"}
    assert not [a for a in parser.attrs if a.startswith("on") or a in ("src", "href")]
    assert "&lt;script&gt;" in out and "<script" not in out
    assert out == flow_html(flow)


def test_repr_markdown_fences_hostile_content() -> None:
    flow = _hostile_flow()
    md = flow._repr_markdown_()
    assert md == flow_markdown(flow)
    # The hostile text only appears inside fences longer than any backtick run in it.
    outside = re.sub(r"(`{4,})text\n.*?\n\1", "", md, flags=re.S)
    assert "<script" not in outside and "javascript:" not in outside and "onerror" not in outside
    assert "| **Model** | gpt-4o |" in md


def test_repr_money_keeps_three_significant_digits() -> None:
    assert usd(0.0000096) == "$0.00000960" and usd(0.00104) == "$0.00104"
    assert usd(1.5) == "$1.5000" and usd(0.0) == "$0.0000"


def test_repr_of_real_flow_is_readable() -> None:
    flow = CASES["anthropic"]()
    html = flow._repr_html_()
    assert flow.id in html and (flow.model or "") in html and "Tokens" in html
    md = flow._repr_markdown_()
    assert "**Provider**" in md and "anthropic" in md


def test_payload_is_json_for_an_empty_pending_flow() -> None:
    p = detail_payload(LLMFlow())
    assert p["response"] is None and p["stream_events"]["total"] == 0
    assert p["overview"]["timing"]["completed_ms"] is None
    assert json.loads(json.dumps(p)) == p


def _unused(*_: Any) -> None:  # keep Any imported for the annotations above
    return None


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("openai", "openai/chat-error-404-model-not-found.cassette.yaml"),
        ("anthropic", "anthropic/messages-error-400-invalid-request.cassette.yaml"),
        ("gemini", "gemini/generate-content-error-404.cassette.yaml"),
    ],
)
def test_error_flows_show_the_provider_error(provider: str, path: str) -> None:
    flow = _cassette(provider, path)
    assert flow.error is not None
    p = detail_payload(flow)
    assert json.loads(json.dumps(p)) == p
    err = p["overview"]["error"]
    assert err["type"] == str(flow.error.type) and err["message"] == flow.error.message
    assert flow.response is not None and flow.response.status_code >= 400
    assert p["overview"]["status"] == flow.response.status_code
    assert p["raw"]["response"]["body"]["kind"] == "json"
    assert p["stream_events"]["total"] == 0

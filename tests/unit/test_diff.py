"""The flow diff engine: message alignment, tools, system prompt, cross-provider, Markdown.

Flows are built by flowbook's real provider parsers from request and response bodies shaped as
the official SDKs send them, so the neutral model under test is the one capture produces.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from flowbook.analysis.diff import FlowDiff, align_messages, diff_flows
from flowbook.model import FlowState, LLMFlow, Message, Part, message_hash
from flowbook.providers.anthropic import AnthropicProvider
from flowbook.providers.base import RequestView
from flowbook.providers.openai import OpenAIProvider
from tests.helpers.fixtures import feed_body

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def _flow(
    provider: Any, host: str, path: str, req: dict[str, Any], resp: dict[str, Any]
) -> LLMFlow:
    view = RequestView("POST", f"https://{host}{path}", host, path, {}, json.dumps(req).encode())
    det = provider.detect(view)
    assert det is not None
    result = feed_body(provider, det.api, view, resp)
    flow = LLMFlow(state=FlowState.COMPLETED, request=result.request, response=result.response)
    flow.metadata.provider, flow.metadata.api = provider.name, det.api
    return flow


def openai_flow(
    messages: list[dict[str, Any]],
    *,
    text: str = "Sunny in Paris.",
    tools: list[dict[str, Any]] | None = None,
    **params: Any,
) -> LLMFlow:
    req: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages, **params}
    if tools is not None:
        req["tools"] = tools
    resp = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }
    return _flow(OpenAIProvider(), "api.openai.com", "/v1/chat/completions", req, resp)


def anthropic_flow(
    system: str,
    messages: list[dict[str, Any]],
    *,
    text: str = "Sunny in Paris.",
    tools: list[dict[str, Any]] | None = None,
    **params: Any,
) -> LLMFlow:
    req: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": system,
        "messages": messages,
        **params,
    }
    if tools is not None:
        req["tools"] = tools
    resp = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 20, "output_tokens": 5},
    }
    return _flow(AnthropicProvider(), "api.anthropic.com", "/v1/messages", req, resp)


def oa_tool(description: str = "Weather for a city", schema: Any = None) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": description,
            "parameters": schema or WEATHER,
        },
    }


CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello. What do you need?"},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_abc", "content": "18C, sunny"},
]


def test_identical_flows_give_an_empty_diff() -> None:
    a = openai_flow(CONVERSATION, tools=[oa_tool()], temperature=0.2)
    b = copy.deepcopy(a)
    b.id = "other-id"
    b.timestamps.created += 60  # volatile: ignored by default
    assert b.response is not None
    b.response.response_id = "chatcmpl-2"
    d = diff_flows(a, b)
    assert isinstance(d, FlowDiff)
    assert d.changes.empty, d.changes.sections()
    assert not d and d.summary() == []
    assert all(op.kind == "equal" for op in d.changes.messages)
    assert "No differences" in d.to_markdown()
    # Asked not to ignore ids, the same pair differs in exactly those.
    strict = diff_flows(a, b, ignore=())
    paths = {f.path for f in strict.changes.overview}
    assert {"id", "response_id", "created"} <= paths


def test_an_inserted_message_is_one_insertion() -> None:
    a = openai_flow(CONVERSATION)
    inserted = {"role": "user", "content": "Also: be brief."}
    b = openai_flow([*CONVERSATION[:3], inserted, *CONVERSATION[3:]])
    ops = diff_flows(a, b).changes.message_changes
    assert [(op.kind, op.role, op.b_index) for op in ops] == [("insert", "user", 2)]
    assert ops[0].b is not None and ops[0].b.text == "Also: be brief."
    # The messages after it are aligned as equal, not shifted into changes.
    kinds = [op.kind for op in diff_flows(a, b).changes.messages]
    assert kinds == ["equal", "equal", "insert", "equal", "equal", "equal"]


def test_appended_turns_and_a_changed_message_in_the_middle() -> None:
    a = openai_flow(CONVERSATION[:4])
    edited = {"role": "assistant", "content": "Hello there. What do you need today?"}
    more = [{"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "Thanks"}]
    b = openai_flow([CONVERSATION[0], CONVERSATION[1], edited, CONVERSATION[3], *more])
    ops = diff_flows(a, b).changes.message_changes
    assert [op.kind for op in ops] == ["change", "insert", "insert"]
    change = ops[0]
    assert change.text is not None
    assert "".join(change.text.inserted).split() == ["there", "today"]
    assert change.text.deleted == []


def test_insert_next_to_a_change_pairs_by_similarity() -> None:
    a = [
        Message("user", [Part("text", text="first question about cities")]),
        Message("user", [Part("text", text="what is the weather in Paris today")]),
    ]
    b = [
        a[0],
        Message("user", [Part("text", text="unrelated note")]),
        Message("user", [Part("text", text="what is the weather in Lyon today")]),
    ]
    ops = [op for op in align_messages(a, b) if op.kind != "equal"]
    assert [op.kind for op in ops] == ["insert", "change"]
    assert ops[1].text is not None and ops[1].text.inserted == ["Lyon"]


def test_changed_tool_and_added_tool() -> None:
    schema = copy.deepcopy(WEATHER)
    schema["properties"]["unit"] = {"type": "string", "enum": ["C", "F"]}
    search = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
    a = openai_flow(CONVERSATION[:4], tools=[oa_tool()])
    b = openai_flow(CONVERSATION[:4], tools=[oa_tool("Weather now", schema), search])
    tools = {t.name: t for t in diff_flows(a, b).changes.tools}
    assert tools["search"].kind == "added"
    changed = tools["get_weather"]
    assert changed.kind == "changed"
    assert {(f.path, f.kind) for f in changed.changes} == {
        ("description", "changed"),
        ("parameters.properties.unit", "added"),
    }
    assert diff_flows(b, a).changes.tools[1].kind == "removed"


def test_changed_system_prompt() -> None:
    a = anthropic_flow("You are a helpful assistant.", [{"role": "user", "content": "Hi"}])
    b = anthropic_flow("You are a terse assistant.", [{"role": "user", "content": "Hi"}])
    c = diff_flows(a, b).changes
    assert c.sections() == ["system"]
    assert c.system.deleted == ["helpful"] and c.system.inserted == ["terse"]
    assert c.system.old == "You are a helpful assistant."
    assert c.system.new == "You are a terse assistant."


def test_response_text_at_word_level() -> None:
    a = openai_flow(CONVERSATION[:2], text="The weather in Paris is sunny and warm.")
    b = openai_flow(CONVERSATION[:2], text="The weather in Paris is cloudy and warm.")
    c = diff_flows(a, b).changes
    assert c.sections() == ["response_text"]
    assert c.response_text.ops == [
        ("equal", "The weather in Paris is "),
        ("delete", "sunny"),
        ("insert", "cloudy"),
        ("equal", " and warm."),
    ]
    assert c.response_text.word_diff() == "The weather in Paris is [-sunny-]{+cloudy+} and warm."


def test_parameters_by_key() -> None:
    a = openai_flow(CONVERSATION[:2], temperature=0.2, stream_options={"include_usage": True})
    b = openai_flow(
        CONVERSATION[:2], temperature=0.7, top_p=0.9, stream_options={"include_usage": False}
    )
    got = {(f.path, f.kind, f.a, f.b) for f in diff_flows(a, b).changes.params}
    assert got == {
        ("temperature", "changed", 0.2, 0.7),
        ("top_p", "added", None, 0.9),
        ("stream_options.include_usage", "changed", True, False),
    }


def test_cross_provider_same_conversation_differs_only_in_provider_and_params() -> None:
    oa = openai_flow(CONVERSATION, tools=[oa_tool()], temperature=0.2)
    an = anthropic_flow(
        "You are terse.",
        [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hello. What do you need?"}],
            },
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [{"type": "text", "text": "18C, sunny"}],
                    }
                ],
            },
        ],
        tools=[
            {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER}
        ],
        temperature=0.2,
    )
    d = diff_flows(oa, an)
    c = d.changes
    assert set(c.sections()) <= {"overview", "params"}, d.summary()
    assert all(op.kind == "equal" for op in c.messages)
    assert len(c.messages) == 5
    overview = {f.path for f in c.overview}
    assert {"provider", "api", "host", "path", "model"} <= overview
    assert {f.path for f in c.params} == {"max_tokens"}


def test_message_hash_ignores_provider_ids_but_not_content() -> None:
    m1 = Message("assistant", [Part("tool_call", id="call_1", name="f", arguments={"x": 1})])
    m2 = Message("assistant", [Part("tool_call", id="toolu_9", name="f", arguments={"x": 1})])
    m3 = Message("assistant", [Part("tool_call", id="call_1", name="f", arguments={"x": 2})])
    assert message_hash(m1) == message_hash(m2)
    assert message_hash(m1) != message_hash(m3)
    assert message_hash(Message("user", [Part("text", text="a")])) != message_hash(
        Message("assistant", [Part("text", text="a")])
    )
    assert len(message_hash(m1)) == 64


def test_to_markdown_keeps_captured_content_inert() -> None:
    a = openai_flow(CONVERSATION[:2], text="plain answer")
    evil = "```\n<script>alert(1)</script> answer"
    b = openai_flow(
        [*CONVERSATION[:2], {"role": "user", "content": "more | pipes"}], text=evil, temperature=1
    )
    md = diff_flows(a, b).to_markdown()
    assert md.startswith(f"## Diff `{a.id}` → `{b.id}`")
    assert "### Parameters" in md and "| temperature | — | 1 |" in md
    assert "### Messages" in md and "+ [–→1] user: more | pipes" in md
    assert "### Response text" in md
    # The response sits in a fence longer than the ``` inside it.
    assert "````\n[-plain-]{+```\n<script>alert(1)</script>+} answer\n````" in md


def test_unknown_ignore_names_the_valid_choices() -> None:
    a = openai_flow(CONVERSATION[:2])
    with pytest.raises(ValueError, match="choose from"):
        diff_flows(a, a, ignore=("colour",))


def test_widget_payload_and_static_fallback_escape_captured_text() -> None:
    from flowbook.ui.diff import DiffWidget, payload

    a = openai_flow(CONVERSATION[:2], text="<b>bold</b> answer")
    b = openai_flow(
        [*CONVERSATION[:2], {"role": "user", "content": "<img src=x onerror=alert(1)>"}],
        text="<script>alert(1)</script> answer",
    )
    d = diff_flows(a, b)
    data = payload(d)
    assert [m["kind"] for m in data["messages"]] == ["equal", "insert"]
    assert data["messages"][1]["b"] == "<img src=x onerror=alert(1)>"
    assert data["response"] == {
        "a": "<b>bold</b> answer",
        "b": "<script>alert(1)</script> answer",
        "changed": True,
    }
    bundle = d._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    static = bundle["text/html"]
    assert "<script>" not in static and "<img" not in static
    assert "&lt;img src=x onerror=alert(1)&gt;" in static  # shown, as text
    assert bundle["text/markdown"] == d.to_markdown()
    assert DiffWidget(d).data == data


def _tool_result(call_id: str, text: str) -> Message:
    return Message("tool", [Part("tool_result", tool_call_id=call_id, content=text)])


def test_tool_results_pair_by_call_id() -> None:
    a = [_tool_result("call_1", "18C sunny"), _tool_result("call_2", "rain all day")]
    b = [
        _tool_result("call_0", "a new lookup nobody asked for"),
        _tool_result("call_1", "19C, cloudy and windy"),
        _tool_result("call_2", "rain all day"),
    ]
    ops = [op for op in align_messages(a, b) if op.kind != "equal"]
    # call_1's result changed (paired by id although the texts differ a lot); call_0 is new.
    assert [(op.kind, op.b_index) for op in ops] == [("insert", 0), ("change", 1)]
    assert ops[1].a_index == 0


def test_long_conversations_fall_back_to_block_matching(monkeypatch: pytest.MonkeyPatch) -> None:
    import flowbook.analysis.diff as engine

    monkeypatch.setattr(engine, "MAX_LCS_CELLS", 0)
    msgs = [Message("user", [Part("text", text=f"turn {i}")]) for i in range(40)]
    extra = Message("user", [Part("text", text="inserted")])
    a = [Message("system", [Part("text", text="old head")]), *msgs]
    b = [Message("system", [Part("text", text="new head")]), *msgs[:20], extra, *msgs[20:]]
    ops = [op for op in align_messages(a, b) if op.kind != "equal"]
    assert [op.kind for op in ops] == ["change", "insert"]
    assert ops[1].b is extra

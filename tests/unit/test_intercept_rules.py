"""The interceptor against mitmproxy test flows: rules, breakpoints, paused-flow actions and
the provider-format bodies it writes. The controller runs on its own loop thread, as in the proxy,
and the test thread plays the kernel."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

import flowbook.intercept.controller as controller_mod
from flowbook.intercept import EditError, InterceptController, intercept_magic
from flowbook.intercept import actions as act
from flowbook.intercept.render_stream import render_stream
from flowbook.model import FlowError, FlowMetadata, FlowState, LLMFlow, LLMRequest

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
PATHS = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
    "generate_content": "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    "kiro": "/generateAssistantResponse",
}
PROVIDERS = {
    "chat": "openai",
    "responses": "openai",
    "messages": "anthropic",
    "generate_content": "gemini",
    "kiro": "kiro",
}


class Host:
    """Records what the controller tells the capture side."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args[1:] if len(args) > 1 else args))

        return record

    def of(self, name: str) -> list[Any]:
        return [a for n, a in self.calls if n == name]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    t = threading.Thread(target=lp.run_forever, daemon=True)
    t.start()
    yield lp
    lp.call_soon_threadsafe(lp.stop)
    t.join(5)


@pytest.fixture
def ctl(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> InterceptController:
    c = InterceptController(tmp_path)
    c.attach_loop(loop)
    return c


def make(
    body: dict[str, Any] | None = None,
    api: str = "chat",
    stream: bool = False,
    model: str = "gpt-4o",
) -> tuple[http.HTTPFlow, LLMFlow]:
    body = dict(body or CHAT, model=model)
    if stream:
        body["stream"] = True
    f = tflow.tflow()
    f.request.path = PATHS[api]
    f.request.content = json.dumps(body).encode()
    f.request.headers["content-type"] = "application/json"
    llm = LLMFlow(
        request=LLMRequest(
            model=model, stream=stream, path=PATHS[api], url="http://address" + PATHS[api]
        ),
        metadata=FlowMetadata(provider=PROVIDERS[api], api=api),
    )
    return f, llm


def run(loop: asyncio.AbstractEventLoop, coro: Any) -> Future[Any]:
    return asyncio.run_coroutine_threadsafe(coro, loop)


def wait_paused(ctl: InterceptController, n: int = 1) -> list[Any]:
    deadline = time.monotonic() + 10
    while len(ctl.pending()) < n:
        assert time.monotonic() < deadline, "flow never paused"
        time.sleep(0.005)
    return ctl.pending()


def sent_json(f: http.HTTPFlow) -> dict[str, Any]:
    return json.loads(f.request.content or b"")


# ---- rules: validation and persistence --------------------------------------------------------


def test_rule_validation_names_the_problem(ctl: InterceptController) -> None:
    with pytest.raises(ValueError, match="unknown rule action"):
        ctl.add_rule(None, "explode")
    with pytest.raises(ValueError, match="unknown parameter"):
        ctl.add_rule(None, "modify", temprature=0.1)
    with pytest.raises(ValueError, match=r"text= .* or body="):
        ctl.add_rule(None, "mock")
    with pytest.raises(ValueError):
        ctl.add_rule("model:(", "block")
    assert ctl.rules.all() == []


def test_rules_are_ordered_listed_removed_and_persisted(tmp_path: Path) -> None:
    c = InterceptController(tmp_path)
    a = c.add_rule("model:gpt-4o", "modify", temperature=0)
    b = c.add_rule(None, "delay", seconds=0.5)
    d = c.add_rule("provider:anthropic", "block", status=451)
    assert [r.id for r in c.rules.all()] == [a, b, d]
    c.remove_rule(b)
    again = InterceptController(tmp_path)
    assert [(r.id, r.action, r.params.get("status")) for r in again.rules.all()] == [
        (a, "modify", None),
        (d, "block", 451),
    ]
    stored = json.loads((tmp_path / "intercept_rules.json").read_text())
    assert [r["id"] for r in stored] == [a, d]
    with pytest.raises(KeyError):
        again.remove_rule("nope")


# ---- rules: effects on the request ------------------------------------------------------------


def test_modify_rule_rewrites_fields_and_headers(ctl: InterceptController, loop: Any) -> None:
    rid = ctl.add_rule(
        "model:gpt-4o",
        "modify",
        model="gpt-4o-mini",
        temperature=0.2,
        max_tokens=50,
        system="Be brief.",
        set={"metadata.user": "u1"},
        headers={"x-team": "a"},
        remove_headers=["header"],
    )
    f, llm = make()
    host = Host()
    run(loop, ctl.on_request(f, llm, host)).result(5)
    body = sent_json(f)
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["metadata"] == {"user": "u1"}
    assert f.request.headers["x-team"] == "a" and "header" not in f.request.headers
    assert host.of("record_rule") == [(rid,)]
    assert host.of("record_original_request")[0][0]["model"] == "gpt-4o"
    assert host.of("request_changed") and f.response is None
    assert ctl.errors == []


def test_modify_uses_each_providers_own_fields(ctl: InterceptController, loop: Any) -> None:
    ctl.add_rule(None, "modify", model="gemini-2.5-pro", temperature=0.1, max_tokens=9, system="S")
    f, llm = make({"contents": []}, api="generate_content", model="gemini-2.5-flash")
    run(loop, ctl.on_request(f, llm, Host())).result(5)
    body = sent_json(f)
    assert body["generationConfig"] == {"temperature": 0.1, "maxOutputTokens": 9}
    assert body["systemInstruction"] == {"parts": [{"text": "S"}]}
    assert "/models/gemini-2.5-pro:streamGenerateContent" in f.request.path
    f, llm = make({"messages": [], "max_tokens": 1000}, api="messages", model="claude")
    run(loop, ctl.on_request(f, llm, Host())).result(5)
    body = sent_json(f)
    assert body["system"] == "S" and body["max_tokens"] == 9 and "generationConfig" not in body


@pytest.mark.parametrize("api", list(PATHS))
@pytest.mark.parametrize("stream", [False, True])
def test_mock_rule_answers_in_the_providers_format(
    ctl: InterceptController, loop: Any, api: str, stream: bool
) -> None:
    ctl.add_rule(None, "mock", text="canned answer")
    f, llm = make(api=api, stream=stream)
    run(loop, ctl.on_request(f, llm, Host())).result(5)
    assert f.response is not None and f.response.status_code == 200
    ctype = f.response.headers["content-type"]
    if stream:
        assert "event-stream" in ctype or "eventstream" in ctype
    # The provider's own assembler reads back what the client will receive.
    rebuilt = act.assemble(f, llm, f.response.content or b"")
    assert rebuilt.text == "canned answer"
    assert f.metadata[act.OUTCOME_KEY] == "mocked"


def test_mock_stream_with_tool_calls_round_trips(ctl: InterceptController, loop: Any) -> None:
    from flowbook.intercept.render import body_from_parts

    for api in ("chat", "responses", "messages", "generate_content", "kiro"):
        body = body_from_parts(
            api,
            text="",
            tool_calls=[{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        )
        f, llm = make(api=api, stream=True)
        f.response = http.Response.make(200, b"", {})
        f.response.content, ctype = render_stream(api, body)
        f.response.headers["content-type"] = ctype
        rebuilt = act.assemble(f, llm, f.response.content or b"")
        assert [(c.name, c.arguments) for c in rebuilt.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ], api


def test_block_rule_gives_a_provider_error_and_cancels(ctl: InterceptController, loop: Any) -> None:
    ctl.add_rule("provider:anthropic", "block", message="not on this network")
    f, llm = make(api="messages", model="claude-sonnet-4")
    host = Host()
    run(loop, ctl.on_request(f, llm, host)).result(5)
    assert f.response is not None and f.response.status_code == 403
    assert json.loads(f.response.content or b"") == {
        "type": "error",
        "error": {"type": "permission_error", "message": "not on this network"},
    }
    (err,) = host.of("set_error")
    assert isinstance(err[0], FlowError) and err[0].type == "cancelled"
    # An OpenAI flow does not match the filter and passes untouched.
    f2, llm2 = make()
    run(loop, ctl.on_request(f2, llm2, Host())).result(5)
    assert f2.response is None


def test_delay_rule_sleeps_without_pausing(
    ctl: InterceptController, loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr(controller_mod.asyncio, "sleep", fake_sleep)
    ctl.add_rule(None, "delay", seconds=1.5)
    f, llm = make()
    run(loop, ctl.on_request(f, llm, Host())).result(5)
    assert slept == [1.5] and ctl.pending() == [] and f.response is None


# ---- breakpoints ------------------------------------------------------------------------------


def test_pause_edit_and_resume(ctl: InterceptController, loop: Any) -> None:
    ctl.enable("model:gpt-4o", timeout=30)
    f, llm = make()
    host = Host()
    fut = run(loop, ctl.on_request(f, llm, host))
    (p,) = wait_paused(ctl)
    assert p.stage == "request" and p.editable == sent_json(f) and not p.editing
    assert host.of("set_state")[0] == (FlowState.INTERCEPTED,)
    # A bad edit raises and the flow stays paused.
    with pytest.raises(EditError, match="not valid JSON"):
        ctl.resume(p.id, request_body="{nope")
    with pytest.raises(EditError, match="messages"):
        ctl.resume(p.id, request_body={"model": "x", "messages": "hi"})
    with pytest.raises(EditError, match="paused at the request"):
        ctl.resume(p.id, response_body={"choices": []})
    assert [q.id for q in ctl.pending()] == [p.id] and not fut.done()
    edited = {**p.editable, "messages": [{"role": "user", "content": "edited"}]}
    ctl.resume(p.id, request_body=json.dumps(edited), headers={"x-edited": "1"})
    fut.result(5)
    assert sent_json(f)["messages"][0]["content"] == "edited"
    assert f.request.headers["x-edited"] == "1"
    assert host.of("record_intercept")[0][0]["outcome"] == "edited"
    assert host.of("set_state")[-1] == (FlowState.PENDING,)
    with pytest.raises(KeyError, match="not paused"):
        ctl.resume(p.id)


def test_non_matching_flow_passes_while_another_is_paused(
    ctl: InterceptController, loop: Any
) -> None:
    ctl.enable("model:gpt-4o-mini")
    f1, llm1 = make(model="gpt-4o-mini")
    fut1 = run(loop, ctl.on_request(f1, llm1, Host()))
    wait_paused(ctl)
    f2, llm2 = make(model="o3")
    run(loop, ctl.on_request(f2, llm2, Host())).result(5)  # not held up
    assert not fut1.done()
    ctl.drop(llm1.id)
    fut1.result(5)
    assert f1.response is not None and f1.response.status_code == 400
    assert "dropped" in json.loads(f1.response.content or b"")["error"]["message"]


@pytest.mark.parametrize("action", ["continue", "drop"])
def test_timeout_releases_an_unattended_flow(
    ctl: InterceptController, loop: Any, action: str
) -> None:
    ctl.enable(timeout=0.2, timeout_action=action)
    f, llm = make()
    before = f.request.content
    host = Host()
    run(loop, ctl.on_request(f, llm, host)).result(10)
    assert ctl.pending() == []
    assert host.of("record_intercept")[0][0]["outcome"] == f"timeout_{action}"
    assert f.request.content == before
    if action == "continue":
        assert f.response is None and not host.of("set_error")
    else:
        assert f.response is not None and f.response.status_code == 400
        assert host.of("set_error")


def test_countdown_stops_while_held(ctl: InterceptController, loop: Any) -> None:
    ctl.enable(timeout=0.3)
    f, llm = make()
    fut = run(loop, ctl.on_request(f, llm, Host()))
    (p,) = wait_paused(ctl)
    ctl.hold(p.id)
    assert p.editing and p.deadline is None
    frozen = p.remaining_s
    time.sleep(0.6)  # twice the timeout: a running countdown would have released it
    assert not fut.done() and p.remaining_s == frozen
    ctl.release_hold(p.id)
    assert not p.editing and p.remaining_s > 1  # released with a grace period
    ctl.resume(p.id)
    fut.result(5)


def test_disable_releases_paused_flows(ctl: InterceptController, loop: Any) -> None:
    ctl.enable()
    f, llm = make()
    fut = run(loop, ctl.on_request(f, llm, Host()))
    wait_paused(ctl)
    ctl.disable()
    fut.result(5)
    assert f.response is None and ctl.pending() == [] and not ctl.active()


def test_many_paused_flows_released_in_any_order(ctl: InterceptController, loop: Any) -> None:
    ctl.enable(timeout=60)
    flows = [make() for _ in range(25)]
    futs = [run(loop, ctl.on_request(f, llm, Host())) for f, llm in flows]
    wait_paused(ctl, len(flows))
    ids = [p.id for p in ctl.pending()]
    random.Random(7).shuffle(ids)
    by_id = {llm.id: f for f, llm in flows}
    done = 0
    threads = []
    for i, fid in enumerate(ids):
        fn = (ctl.resume, ctl.drop, lambda x: ctl.mock(x, text="m"))[i % 3]
        threads.append(threading.Thread(target=fn, args=(fid,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for fut in futs:
        fut.result(10)
        done += 1
    assert done == len(flows) and ctl.pending() == []
    statuses = sorted(
        str(by_id[fid].response.status_code) if by_id[fid].response else "up" for fid in ids
    )
    assert statuses.count("up") == 9 and statuses.count("400") == 8 and statuses.count("200") == 8


# ---- response stage ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_response_stage_edit(ctl: InterceptController, loop: Any, stream: bool) -> None:
    from flowbook.intercept.render import body_from_parts

    ctl.enable(on="response")
    f, llm = make(stream=stream)
    run(loop, ctl.on_request(f, llm, Host())).result(5)
    assert ctl.pending() == [] and ctl.wants_response(f, None)
    original = body_from_parts("chat", text="upstream said this")
    f.response = http.Response.make(200, b"", {})
    if stream:
        f.response.content, ctype = render_stream("chat", original)
        f.response.headers["content-type"] = ctype
    else:
        f.response.content = json.dumps(original).encode()
    host = Host()
    fut = run(loop, ctl.on_response(f, None, host))
    (p,) = wait_paused(ctl)
    assert p.stage == "response" and p.client_stream == stream
    assert p.editable["choices"][0]["message"]["content"] == "upstream said this"
    edited = json.loads(json.dumps(p.editable))
    edited["choices"][0]["message"]["content"] = "edited reply"
    ctl.resume(p.id, response_body=edited)
    fut.result(5)
    assert act.assemble(f, llm, f.response.content or b"").text == "edited reply"
    assert host.of("record_original_response") and host.of("response_changed")


def test_magic_line() -> None:
    from flowbook.intercept import get_controller

    c = get_controller()
    try:
        msg = intercept_magic("on model:gpt-4 --response --timeout 12 --drop")
        assert "model:gpt-4" in msg
        assert c.status()["on"] == "response" and c.status()["timeout"] == 12.0
        assert c.status()["timeout_action"] == "drop"
        assert "off" in intercept_magic("off").lower() and c.breakpoint is None
        with pytest.raises(ValueError, match="usage"):
            intercept_magic("sideways")
    finally:
        c.breakpoint = None

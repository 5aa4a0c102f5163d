"""Interception end to end: real mitmproxy, the official openai SDK as the client, flowbook's
fake upstream. The SDK call runs in a worker thread (it blocks while its flow is paused); the
test thread plays the notebook user."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.intercept import EditError, get_controller

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "What is the weather?"}]


@pytest.fixture(params=["proxy-thread", "proxy-process"])
def client(
    upstream: FakeUpstream, data_dir: Path, request: pytest.FixtureRequest
) -> Iterator[openai.OpenAI]:
    """A client of a running capture: mitmproxy in a thread of this process, or in a child
    process of its own (``own_process=True``, as ``flowbook capture`` runs it), where every
    intercepted flow crosses to this process and back."""
    ctl = get_controller()
    ctl.breakpoint = None
    ctl.rules.clear()
    mon = fb.start(
        port=0,
        mode=[f"reverse:{upstream.url}"],
        data_dir=data_dir,
        own_process=request.param == "proxy-process",
    )
    c = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test", max_retries=0, timeout=60)
    yield c
    c.close()
    ctl.disable()
    ctl.rules.clear()
    fb.stop()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=32) as ex:
        yield ex


def paused(n: int = 1, timeout: float = 20) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(fb.intercept.pending()) < n:
        assert time.monotonic() < deadline, f"expected {n} paused flow(s)"
        time.sleep(0.01)
    return fb.intercept.pending()


def chat(c: openai.OpenAI, model: str = "gpt-4o-mini", **kw: Any) -> Callable[[], Any]:
    return lambda: c.chat.completions.create(model=model, messages=MSG, **kw)


def upstream_bodies(up: FakeUpstream) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in up.requests if r.path.endswith("/chat/completions")]


def test_pause_edit_resume_while_other_traffic_flows(
    client: openai.OpenAI, upstream: FakeUpstream, pool: ThreadPoolExecutor
) -> None:
    fb.intercept.enable("model:gpt-4o-mini", timeout=60)
    call = pool.submit(chat(client))
    (p,) = paused()
    assert p.stage == "request" and p.editable["messages"] == MSG
    assert fb.wait_idle()
    row = fb.flows("state:intercepted")
    assert list(row["id"]) == [p.id], "the paused flow shows as Intercepted in the table"
    # A non-matching call passes while the first one is held.
    other = chat(client, model="o3-mini")()
    assert other.choices[0].message.content and not call.done()
    with pytest.raises(EditError):
        fb.intercept.resume(p.id, request_body={"model": "gpt-4o-mini", "messages": "x"})
    assert [q.id for q in fb.intercept.pending()] == [p.id]
    edited = {
        **p.editable,
        "messages": [{"role": "user", "content": "edited question"}],
        "temperature": 0.5,
    }
    fb.intercept.resume(p.id, request_body=edited)
    reply = call.result(30)
    assert reply.choices[0].message.content
    got = upstream_bodies(upstream)[-1]
    assert got["messages"] == [{"role": "user", "content": "edited question"}]
    assert got["temperature"] == 0.5
    assert fb.wait_idle()
    flow = fb.get_flow(p.id)
    assert flow.state == "completed"
    assert flow.request.messages[-1].text == "edited question", "the flow shows what was sent"
    original = flow.metadata.original_request
    assert (
        original is not None
        and original["messages"][-1]["parts"][0]["text"] == (MSG[-1]["content"])
    )
    assert [e["outcome"] for e in flow.metadata.intercepted] == ["edited"]


def test_timeout_releases_unmodified(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    fb.intercept.enable(timeout=0.3)
    reply = chat(client)()
    assert reply.choices[0].message.content
    assert upstream_bodies(upstream)[-1]["messages"] == MSG
    assert fb.intercept.pending() == []


def test_drop_gives_the_sdk_a_clear_error(
    client: openai.OpenAI, upstream: FakeUpstream, pool: ThreadPoolExecutor
) -> None:
    fb.intercept.enable(timeout=60)
    call = pool.submit(chat(client))
    (p,) = paused()
    fb.intercept.drop(p.id)
    with pytest.raises(openai.BadRequestError, match="dropped") as info:
        call.result(30)
    assert info.value.status_code == 400
    assert upstream_bodies(upstream) == []  # never reached upstream
    assert fb.wait_idle()
    assert str(fb.get_flow(p.id).state) == "cancelled"


@pytest.mark.parametrize("stream", [False, True])
def test_response_stage_edit_reaches_the_sdk(
    client: openai.OpenAI, pool: ThreadPoolExecutor, stream: bool
) -> None:
    fb.intercept.enable(on="response", timeout=60)

    def run() -> str:
        if not stream:
            return chat(client)().choices[0].message.content or ""
        chunks = chat(client, stream=True)()
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    call = pool.submit(run)
    (p,) = paused()
    assert p.stage == "response" and p.client_stream == stream
    body = json.loads(json.dumps(p.editable))
    assert body["choices"][0]["message"]["content"]  # upstream's answer, readable
    body["choices"][0]["message"]["content"] = "edited answer"
    fb.intercept.resume(p.id, response_body=body)
    assert call.result(30) == "edited answer"


def test_mock_and_modify_rules_work_without_a_pause(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    fb.intercept.add_rule(
        "model:gpt-4o-mini",
        "modify",
        model="gpt-4.1",
        temperature=0,
        system="You are terse.",
        headers={"x-flowbook-test": "1"},
    )
    mock_id = fb.intercept.add_rule("model:canned", "mock", text="mocked reply")
    assert [r.action for r in fb.intercept.rules()] == ["modify", "mock"]
    reply = chat(client)()
    got = upstream_bodies(upstream)[-1]
    assert got["model"] == "gpt-4.1" and got["temperature"] == 0
    assert fb.wait_idle()
    modified = fb.get_flow(fb.flows().iloc[0]["id"])
    assert modified.metadata.rules_applied == [fb.intercept.rules()[0].id]
    assert modified.request.model == "gpt-4.1"
    assert modified.metadata.original_request is not None
    assert modified.metadata.original_request["model"] == "gpt-4o-mini"
    assert got["messages"][0] == {"role": "system", "content": "You are terse."}
    assert upstream.requests[-1].headers.get("x-flowbook-test") == "1"
    assert reply.model == "gpt-4.1"
    n = len(upstream.requests)
    assert chat(client, model="canned")().choices[0].message.content == "mocked reply"
    streamed = chat(client, model="canned", stream=True)()
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
        "mocked reply"
    )
    assert len(upstream.requests) == n  # mocks never call upstream
    fb.intercept.remove_rule(mock_id)
    assert [r.action for r in fb.intercept.rules()] == ["modify"]


def test_many_paused_flows_released_in_any_order(
    client: openai.OpenAI, pool: ThreadPoolExecutor
) -> None:
    fb.intercept.enable(timeout=60)
    n = 16
    calls: list[Future[Any]] = [pool.submit(chat(client)) for _ in range(n)]
    ids = [p.id for p in paused(n)]
    random.Random(3).shuffle(ids)
    actions = [fb.intercept.resume, fb.intercept.drop, lambda i: fb.intercept.mock(i, text="m")]
    workers = [threading.Thread(target=actions[k % 3], args=(fid,)) for k, fid in enumerate(ids)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    outcomes = {"ok": 0, "dropped": 0}
    for c in calls:
        try:
            c.result(30)
            outcomes["ok"] += 1
        except openai.BadRequestError:
            outcomes["dropped"] += 1
    assert outcomes == {"ok": n - len(ids[1::3]), "dropped": len(ids[1::3])}
    assert fb.intercept.pending() == []

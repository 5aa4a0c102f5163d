"""Sessions and correlation on agent traffic through the proxy, with the official SDKs.

Three agents (OpenAI Chat, Anthropic Messages streamed, Gemini generateContent) run tool-calling
loops against the fake upstream, interleaved turn by turn; the OpenAI agent's first call gets a
429 and its SDK retries. Each agent asks two questions in one conversation, so each has a thread
of four turns, two tool chains, and (OpenAI) one retry. The test knows every flow's place and
checks that threads, chains, retries, same-prompt pairs and detected sessions come out exactly
as constructed; then exports a session and loads it in a new process on an empty data dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from tests.helpers.agents import AnthropicAgent, GeminiAgent, OpenAIAgent, openai_error_body

KEYS = {
    "openai": "sk-proj-agentAAAA1111bbbb2222",
    "anthropic": "sk-ant-api03-agentBBBB3333cccc4444",
    "gemini": "AIzaSyAgentGGGG5555hhhh6666xxxx",
}
Q1 = "What is the weather in Paris?"
Q2 = "And what is the weather like tomorrow?"


def new_ids(before: set[str]) -> list[str]:
    """Ids of the flows captured since ``before``, oldest first."""
    fb.wait_idle()
    df = fb.flows(sort_by="timestamp", sort_order="asc")
    return [i for i in df["id"] if i not in before]


def run_agents(upstream: FakeUpstream, proxy_url: str) -> dict[str, list[str]]:
    """Drive the three agents, interleaved; return each agent's flow ids in order."""
    agents: dict[str, Any] = {
        "openai": OpenAIAgent(proxy_url, KEYS["openai"], max_retries=2),
        "anthropic": AnthropicAgent(proxy_url, KEYS["anthropic"], max_retries=0),
        "gemini": GeminiAgent(proxy_url, KEYS["gemini"]),
    }
    flows: dict[str, list[str]] = {k: [] for k in agents}
    upstream.script(
        "/v1/chat/completions",
        status=429,
        headers={"Content-Type": "application/json", "retry-after-ms": "1"},
        chunks=[openai_error_body()],
    )
    seen: set[str] = set()

    def step(name: str) -> bool:
        nonlocal seen
        more = agents[name].step()
        got = new_ids(seen)
        flows[name] += got
        seen |= set(got)
        return bool(more)

    for name in agents:
        agents[name].ask(Q1)
    for _ in range(2):  # tool call, then the final answer: interleaved across agents
        for name in agents:
            step(name)
    with fb.session("second-question"):
        for name in agents:
            agents[name].ask(Q2)
        for _ in range(2):
            for name in agents:
                step(name)
    return flows


@pytest.fixture
def agent_run(upstream: FakeUpstream, proxy_url: str) -> dict[str, list[str]]:
    fb.sessions.new("review", "flows a human looked at")
    return run_agents(upstream, proxy_url)


def row(df: Any, flow_id: str) -> Any:
    return df.set_index("id").loc[flow_id]


def test_threads_chains_retries_as_constructed(agent_run: dict[str, list[str]]) -> None:
    a, b, c = agent_run["openai"], agent_run["anthropic"], agent_run["gemini"]
    assert (len(a), len(b), len(c)) == (5, 4, 4)  # the 429 and its retry, then 3 more turns
    df = fb.flows()
    assert row(df, a[0])["status_code"] == 429
    # Threads: one per agent's conversation, turns in order, each turn's parent the one before.
    for turns in (a[1:], b, c):
        for n, fid in enumerate(turns, start=1):
            r = row(df, fid)
            assert r["thread_id"] == turns[0]
            assert r["turn"] == n
            parent = None if pd.isna(r["parent_id"]) else r["parent_id"]
            assert parent == (turns[n - 2] if n > 1 else None)
    assert row(df, a[0])["thread_id"] == a[0]  # the failed call is a thread of its own

    rel = {fid: fb.related(fid) for fid in a + b + c}

    def of(fid: str, relation: str) -> set[str]:
        r = rel[fid]
        return set(r[r["relation"] == relation]["id"])

    # Tool chains: turn 2 answers turn 1's call, turn 4 answers turn 3's (ids for OpenAI and
    # Anthropic, tool name for Gemini, which sends none).
    for turns, how in ((a[1:], "id"), (b, "id"), (c, "name")):
        assert of(turns[1], "tool_chain") == {turns[0]}
        assert of(turns[3], "tool_chain") == {turns[2]}
        assert of(turns[0], "tool_chain") == {turns[1]}
        assert of(turns[2], "tool_chain") == {turns[3]}
        detail = rel[turns[1]].query("relation == 'tool_chain'")["detail"].iloc[0]
        assert f"by {how}" in detail and "get_weather" in detail
    # The retry, both ways.
    assert of(a[1], "retry") == {a[0]} and of(a[0], "retry") == {a[1]}
    assert all(not of(f, "retry") for f in a[2:] + b + c)
    # The first question went to three models: same_prompt pairs across the agents.
    assert of(b[0], "same_prompt") == {a[0], a[1], c[0]}
    assert of(c[0], "same_prompt") == {a[0], a[1], b[0]}
    assert not of(b[1], "same_prompt")
    # Thread relations list the whole conversation.
    assert of(b[2], "thread") == {b[0], b[1], b[3]}


def test_detected_sessions_and_named_sessions(agent_run: dict[str, list[str]]) -> None:
    a, b, c = agent_run["openai"], agent_run["anthropic"], agent_run["gemini"]
    listed = fb.sessions.list()
    auto = listed[listed["kind"] == "auto"]
    assert len(auto) == 3  # one per client identity (SDK, key, address)
    groups = {name: set(fb.sessions.flow_ids(name)) for name in auto["name"]}
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, [a, b, c]))
    by_name = auto.set_index("name")
    for name, ids in groups.items():
        info = by_name.loc[name]
        assert info["flows"] == len(ids)
        assert info["errors"] == (1 if ids == set(a) else 0)
    # The second question's flows were captured inside fb.session("second-question").
    second = set(a[3:] + b[2:] + c[2:])
    assert set(fb.flows("session:second-question")["id"]) == second
    assert set(fb.sessions.flow_ids("second-question")) == second
    # A flow in two sessions matches both filters.
    name_a = next(n for n, ids in groups.items() if ids == set(a))
    assert set(fb.flows(f"session:={name_a}")["id"]) == set(a)
    both = fb.flows(f"session:={name_a} AND session:second-question")
    assert set(both["id"]) == set(a[3:])
    assert fb.flows("session:review").empty  # made empty, stays empty until flows are added
    assert fb.sessions.add("review", [b[3], c[3]]) == 2
    assert set(fb.flows("session:review")["id"]) == {b[3], c[3]}
    assert fb.sessions.remove("review", c[3]) == 1
    # Explain says why.
    text = fb.sessions.explain(a[4])
    assert "continues the conversation" in text and "second-question" in text
    assert f"turn 4 of thread {a[1]}" in text
    first = fb.sessions.explain(a[0])
    assert "first flow of client identity" in first and "sk-proj-…2222" in first
    assert "retries flow" in fb.sessions.explain(a[1])


def test_moving_a_flow_corrects_the_detected_session(agent_run: dict[str, list[str]]) -> None:
    c = agent_run["gemini"]
    df = fb.flows()
    auto_c = next(s for s in row(df, c[0])["session"].split(",") if s.startswith("auto-"))
    fb.sessions.move(c[2:], "gemini-tomorrow")
    assert set(fb.sessions.flow_ids(auto_c)) == set(c[:2])
    assert set(fb.sessions.flow_ids("gemini-tomorrow")) == set(c[2:])
    assert "moved from" in fb.sessions.explain(c[2]) and "corrected" in fb.sessions.explain(c[2])
    # The correction sticks: the tracker seeing the flow again (an annotation rewrites it) and a
    # fresh workspace on the same data dir keep it.
    fb.tag(c[2], "checked")
    from flowbook.workspace import current, reset

    data_dir = current().data_dir
    fb.stop()
    reset()
    current(data_dir)
    assert set(fb.sessions.flow_ids("gemini-tomorrow")) == set(c[2:])
    hist = fb.flows(f"session:={auto_c}", include_history=True)
    assert set(hist["id"]) == set(c[:2])


def test_alert_notification_once(upstream: FakeUpstream, proxy_url: str) -> None:
    from flowbook.workspace import current

    fb.config.alert_latency_s = 0.000001  # every flow is slow now
    agent = OpenAIAgent(proxy_url, KEYS["openai"], max_retries=0)
    agent.ask("hello")
    agent.step()
    fb.wait_idle()
    ws = current()
    notes = ws.notifier.pending()
    flow_id = fb.flows()["id"].iloc[0]
    assert len(notes) == 1 and flow_id in notes[0] and "latency" in notes[0]
    ws.store.annotate(flow_id, add_tags=["seen"])
    ws.store.put(ws.store.get(flow_id))  # the tracker sees the flow again: no second notice
    assert ws.notifier.pending() == []
    assert list(fb.flows("has:alert")["id"]) == [flow_id]
    fb.config.notification_enabled = False
    agent.ask("again")
    agent.step()
    fb.wait_idle()
    assert ws.notifier.pending() == []
    assert len(fb.flows("has:alert")) == 2


LOADER = r"""
import json, sys
import flowbook as fb
name = fb.sessions.load(sys.argv[1])
df = fb.flows(include_history=True, sort_by="timestamp", sort_order="asc")
out = {
    "name": name,
    "rows": df[["id", "session", "thread_id", "turn", "parent_id", "bookmarked", "tags"]]
        .astype(object).where(df.notna(), None).to_dict("records"),
    "flows": {i: fb.get_flow(i).to_dict() for i in df["id"]},
    "related": {i: sorted(map(tuple, fb.related(i)[["relation", "id"]].values.tolist()))
                for i in df["id"]},
    "listed": fb.sessions.list()[["name", "flows", "description"]].to_dict("records"),
}
print(json.dumps(out, default=str))
"""


def comparable(flow: dict[str, Any]) -> dict[str, Any]:
    flow = json.loads(json.dumps(flow, default=str))
    flow["metadata"]["extra"] = {}  # the import stamps the import time here
    return flow


def test_export_and_load_in_a_new_process(agent_run: dict[str, list[str]], tmp_path: Path) -> None:
    from flowbook.redact import redact_flow

    a = agent_run["openai"]
    fb.bookmark(a[2])
    fb.tag(a[3], "interesting")
    fb.comment(a[4], "final answer of the OpenAI agent")
    fb.sessions.describe("second-question", "the follow-up question, all three agents")
    path = fb.sessions.export("second-question", tmp_path / "second.flowbook.jsonl")
    text = path.read_text()
    assert "sk-proj-agentAAAA1111bbbb2222" not in text and "AIzaSyAgentGGGG" not in text
    assert "sk-ant-api03-agentBBBB" not in text

    ids = fb.sessions.flow_ids("second-question")
    before = fb.flows(include_history=True).set_index("id").loc[ids]
    env = dict(os.environ, FLOWBOOK_DATA_DIR=str(tmp_path / "elsewhere"))
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["name"] == "second-question"
    rows = {r["id"]: r for r in got["rows"]}
    assert set(rows) == set(ids)
    for fid in ids:
        r, b = rows[fid], before.loc[fid]
        assert set(r["session"].split(",")) == set(b["session"].split(","))
        assert (r["thread_id"], r["turn"], r["parent_id"]) == (
            b["thread_id"],
            int(b["turn"]),
            None if pd.isna(b["parent_id"]) else b["parent_id"],
        )
        assert (r["bookmarked"], r["tags"]) == (bool(b["bookmarked"]), b["tags"])
        original = redact_flow(fb.get_flow(fid)).to_dict()
        assert comparable(got["flows"][fid]) == comparable(original)
    assert got["flows"][a[4]]["annotations"]["comment"] == "final answer of the OpenAI agent"
    listed = {r["name"]: r for r in got["listed"]}
    assert listed["second-question"]["flows"] == len(ids)
    assert listed["second-question"]["description"] == "the follow-up question, all three agents"
    # Relations among the exported flows are the same as here.
    for fid in ids:
        here = {
            (rel, other)
            for rel, other in fb.related(fid)[["relation", "id"]].values.tolist()
            if other in ids
        }
        assert set(map(tuple, got["related"][fid])) == here


def test_session_opened_here_takes_flows_of_a_detached_capture(
    upstream: FakeUpstream, data_dir: Path
) -> None:
    """``fb.session`` in the notebook, the proxy in another process (``flowbook capture``) on the
    same data dir: the flows captured there while the session is open join it."""
    import re
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "flowbook.cli", "capture", "--port", "0",
         "--mode", f"reverse:{upstream.url}", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        proxy = None
        assert proc.stdout is not None
        for _ in range(20):
            line = proc.stdout.readline()
            urls = [u for u in re.findall(r"http://127\.0\.0\.1:\d+", line) if u != upstream.url]
            if urls:
                proxy = urls[0]
                break
        assert proxy, "the capture process did not print its proxy address"
        fb.sessions.new("remote")
        before = OpenAIAgent(proxy, KEYS["openai"], max_retries=0)
        before.ask("outside the session")
        before.step()
        with fb.session("remote"):
            inside = OpenAIAgent(proxy, KEYS["openai"], max_retries=0)
            inside.ask("inside the session")
            inside.step()
        proc.send_signal(signal.SIGINT)  # a clean stop writes everything to disk
        proc.wait(timeout=60)
        flows = fb.flows(include_history=True)
        assert len(flows) == 2
        remote = fb.flows("session:=remote", include_history=True)
        assert list(remote["preview"]) == ["inside the session"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Sessions on flows put straight into the store façade (real SQLite files in a fresh data dir):
detection by identity and idle gap, continuity across a gap, corrections, edits, filters, magics,
settings validation, and the tracker running for imported flows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

import flowbook as fb
from flowbook.filters import parse
from flowbook.filters.per_flow import matches
from flowbook.model import (
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Usage,
)
from flowbook.schema import frame_from_rows, summary_row
from flowbook.settings import ConfigError

T0 = 1_780_000_000.0


def text(role: str, s: str) -> Message:
    return Message(role, [Part("text", text=s)])


def flow(
    fid: str,
    t: float,
    messages: list[Message],
    answer: str,
    *,
    key: str = "sk-proj-KEYaaaa1111bbbb2222",
    client: str = "agent/1.0",
    latency: float = 0.5,
    base: float = T0,
) -> LLMFlow:
    return LLMFlow(
        id=fid,
        state=FlowState.COMPLETED,
        request=LLMRequest(
            host="api.openai.com",
            path="/v1/chat/completions",
            model="gpt-4o-mini",
            headers={"authorization": f"Bearer {key[:8]}…{key[-4:]}"},
            messages=messages,
            body=json.dumps([m.to_dict() for m in messages]).encode(),
        ),
        response=LLMResponse(
            status_code=200,
            text=answer,
            usage=Usage(input=100, output=10, source="reported"),
        ),
        metadata=FlowMetadata(
            provider="openai", api="chat", client=client, client_address="10.0.0.5:5123"
        ),
        timestamps=FlowTimestamps(
            created=base + t,
            request_sent=base + t,
            first_byte=base + t + 0.1,
            completed=base + t + latency,
        ),
    )


@pytest.fixture
def store(data_dir: Path):  # type: ignore[no-untyped-def]
    from flowbook.workspace import current

    ws = current()
    ws.store.mark_capturing()
    return ws.store


def put_all(store, flows: list[LLMFlow]) -> None:  # type: ignore[no-untyped-def]
    for f in flows:
        store.put(f)


def sessions_of(fid: str) -> set[str]:
    df = fb.flows(include_history=True).set_index("id")
    value = df.loc[fid, "session"]
    return set() if pd.isna(value) else set(value.split(","))


def test_idle_gap_identity_and_continuity(store) -> None:  # type: ignore[no-untyped-def]
    q1 = [text("user", "plan the migration")]
    q2 = [*q1, text("assistant", "Step one."), text("user", "and then?")]
    put_all(
        store,
        [
            flow("f1", 0, q1, "Step one."),
            flow("f2", 60, [text("user", "unrelated question")], "ok"),  # same client, 1 min
            flow("g1", 90, q1, "Step one.", key="sk-proj-OTHERcccc3333dddd4444"),  # other key
            flow("f3", 60 * 45, [text("user", "new day, new task")], "ok"),  # 45 min idle
            flow("f4", 60 * 50, q2, "Step two."),  # continues f1's conversation after the gap
        ],
    )
    s = {fid: sessions_of(fid) for fid in ("f1", "f2", "g1", "f3", "f4")}
    assert s["f1"] == s["f2"] == s["f4"]
    assert s["g1"] != s["f1"] and s["f3"] != s["f1"] and s["f3"] != s["g1"]
    assert all(len(v) == 1 and next(iter(v)).startswith("auto-agent-") for v in s.values())
    explain = fb.sessions.explain("f3")
    assert "idle" in explain and "30 min" in explain
    assert "continues the conversation of flow f1" in fb.sessions.explain("f4")
    assert "within the idle gap" in fb.sessions.explain("f2")
    df = fb.flows(sort_by="id", sort_order="asc").set_index("id")
    assert (df.loc["f4", "thread_id"], df.loc["f4", "turn"], df.loc["f4", "parent_id"]) == (
        "f1",
        2,
        "f1",
    )
    # The other key asked the same thing: a same_prompt pair? No: same model, so not listed.
    assert fb.related("g1").empty


def test_idle_gap_setting_and_auto_sessions_off(store) -> None:  # type: ignore[no-untyped-def]
    fb.config.auto_session_idle_minutes = 100
    put_all(
        store, [flow("a", 0, [text("user", "x")], "1"), flow("b", 3000, [text("user", "y")], "2")]
    )
    assert sessions_of("a") == sessions_of("b")
    fb.config.auto_sessions = False
    put_all(store, [flow("c", 3100, [text("user", "z")], "3")])
    assert sessions_of("c") == set()


def test_edit_sessions(store) -> None:  # type: ignore[no-untyped-def]
    fb.config.auto_sessions = False
    put_all(store, [flow(f"f{i}", i, [text("user", f"q{i}")], "a") for i in range(4)])
    fb.sessions.new("alpha", "first try")
    with pytest.raises(ValueError, match="exists already"):
        fb.sessions.new("alpha")
    with pytest.raises(ValueError, match="session name"):
        fb.sessions.new("bad name, with comma")
    assert fb.sessions.add("alpha", ["f0", "f1"]) == 2
    fb.sessions.new("beta")
    fb.sessions.add("beta", fb.flows("id:f1 OR id:f2"))
    assert sessions_of("f1") == {"alpha", "beta"}
    assert set(fb.flows("session:alpha")["id"]) == {"f0", "f1"}
    fb.sessions.rename("alpha", "gamma")
    assert set(fb.flows("session:=gamma")["id"]) == {"f0", "f1"}
    assert fb.flows("session:=alpha").empty
    fb.sessions.describe("gamma", "renamed")
    fb.sessions.archive("gamma")
    assert "gamma" not in set(fb.sessions.list()["name"])
    listed = fb.sessions.list(include_archived=True).set_index("name")
    assert listed.loc["gamma", "description"] == "renamed" and listed.loc["gamma", "flows"] == 2
    assert listed.loc["beta", "flows"] == 2
    fb.sessions.delete("beta")
    assert sessions_of("f2") == set() and sessions_of("f1") == {"gamma"}
    with pytest.raises(KeyError, match="Did you mean 'gamma'"):
        fb.sessions.add("gama", ["f3"])
    with pytest.raises(KeyError, match="no flow"):
        fb.sessions.add("gamma", ["nope"])


def test_session_context_and_magic(store) -> None:  # type: ignore[no-untyped-def]
    from flowbook.magics import MagicUsageError, run_line

    fb.config.auto_sessions = False
    with fb.session("ctx"):
        put_all(store, [flow("in1", 0, [text("user", "a")], "a", base=time.time())])
        with fb.session("inner"):
            put_all(store, [flow("in2", 1, [text("user", "b")], "b", base=time.time())])
    put_all(store, [flow("out", 2, [text("user", "c")], "c", base=time.time())])
    assert sessions_of("in1") == {"ctx"} and sessions_of("in2") == {"ctx", "inner"}
    assert sessions_of("out") == set()
    assert "go into session 'magic'" in run_line("session magic")
    put_all(store, [flow("m1", 3, [text("user", "d")], "d", base=time.time())])
    assert "no longer" in run_line("session off")
    put_all(store, [flow("m2", 4, [text("user", "e")], "e", base=time.time())])
    assert sessions_of("m1") == {"magic"} and sessions_of("m2") == set()
    assert "magic" in set(run_line("session list")["name"])
    with pytest.raises(MagicUsageError, match="session name"):
        run_line("session 'two words'")


def test_move_sticks_and_later_turns_follow(store) -> None:  # type: ignore[no-untyped-def]
    q1 = [text("user", "start")]
    put_all(store, [flow("p1", 0, q1, "one")])
    auto = next(iter(sessions_of("p1")))
    fb.sessions.move("p1", "by-hand")
    assert sessions_of("p1") == {"by-hand"}
    store.put(store.get("p1"))  # seen again: not placed again
    q2 = [*q1, text("assistant", "one"), text("user", "more")]
    put_all(store, [flow("p2", 10, q2, "two")])
    assert sessions_of("p2") == {"by-hand"}  # the conversation follows the correction
    assert fb.sessions.flow_ids(auto) == []
    assert "moved from" in fb.sessions.explain("p1")


def test_filters_match_each_session_and_alerts() -> None:
    rows = [summary_row(flow(f"x{i}", i, [text("user", "q")], "a")) for i in range(4)]
    rows[0]["session"] = "alpha,beta"
    rows[1]["session"] = "beta"
    rows[2]["session"] = "alphabet"
    rows[0]["alert"] = "latency"
    df = frame_from_rows(rows)
    cases = {
        "session:alpha": {"x0", "x2"},
        "session:=alpha": {"x0"},
        "session:=beta": {"x0", "x1"},
        "session:!=beta": {"x2"},
        "has:alert": {"x0"},
        "NOT has:alert": {"x1", "x2", "x3"},
    }
    for expr, want in cases.items():
        got = set(df[parse(expr).mask(df).to_numpy()]["id"])
        assert got == want, expr
    # The per-flow evaluator agrees on what a single flow carries.
    one = flow("y", 0, [text("user", "q")], "a")
    one.metadata.session = "alpha,beta"
    assert matches(parse("session:=beta").root, one)
    assert not matches(parse("has:alert").root, one)


def test_price_overrides_are_validated(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="needs at least 'input' and 'output'"):
        fb.config.price_overrides = {"m": {"input": 1}}
    with pytest.raises(ConfigError, match="unknown keys"):
        fb.config.price_overrides = {"m": {"input": 1, "output": 2, "cached": 3}}
    with pytest.raises(ConfigError, match=">= 0"):
        fb.config.price_overrides = {"m": {"input": -1, "output": 2}}
    fb.config.price_overrides = {"m-*": {"input": 1, "output": 2}}
    saved = json.loads((data_dir / "config.json").read_text())
    assert saved["price_overrides"] == {"m-*": {"input": 1.0, "output": 2.0}}


def test_imported_flows_are_tracked(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    q1 = [text("user", "imported question")]
    q2 = [*q1, text("assistant", "imported answer"), text("user", "follow-up")]
    path = tmp_path / "flows.jsonl"
    lines = [flow("i1", 0, q1, "imported answer"), flow("i2", 5, q2, "done")]
    path.write_text("".join(json.dumps({"v": 1, **f.to_dict()}) + "\n" for f in lines))
    assert sorted(fb.load(path)) == ["i1", "i2"]
    df = fb.flows(include_history=True).set_index("id")
    assert df.loc["i2", "parent_id"] == "i1" and df.loc["i2", "turn"] == 2


def test_session_handle_and_fb_load_of_a_session_file(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fb.config.auto_sessions = False
    s = fb.sessions.new("handle", "via the handle")
    with s:
        put_all(store, [flow("h1", 0, [text("user", "q")], "a", base=time.time())])
    put_all(store, [flow("h2", 1, [text("user", "r")], "b", base=time.time())])
    assert s.add("h2") == 1 and s.flow_ids() == ["h1", "h2"]
    assert list(s.flows()["id"]) == ["h1", "h2"] and "handle" in fb.sessions
    assert fb.sessions["handle"].name == "handle" and "2 flows" in repr(s)
    path = s.export(tmp_path / "h.jsonl")
    assert s.remove("h1") == 1
    fb.sessions.delete("handle")
    fb.flow_store().remove(["h1", "h2"])
    assert sorted(fb.load(path)) == ["h1", "h2"]  # fb.load knows a session file
    assert fb.sessions["handle"].flow_ids() == ["h1", "h2"]
    assert "# Session handle" in str(fb.sessions.report("handle"))


def test_a_stored_flow_put_again_keeps_its_correction(store, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # (a recent flow: retention would remove an old one when the store reopens)
    put_all(store, [flow("k1", 0, [text("user", "keep")], "kept", base=time.time())])
    fb.sessions.move("k1", "fixed")
    store.wait_idle()
    from flowbook.workspace import current, reset

    reset()
    ws = current(data_dir)
    ws.store.put(ws.store.get("k1"))  # not in this process's memory: a first sight again
    assert sessions_of("k1") == {"fixed"}
    assert "moved from" in fb.sessions.explain("k1")

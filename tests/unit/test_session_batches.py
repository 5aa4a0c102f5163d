"""The session tracker off the recorder's hot path: puts made inside a store batch (a recorder
batch) are only noted, and applied together after the batch (on the tracker thread, or at once
with ``defer_s = 0``); a lone put is applied before it returns; every read applies what is
noted first; closing applies it too, so ``sessions.sqlite`` keeps it across restarts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd

import flowbook as fb
from flowbook.store.changes import StoreChange
from tests.unit.test_sessions import flow, text

SLOW = 3600.0  # a tracker thread that would wait this long: only reads and close() apply


def ws_of(data_dir: Path):  # type: ignore[no-untyped-def]
    from flowbook.workspace import current

    ws = current(data_dir)
    ws.store.mark_capturing()
    return ws


def turns(prefix: str, n: int, base: float) -> list:  # type: ignore[type-arg]
    """``n`` turns of one conversation, each resending the previous ones."""
    out, msgs = [], [text("user", f"{prefix} question 0")]
    for i in range(n):
        answer = f"{prefix} answer {i}"
        out.append(flow(f"{prefix}{i}", i * 5, list(msgs), answer, base=base))
        msgs = [*msgs, text("assistant", answer), text("user", f"{prefix} question {i + 1}")]
    return out


def test_puts_in_a_batch_are_applied_together_after_it(data_dir: Path) -> None:
    ws = ws_of(data_dir)
    ws.sessions.defer_s = 0  # applied at the batch's end, on the putting thread
    flows = turns("t", 4, time.time())
    with ws.store.batch():
        for f in flows:
            ws.store.put(f)
            assert f.id not in ws.sessions.overlay.links  # noted only
        assert f.metadata.session is None
    links = ws.sessions.overlay.links
    assert [links[f.id] for f in flows] == [
        ("t0", i + 1, f"t{i - 1}" if i else None) for i in range(4)
    ]
    (name,) = {f.metadata.session for f in flows}
    assert name is not None and name.startswith("auto-agent-")
    # The summary rows the store shows (and an attached kernel is sent) carry the session.
    assert {ws.store.memory.row(f.id)["session"] for f in flows} == {name}
    assert ws.sessions.errors == [] and ws.store.hook_errors == []


def test_a_lone_put_is_applied_before_the_flow_is_visible(data_dir: Path) -> None:
    ws = ws_of(data_dir)
    ws.sessions.defer_s = SLOW
    fb.config.auto_sessions = False
    with fb.session("ctx"):
        f = flow("lone", 0, [text("user", "q")], "a", base=time.time())
        ws.store.put(f)
    # An intercepted flow is put this way: rules matching it must see its sessions.
    assert f.metadata.session == "ctx"
    assert ws.store.memory.row("lone")["session"] == "ctx"


def test_a_read_applies_what_the_tracker_thread_has_not_yet(data_dir: Path) -> None:
    ws = ws_of(data_dir)
    ws.sessions.defer_s = SLOW
    fb.config.auto_sessions = False
    with fb.session("late"):
        f = flow("r1", 0, [text("user", "q")], "a", base=time.time())
        with ws.store.batch():
            ws.store.put(f)
        assert "r1" not in ws.sessions.overlay.links  # the thread waits SLOW seconds
    # (leaving the block wrote the sessions file, which applied the put first)
    df = fb.flows().set_index("id")
    assert df.loc["r1", "session"] == "late"
    assert fb.sessions["late"].flow_ids() == ["r1"]


def test_what_is_noted_is_kept_across_a_restart(data_dir: Path) -> None:
    from flowbook.workspace import current, reset

    ws = ws_of(data_dir)
    ws.sessions.defer_s = SLOW
    fb.config.auto_sessions = False
    with fb.session("kept"), ws.store.batch():
        ws.store.put(flow("k1", 0, [text("user", "q")], "a", base=time.time()))
    ws.store.wait_idle()
    reset()  # closing applies what is noted
    current(data_dir)
    df = fb.flows(include_history=True).set_index("id")
    assert df.loc["k1", "session"] == "kept"


def test_a_batched_flow_is_reported_added_then_its_row_has_its_session(data_dir: Path) -> None:
    ws = ws_of(data_dir)
    seen: list[StoreChange] = []
    done = threading.Event()

    def listen(change: StoreChange) -> None:
        seen.append(change)
        row = ws.store.memory.row("c1")
        if row is not None and row["session"]:
            done.set()

    ws.store.changed.connect(listen)
    with ws.store.batch():
        ws.store.put(flow("c1", 0, [text("user", "q")], "a", base=time.time()))
    assert done.wait(10)
    mentions = [c for c in seen if "c1" in c]
    assert "c1" in mentions[0].added  # reported as added, never only as updated
    assert not any("c1" in c.removed for c in mentions)
    assert ws.store.memory.row("c1")["session"] == ws.sessions.overlay.sessions["c1"]


def test_a_failing_put_in_a_batch_loses_only_itself(data_dir: Path) -> None:
    ws = ws_of(data_dir)
    ws.sessions.defer_s = 0
    base = time.time()
    good1 = flow("g1", 0, [text("user", "first")], "a", base=base)
    bad = flow("bad", 1, [text("user", "second")], "b", base=base)
    bad.timestamps.created = None  # type: ignore[assignment]  # placing it fails
    good2 = flow("g2", 2, [text("user", "third")], "c", base=base)
    with ws.store.batch():
        for f in (good1, bad, good2):
            ws.store.put(f)
    assert len(ws.sessions.errors) == 1
    df = fb.flows().set_index("id")
    assert pd.notna(df.loc["g1", "session"]) and df.loc["g1", "session"] == df.loc["g2", "session"]
    assert pd.isna(df.loc["bad", "session"])


def test_close_while_the_thread_waits_out_its_deferral_ends_the_thread(data_dir: Path) -> None:
    import sys

    ws = ws_of(data_dir)
    tracker = ws.sessions
    tracker.defer_s = SLOW
    with ws.store.batch():
        ws.store.put(turns("c", 1, time.time())[0])
    thread = tracker._thread
    assert thread is not None and thread.ident is not None

    def deferring() -> bool:  # the thread sits in its wait for more batches to join
        frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
        while frame is not None:
            if frame.f_code.co_name == "_run" and "_stop.wait" in _line(frame):
                return True
            frame = frame.f_back
        return False

    deadline = time.monotonic() + 10
    while not deferring():
        assert time.monotonic() < deadline, "the tracker thread never started waiting"
        time.sleep(0.01)
    tracker.close()  # its wake-up used to be cleared by the thread, which then waited forever
    thread.join(10)
    assert not thread.is_alive()


def _line(frame) -> str:  # type: ignore[no-untyped-def]
    import linecache

    return linecache.getline(frame.f_code.co_filename, frame.f_lineno)


def test_the_retry_lookup_is_served_by_an_index_not_a_scan(data_dir: Path) -> None:
    # A prompt sent thousands of times (an eval loop, a load test) must not make every new flow
    # read all of that prompt's earlier rows.
    from flowbook.grouping.tracker import RETRY_SQL

    ws = ws_of(data_dir)
    plan = " ".join(
        str(tuple(r))
        for r in ws.sessions.db.rows("EXPLAIN QUERY PLAN " + RETRY_SQL, ("h", "f", 1.0))
    )
    assert "facts_retry" in plan and "TEMP B-TREE" not in plan, plan

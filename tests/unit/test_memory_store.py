"""The in-memory store: LRU bounds, summary for every flow, incremental frame, change signal."""

from __future__ import annotations

import threading

import pandas as pd

from flowbook.model import FlowState, LLMFlow, Usage
from flowbook.schema import frame_from_rows, summary_row
from flowbook.store.memory import FlowStore
from tests.helpers.factories import T0, make_flow


def flow(i: int, state: FlowState = FlowState.COMPLETED) -> LLMFlow:
    usage = Usage(input=i, output=2 * i, source="reported")
    return make_flow(
        f"f{i:04d}", state=state, model=f"m{i % 3}", text=f"t{i}", usage=usage, created=T0 + i
    )


def test_lru_keeps_every_summary_but_only_recent_full_flows() -> None:
    store = FlowStore(max_flows_in_memory=3)
    for i in range(6):
        store.put(flow(i))
    assert len(store) == 6 and len(store.frame()) == 6
    assert [f.id for f in store.flows()] == ["f0003", "f0004", "f0005"]
    assert store.get("f0000") is None  # no loader: evicted means gone from memory


def test_in_progress_flows_are_never_evicted() -> None:
    store = FlowStore(max_flows_in_memory=1)
    store.put(flow(0, FlowState.STREAMING))
    store.put(flow(1))
    store.put(flow(2))
    assert store.in_memory("f0000")


def test_incremental_frame_equals_a_full_rebuild() -> None:
    store = FlowStore()
    flows = [flow(i) for i in range(50)]
    for f in flows:
        store.put(f)
    assert len(store.frame()) == 50
    changed = flows[7]
    changed.response.usage = Usage(input=1000, output=1, source="reported")  # type: ignore[union-attr]
    store.touch(changed)
    newest = flow(99)
    store.put(newest)
    got = store.frame().sort_values("id").reset_index(drop=True)
    want = frame_from_rows([summary_row(f) for f in [*flows, newest]])
    want = want.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert got.set_index("id").loc["f0007", "input_tokens"] == 1000
    store.remove(["f0001"])
    assert "f0001" not in set(store.frame()["id"]) and len(store.frame()) == 50


def test_change_signal_coalesces_updates() -> None:
    store = FlowStore()
    batches: list[set[str]] = []
    got = threading.Event()

    def listener(ids: set[str]) -> None:
        batches.append(ids)
        if set().union(*batches) >= {"f0000", "f0001", "f0002"}:
            got.set()

    store.changed.connect(listener)
    for i in range(3):
        store.put(flow(i))
        store.touch(flow(i))
    assert got.wait(5)
    assert set().union(*batches) == {"f0000", "f0001", "f0002"}
    assert len(batches) <= 3  # six updates, never more callbacks than updates
    store.changed.close()


def test_concurrent_readers_never_lose_rows() -> None:
    """Readers building the frame at the same time as writers add flows: the final frame
    holds every flow (two builds from one dirty set once stored an older frame last)."""
    import threading

    store = FlowStore(100_000)
    writers_done = threading.Event()

    def read() -> None:
        while not writers_done.is_set():
            store.frame()

    def write(start: int) -> None:
        for i in range(start, start + 1500):
            store.put(make_flow(f"w{i:06d}"))

    readers = [threading.Thread(target=read) for _ in range(4)]
    writers = [threading.Thread(target=write, args=(k * 10_000,)) for k in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    for t in readers:
        t.join()
    frame = store.frame()
    assert len(frame) == 3000
    assert frame["id"].is_unique

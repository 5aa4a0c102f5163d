"""The store façade over a real file store: lifecycle of a flow, reads, queries, annotations,
the change signal, text search of flows not on disk yet, and the versioned JSONL lines."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flowbook.filters import FilterError, FlowSource
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
from flowbook.schema import COLUMNS, FLOW_LINE_VERSION, frame_from_rows, summary_row
from flowbook.store.changes import StoreChange
from flowbook.store.facade import Store
from flowbook.store.file_store import FileStore
from flowbook.store.records import dumps_line, flow_from_json


def make_flow(i: int, state: FlowState = FlowState.COMPLETED, text: str = "") -> LLMFlow:
    t = time.time() - 100 + i
    return LLMFlow(
        id=f"f{i:04d}",
        state=state,
        request=LLMRequest(
            host="api.openai.com",
            path="/v1/chat/completions",
            model=f"m{i % 3}",
            messages=[Message("user", [Part("text", text=text or f"question {i}")])],
        ),
        response=LLMResponse(
            status_code=200,
            text=f"answer {i}",
            usage=Usage(input=i, output=2 * i, source="reported"),
        ),
        metadata=FlowMetadata(provider="openai", api="chat"),
        timestamps=FlowTimestamps(created=t, completed=t + 0.5),
    )


def record(store: Store, flow: LLMFlow) -> None:
    """What the recorder does: put in progress, touch while streaming, put when final."""
    final = flow.state
    flow.state = FlowState.STREAMING
    store.put(flow)
    store.touch(flow)
    flow.state = final
    store.put(flow)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path, max_flows_in_memory=2)
    yield s
    s.close()


class Changes:
    """Collects StoreChange emissions from the dispatcher thread."""

    def __init__(self, store: Store) -> None:
        self.got: list[StoreChange] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()
        store.changed.connect(self.on_change)

    def on_change(self, change: StoreChange) -> None:
        with self._cond:
            self.got.append(change)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait(self, pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def union(self, kind: str) -> set[str]:
        with self._cond:
            return set().union(*(getattr(c, kind) for c in self.got))


def test_completed_flows_are_persisted_once_and_read_back_after_eviction(
    store: Store, tmp_path: Path
) -> None:
    flows = [make_flow(i) for i in range(5)]
    for f in flows:
        record(store, f)
    assert store.in_progress_ids() == []
    assert store.wait_idle()
    assert len(store.disk) == 5, "each completed flow is written once"
    assert sum(store.in_memory(f.id) for f in flows) == 2, "the LRU keeps two full flows"
    back = store.get("f0000")
    assert back is not None and back.to_dict() == flows[0].to_dict()
    assert store.get("nope") is None
    store.close()
    with FileStore(tmp_path) as again:
        assert sorted(again.ids()) == [f.id for f in flows]


def test_in_progress_flows_are_not_written_and_are_found_by_text_search(store: Store) -> None:
    live = make_flow(1, FlowState.STREAMING, text="needle in progress")
    store.put(live)
    record(store, make_flow(2, text="needle on disk"))
    assert store.in_progress_ids() == ["f0001"]
    # No wait: the completed flow may still be in the writer's queue; search finds it anyway.
    hits = store.query('content:"needle"')
    assert set(hits["id"]) == {"f0001", "f0002"}
    assert store.wait_idle() and "f0001" not in store.disk
    assert isinstance(store, FlowSource)


def test_query_semantics_and_errors(store: Store) -> None:
    for i in range(6):
        record(store, make_flow(i))
    df = store.query("model:=m1", sort_by="input_tokens", sort_order="asc")
    assert list(df["id"]) == ["f0001", "f0004"] and df.attrs["total"] == 2
    assert list(df.columns) == list(COLUMNS)
    page = store.query(page=2, page_size=4)
    assert list(page["id"]) == ["f0001", "f0000"] and page.attrs["total"] == 6
    assert list(page.index) == [0, 1]
    with pytest.raises(ValueError, match="Did you mean 'latency_ms'"):
        store.query(sort_by="latency")
    with pytest.raises(ValueError, match="sort_order must be 'asc' or 'desc'"):
        store.query(sort_order="up")
    with pytest.raises(ValueError, match="page counts from 1"):
        store.query(page=0)
    with pytest.raises(ValueError, match="page_size must be at least 1"):
        store.query(page_size=0)
    with pytest.raises(FilterError):
        store.query("model:(")


def test_history_frame_and_iter_flows(tmp_path: Path) -> None:
    first = Store(tmp_path)
    for i in range(3):
        record(first, make_flow(i))
    first.close()
    store = Store(tmp_path, max_flows_in_memory=1)
    try:
        # A process that has captured nothing sees the history by default.
        assert sorted(store.frame()["id"]) == ["f0000", "f0001", "f0002"]
        record(store, make_flow(3))
        assert list(store.frame()["id"]) == ["f0003"]
        both = store.frame(include_history=True)
        assert sorted(both["id"]) == ["f0000", "f0001", "f0002", "f0003"]
        want = frame_from_rows([summary_row(make_flow(3))])
        got = store.frame().drop(columns="timestamp")
        pd.testing.assert_frame_equal(got, want.drop(columns="timestamp"))
        batches = list(store.iter_flows(include_history=True, batch_size=3))
        assert [len(b) for b in batches] == [3, 1]
        assert [f.id for b in batches for f in b] == ["f0000", "f0001", "f0002", "f0003"]
        assert [[f.id for f in b] for b in store.iter_flows()] == [["f0003"]]
        picked = list(store.iter_flows(["f0001", "missing", "f0003"], batch_size=256))
        assert [[f.id for f in b] for b in picked] == [["f0001", "f0003"]]
        with pytest.raises(ValueError, match="batch_size"):
            next(store.iter_flows(batch_size=0))
    finally:
        store.close()


def test_annotate_in_memory_and_on_disk(store: Store, tmp_path: Path) -> None:
    for i in range(3):
        record(store, make_flow(i))
    store.annotate("f0000", bookmarked=True, add_tags=["keep", "x"], comment="look")
    ann = store.annotate("f0000", remove_tags=["x"])
    assert ann.tags == ["keep"] and ann.bookmarked and ann.comment == "look"
    assert list(store.query("is:bookmarked AND tag:keep")["id"]) == ["f0000"]
    with pytest.raises(KeyError, match="no flow with id 'nope'"):
        store.annotate("nope", bookmarked=True)
    with pytest.raises(ValueError, match="without commas"):
        store.annotate("f0001", add_tags=["a,b"])
    store.close()
    with FileStore(tmp_path) as disk:
        back = disk.get("f0000")
        assert back is not None and back.annotations.tags == ["keep"]


def test_change_signal_reports_added_updated_removed_off_the_writing_thread(
    store: Store, tmp_path: Path
) -> None:
    seen = Changes(store)
    record(store, make_flow(0))
    record(store, make_flow(1))
    assert seen.wait(lambda s: s.union("added") >= {"f0000", "f0001"})
    store.annotate("f0000", comment="hi")
    assert seen.wait(lambda s: "f0000" in s.union("updated"))
    assert store.remove(["f0001", "nope"]) == {"f0001"}
    assert seen.wait(lambda s: "f0001" in s.union("removed"))
    assert "f0001" not in store and "f0001" not in store.disk
    store.clear()
    assert seen.wait(lambda s: "f0000" in s.union("removed"))
    assert seen.threads == {"flowbook-store-changes"}
    assert all(not (c.added & c.removed) for c in seen.got), "an id is in one set per change"


def test_retention_emits_removed_for_stored_flows(tmp_path: Path) -> None:
    old = make_flow(7)
    with FileStore(tmp_path) as disk:
        disk.append(old)
    store = Store(tmp_path)
    try:
        seen = Changes(store)
        assert len(store.frame(include_history=True)) == 1
        assert store.disk.apply_retention(1.0, now=time.time() + 3 * 86400) == 1
        assert seen.wait(lambda s: s.union("removed") == {"f0007"})
        assert len(store.frame(include_history=True)) == 0
    finally:
        store.close()


def test_change_signal_coalesces_a_burst() -> None:
    store = Store(Path("/nonexistent-never-opened"), persist=False)
    seen = Changes(store)
    f = make_flow(0, FlowState.STREAMING)
    store.put(f)
    for _ in range(200):
        store.touch(f)
    assert seen.wait(lambda s: "f0000" in s.union("added"))
    assert len(seen.got) < 201, "201 updates arrive as fewer, coalesced changes"
    # However the burst was cut, the first change says the flow was added (its updates folded in).
    assert seen.got[0] == StoreChange(added=frozenset({"f0000"}))
    store.memory.changed.close()


def test_persist_off_keeps_flows_in_memory_only(tmp_path: Path) -> None:
    store = Store(tmp_path, persist=False)
    try:
        record(store, make_flow(0, text="only here"))
        assert store.wait_idle()
        assert len(store.disk) == 0
        assert list(store.query('content:"only here"')["id"]) == ["f0000"]
    finally:
        store.close()


def test_lines_are_versioned_and_unversioned_lines_still_read(tmp_path: Path) -> None:
    flow = make_flow(3)
    # Exactly what flowbook wrote before lines had a version: the bare flow dict.
    old_line = dumps_line(flow.to_dict())
    assert b'"v"' not in old_line
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_bytes(old_line)
    store = Store(tmp_path / "data")
    try:
        assert store.load(legacy) == ["f0003"]
        back = store.get("f0003")
        assert back is not None and back.to_dict()["request"] == flow.to_dict()["request"]
        store.disk.export_jsonl(None, tmp_path / "new.jsonl")
    finally:
        store.close()
    line = json.loads((tmp_path / "new.jsonl").read_bytes())
    assert line["v"] == FLOW_LINE_VERSION
    again = flow_from_json(line)
    assert again is not None and again.id == "f0003"
    assert flow_from_json({"flow": flow.to_dict()}) is not None, "the reference's wrapper"
    assert flow_from_json({"v": "one", **flow.to_dict()}) is None


def test_reads_do_not_wait_for_a_stuck_writer(store: Store) -> None:
    disk = store.disk
    with disk._lock:  # the writer thread blocks on this lock until the block ends
        for i in range(4):
            record(store, make_flow(i, text=f"needle {i}"))
        assert not store.in_memory("f0000"), "evicted from the LRU before it reached the disk"
        back = store.get("f0000")
        assert back is not None and back.id == "f0000", "served from the writer's queue"
        assert len(store.query('content:"needle"', include_history=True)) == 4
        assert sorted(store.frame(include_history=True)["id"]) == [f"f000{i}" for i in range(4)]
        assert [len(b) for b in store.iter_flows(batch_size=3)] == [3, 1]
        assert store.wait_idle(timeout=0.2) is False, "nothing could be written yet"
    assert store.wait_idle()
    assert sorted(disk.ids()) == [f"f000{i}" for i in range(4)]

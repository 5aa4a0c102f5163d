"""FileStore: JSONL segments + SQLite index + FTS5, annotations, retention, import/export."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowbook.model import (
    ErrorType,
    FlowAnnotations,
    FlowError,
    LLMFlow,
    ToolCall,
    Usage,
)
from flowbook.schema import frame_from_rows, summary_row
from flowbook.store.file_store import FileStore
from tests.helpers import factories

DAY = 86400.0


def make_flow(
    i: int,
    created: float | None = None,
    user: str = "What is the weather in Paris?",
    answer: str = "Sunny, 21 °C.",
    error: str | None = None,
) -> LLMFlow:
    """A completed chat flow (the shared factory, with this module's body, tool call and times)."""
    t = time.time() if created is None else created
    flow = factories.make_flow(
        f"flow-{i:05d}",
        request_body=json.dumps({"model": "gpt-4o", "n": i}).encode(),
        system="You are terse.",
        user=user,
        stream=True,
        status=500 if error else 200,
        response_body=b"data: {}\n\n",
        text=answer,
        tool_calls=[ToolCall("c1", "get_weather", {"city": "Lyon"}, '{"city":"Lyon"}')],
        usage=Usage(input=100 + i, output=20, cache_read=10, source="reported"),
        error=FlowError(ErrorType.SERVER_ERROR, error, status=500) if error else None,
        cost=0.002,
        session="s1",
        created=t,
        latency_s=1.0,
        ttft_s=0.3,
    )
    flow.timestamps.request_sent, flow.timestamps.first_byte = t, t + 0.2
    return flow


@pytest.fixture
def store(tmp_path: Path):
    s = FileStore(tmp_path)
    yield s
    s.close()


def test_append_get_roundtrip_and_summary_matches_summary_row(store: FileStore) -> None:
    flows = [make_flow(i, user=f"question {i} ünïcode 你好") for i in range(5)]
    store.append(flows[0])
    store.append_many(flows[1:])
    assert len(store) == 5
    for f in flows:
        got = store.get(f.id)
        assert got is not None
        assert got.to_dict() == f.to_dict()
    assert store.get("nope") is None
    # Newest first: the order fb.flows() shows, so its default sort moves no data.
    expected = frame_from_rows([summary_row(f) for f in reversed(flows)])
    pd.testing.assert_frame_equal(store.summary_frame(), expected)


def test_summary_frame_empty_store_has_typed_columns(store: FileStore) -> None:
    df = store.summary_frame()
    assert len(df) == 0
    assert list(df.columns) == list(frame_from_rows([]).columns)
    assert df.dtypes.equals(frame_from_rows([]).dtypes)


def test_new_process_sees_history_and_reads_flows_back(tmp_path: Path) -> None:
    yesterday = time.time() - DAY
    with FileStore(tmp_path) as s:
        s.append_many([make_flow(i, created=yesterday + i) for i in range(3)])
    with FileStore(tmp_path) as s2:  # as a new kernel would
        assert s2.recovery_report == []
        assert set(s2.summary_frame()["id"]) == {f"flow-{i:05d}" for i in range(3)}
        got = s2.get("flow-00001")
        assert got is not None and got.timestamps.created == yesterday + 1


def test_same_id_appended_again_latest_wins(store: FileStore) -> None:
    store.append(make_flow(1, answer="first"))
    store.append(make_flow(1, answer="second"))
    assert len(store) == 1
    got = store.get("flow-00001")
    assert got is not None and got.response is not None and got.response.text == "second"
    assert store.ids_matching_text("response", "second") == {"flow-00001"}
    assert store.ids_matching_text("response", "first") == set()


def test_size_rotation_creates_several_segments_all_readable(tmp_path: Path) -> None:
    with FileStore(tmp_path, segment_max_bytes=400) as s:  # lines refer to content: ~80 B
        s.append_many([make_flow(i) for i in range(20)])
        segs = list((tmp_path / "flows" / "segments").rglob("*.jsonl"))
        assert len(segs) > 3
        assert all(s.get(f"flow-{i:05d}") is not None for i in range(20))


def test_daily_rotation_starts_a_segment_per_utc_day(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    with FileStore(tmp_path, clock=lambda: now[0]) as s:
        s.append(make_flow(1))
        now[0] += DAY
        s.append(make_flow(2))
    days = sorted(p.name for p in (tmp_path / "flows" / "segments").iterdir())
    assert days == ["2023-11-14", "2023-11-15"]


def test_text_search_scopes(store: FileStore) -> None:
    store.append(make_flow(1, user="Tell me about PARIS", answer="It is big"))
    store.append(make_flow(2, user="tokyo", answer="Paris is nice"))
    store.append(make_flow(3, user="x", answer="nothing", error="Upstream overloaded"))
    assert store.ids_matching_text("request", "paris") == {"flow-00001"}
    assert store.ids_matching_text("response", "paris") == {"flow-00002"}
    assert store.ids_matching_text("content", "Paris") == {"flow-00001", "flow-00002"}
    assert store.ids_matching_text("response", "overloaded") == {"flow-00003"}  # error text
    assert store.ids_matching_text("request", 'say "hi"') == set()  # quotes are literal
    assert store.ids_matching_text("request", "ok") == {"flow-00002"}  # short: scanned
    assert len(store.ids_matching_text("content", "")) == 3
    with pytest.raises(ValueError, match="scope"):
        store.ids_matching_text("body", "x")


ALPHABET = st.sampled_from(list('abAB é"Éx-*:'))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(ALPHABET, min_size=0, max_size=12), min_size=1, max_size=6),
    needle=st.text(ALPHABET, min_size=1, max_size=6),
)
def test_text_search_agrees_with_case_insensitive_substring(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], needle: str
) -> None:
    with FileStore(tmp_path_factory.mktemp("fts")) as s:
        flows = [make_flow(i, user=t, answer="") for i, t in enumerate(texts)]
        s.append_many(flows)
        expected = {f.id for f in flows if needle.lower() in f.request.plain_text().lower()}
        assert s.ids_matching_text("request", needle) == expected


def test_annotations_persist_across_reopen_and_index_rebuild(tmp_path: Path) -> None:
    with FileStore(tmp_path) as s:
        s.append_many([make_flow(i) for i in range(3)])
        s.set_annotations("flow-00001", FlowAnnotations(True, "⭐", ["bug", "slow"], "look"))
        df = s.summary_frame().set_index("id")
        assert bool(df.loc["flow-00001", "bookmarked"]) is True
        assert df.loc["flow-00001", "tags"] == "bug,slow"
        assert bool(df.loc["flow-00000", "bookmarked"]) is False
    with FileStore(tmp_path) as s:
        got = s.get("flow-00001")
        assert got is not None
        assert got.annotations == FlowAnnotations(True, "⭐", ["bug", "slow"], "look")
        index_path = s.index_path
    index_path.unlink()
    with FileStore(tmp_path) as s:
        assert any("Rebuilt the index" in r for r in s.recovery_report)
        df = s.summary_frame().set_index("id")
        assert df.loc["flow-00001", "tags"] == "bug,slow"
        got = s.get("flow-00001")
        assert got is not None and got.annotations.comment == "look"


def test_retention_removes_only_expired_flows_sharing_a_segment(tmp_path: Path) -> None:
    now = time.time()
    ages = {0: 30, 1: 1, 2: 10, 3: 0.5, 4: 8, 5: 2}  # days
    with FileStore(tmp_path) as s:
        s.append_many(
            [make_flow(i, created=now - a * DAY, user=f"msg{i}x") for i, a in ages.items()]
        )
        segs = list((tmp_path / "flows" / "segments").rglob("*.jsonl"))
        assert len(segs) == 1  # all in one segment
        s.set_annotations("flow-00000", FlowAnnotations(tags=["old"]))
        s.set_annotations("flow-00001", FlowAnnotations(tags=["new"]))
        before = {i: s.get(f"flow-{i:05d}") for i in ages}
        assert s.apply_retention(7, now=now) == 3
        keep = {i for i, a in ages.items() if a < 7}
        assert set(s.summary_frame()["id"]) == {f"flow-{i:05d}" for i in keep}
        assert len(s) == 3
        for i in ages:
            got = s.get(f"flow-{i:05d}")
            if i in keep:
                assert got is not None and got.to_dict() == before[i].to_dict()  # type: ignore[union-attr]
            else:
                assert got is None
        assert s.ids_matching_text("request", "msg0x") == set()  # FTS in step
        assert s.ids_matching_text("request", "msg1x") == {"flow-00001"}
        assert s.apply_retention(7, now=now) == 0
        s.append(make_flow(9))  # appending still works after the rewrite
    with FileStore(tmp_path) as s:
        assert s.recovery_report == []
        assert len(s) == 4
        assert s.get("flow-00001").annotations.tags == ["new"]  # type: ignore[union-attr]
        journal = (tmp_path / "flows" / "annotations.jsonl").read_text()
        assert "flow-00000" not in journal and "flow-00001" in journal
        assert s.apply_retention(0.0001, now=now + 40 * DAY) == 4
        assert len(s) == 0
        assert list((tmp_path / "flows" / "segments").rglob("*.jsonl")) == []


def test_import_and_export_jsonl(tmp_path: Path) -> None:
    src = FileStore(tmp_path / "a")
    src.append_many([make_flow(i, created=time.time() - 60 * DAY) for i in range(4)])
    src.set_annotations("flow-00002", FlowAnnotations(bookmarked=True))
    out = src.export_jsonl(["flow-00001", "flow-00002"], tmp_path / "x.jsonl")
    all_out = src.export_jsonl(None, tmp_path / "all.jsonl")
    src.close()
    assert len(out.read_text().splitlines()) == 2
    with FileStore(tmp_path / "b") as dst:
        assert dst.import_jsonl(out) == ["flow-00001", "flow-00002"]
        assert dst.import_jsonl(all_out) == ["flow-00000", "flow-00003"]  # present: skipped
        assert dst.get("flow-00002").annotations.bookmarked is True  # type: ignore[union-attr]
        # Retention counts from the import, so 60-day-old flows survive a 7-day cleanup.
        assert dst.apply_retention(7) == 0
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"not": "a flow"}\n')
        with pytest.raises(ValueError, match="no flowbook flows"):
            dst.import_jsonl(bad)


def test_concurrent_appends_from_threads(store: FileStore) -> None:
    def worker(k: int) -> None:
        for i in range(50):
            store.append(make_flow(k * 1000 + i))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 200
    assert store.get("flow-03049") is not None


def test_corrupt_middle_line_is_skipped_and_reported(tmp_path: Path) -> None:
    with FileStore(tmp_path) as s:
        s.append_many([make_flow(i) for i in range(3)])
        index_path = s.index_path
    seg = next((tmp_path / "flows" / "segments").rglob("*.jsonl"))
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(lines[0] + b"{garbage\n" + lines[1] + lines[2])
    index_path.unlink()
    with FileStore(tmp_path) as s:
        assert len(s) == 3
        assert any("corrupt line" in r for r in s.recovery_report)


def test_data_dir_files_are_private(tmp_path: Path) -> None:
    with FileStore(tmp_path / "d") as s:
        s.append(make_flow(1))
        seg = next((tmp_path / "d" / "flows" / "segments").rglob("*.jsonl"))
        assert seg.stat().st_mode & 0o077 == 0
        assert s.index_path.stat().st_mode & 0o077 == 0
        assert (tmp_path / "d" / "flows").stat().st_mode & 0o077 == 0


def test_closed_store_raises(tmp_path: Path) -> None:
    s = FileStore(tmp_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.append(make_flow(1))


def test_summary_snapshot_is_used_and_never_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowbook.store import snapshot

    monkeypatch.setattr(snapshot, "MIN_BASE_ROWS", 3)
    monkeypatch.setattr(snapshot, "DELTA_ROWS", 2)
    now = time.time()
    flows = [make_flow(i, created=now - i * DAY) for i in range(6)]
    with FileStore(tmp_path) as s:
        s.append_many(flows[:4])
        s.summary_frame()
        snap = tmp_path / "flows" / snapshot.SNAPSHOT
        assert snap.exists()
        s.append_many(flows[4:])  # the writer adds a delta file: the snapshot stays current
        assert [p.name for p in snap.parent.glob("summary.*.arrow")] == ["summary.4.arrow"]
        s.set_annotations("flow-00001", FlowAnnotations(bookmarked=True, tags=["a"]))
        expected = frame_from_rows([summary_row(f) for f in flows])
        expected.loc[1, "bookmarked"] = True
        expected.loc[1, "tags"] = "a"
        pd.testing.assert_frame_equal(s.summary_frame(), expected)
        s.append(make_flow(0, created=now, user="changed"))  # stored again: snapshot invalid
        assert s.summary_frame().set_index("id").loc["flow-00000", "preview"] == "changed"
        assert s.apply_retention(3.5, now=now) == 2  # 4 and 5 days old
        assert sorted(s.summary_frame()["id"]) == [f"flow-{i:05d}" for i in range(4)]
        index_path = s.index_path
    index_path.unlink()  # a rebuilt index must not trust the old snapshot
    with FileStore(tmp_path) as s:
        assert sorted(s.summary_frame()["id"]) == [f"flow-{i:05d}" for i in range(4)]
        assert s.summary_frame().set_index("id").loc["flow-00000", "preview"] == "changed"

"""Bringing the index in step with the segments when a store opens.

Segments are the truth; the index records per segment how many bytes it has indexed
(``indexed_bytes``, up to the last complete line) and examined (``scanned_bytes``). On open every
segment is compared with its watermarks: lines past them (written just before a crash, or by
another process) are indexed, a torn last line is skipped and reported once, a segment that
shrank (rewritten by retention, truncated by hand) is re-indexed, and a segment that disappeared
takes its rows out of the index. With an empty index this is a full rebuild.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from flowbook.model import LLMFlow
from flowbook.store import index, journal, pieces
from flowbook.store.records import record_for
from flowbook.store.segments import ScanResult, list_segments, scan_lines

# A segment line -> (its flow, its content recipe or None); raises ValueError when the line is
# not a flow or its content is missing (the file store's ``_load_line``).
LoadLine = Callable[[bytes], tuple[LLMFlow | None, bytes | None]]

_BATCH = 2000


def index_segment(
    conn: sqlite3.Connection,
    root: Path,
    path: str,
    seg: int,
    start: int,
    report: list[str],
    load: LoadLine,
) -> int:
    """Index the complete lines of one segment from byte ``start``; return flows indexed."""
    result = ScanResult()
    batch: list[tuple[list, pieces.FlowPieces]] = []
    count = corrupt = missing = 0

    def flush() -> None:
        conn.execute("BEGIN")
        index.insert_flows(conn, batch)
        index.mark_indexed(conn, seg, result.end, result.end)
        conn.execute("COMMIT")
        batch.clear()

    for line in scan_lines(root / path, start, result):
        if not line.data.strip():
            continue
        try:
            flow, rh = load(line.data)
        except LookupError:
            missing += 1
            continue
        if flow is None:
            corrupt += 1
            continue
        rec = record_for(flow, line.data)
        params = index.flow_params(seg, line.offset, line.length, rec.retain_from, rh, rec.row)
        batch.append((params, rec.pieces))
        count += 1
        if len(batch) >= _BATCH:
            flush()
    flush()
    scanned = result.end + result.torn_bytes
    conn.execute(
        "UPDATE segments SET scanned_bytes=max(scanned_bytes, ?) WHERE seg=?", (scanned, seg)
    )
    if corrupt:
        report.append(f"{path}: skipped {corrupt} corrupt line(s) that are not flowbook flows.")
    if missing:
        report.append(
            f"{path}: skipped {missing} flow(s) whose content is missing from content.sqlite "
            "(the content store was deleted or damaged)."
        )
    if result.torn_bytes:
        report.append(
            f"{path}: skipped a torn last line ({result.torn_bytes} bytes at offset "
            f"{result.end}), left by a write that was interrupted (process killed)."
        )
    return count


def drop_segment_rows(conn: sqlite3.Connection, seg: int) -> int:
    """Take every flow of a segment out of the index; return how many."""
    fids = [r[0] for r in conn.execute("SELECT fid FROM flows WHERE seg=?", (seg,))]
    conn.execute("BEGIN")
    index.delete_flows(conn, fids)
    conn.execute("COMMIT")
    return len(fids)


def reconcile(conn: sqlite3.Connection, root: Path, report: list[str], load: LoadLine) -> int:
    """Index whatever the segments hold that the index lacks; return flows (re)indexed."""
    known = {
        path: (seg, indexed, scanned)
        for seg, path, indexed, scanned in conn.execute(
            "SELECT seg, path, indexed_bytes, scanned_bytes FROM segments"
        )
    }
    on_disk = list_segments(root)
    for path in set(known) - set(on_disk):
        seg = known[path][0]
        n = drop_segment_rows(conn, seg)
        conn.execute("DELETE FROM segments WHERE seg=?", (seg,))
        if n:
            report.append(f"{path}: segment missing; removed its {n} flow(s) from the index.")
    total = 0
    for path in on_disk:
        size = (root / path).stat().st_size
        if path in known:
            seg, indexed, scanned = known[path]
            if size == scanned:
                continue
            if size < scanned:  # rewritten or truncated since we last looked: start over
                drop_segment_rows(conn, seg)
                conn.execute(
                    "UPDATE segments SET indexed_bytes=0, scanned_bytes=0 WHERE seg=?", (seg,)
                )
                indexed = 0
        else:
            seg, indexed = index.segment_id(conn, path), 0
        total += index_segment(conn, root, path, seg, indexed, report, load)
    replay_journal(conn, root)
    return total


def replay_journal(conn: sqlite3.Connection, root: Path) -> None:
    """Apply annotation records the index has not seen (all of them after a rebuild)."""
    done = int(index.meta_get(conn, "journal_bytes", "0") or 0)
    if journal.size(root) < done:  # compacted by another process: replaying is idempotent
        done = 0
    records, end = journal.read(root, done)
    if end == done:
        return
    conn.execute("BEGIN")
    for flow_id, ann, t in records:
        index.upsert_annotations(conn, flow_id, ann, t)
    index.meta_set(conn, "journal_bytes", str(end))
    conn.execute("COMMIT")

"""The file store: every completed flow on disk, searchable, surviving a killed kernel.

Layout under ``<data_dir>/flows/``: ``segments/YYYY-MM-DD/*.jsonl`` (append-only, one line per
flow, the truth of which flows exist), ``content.sqlite`` (each flow's full line cut into chunks,
every distinct chunk stored once, zstd: ``content.py``), ``index.sqlite`` (summary columns,
segment + offset, annotations, search over distinct pieces; a cache rebuilt from the segments
and the content whenever it is missing, corrupt, behind or of an older format) and
``annotations.jsonl`` (the journal of bookmarks, tags and comments). A segment line of format 2
refers to its content (``records.ref_line``); format 1 segments hold whole lines and are read as
they are, so a data dir of the previous format opens without a migration step.

Durability and order: the content commits first, then the segment line is written (``os.write``),
then the index row commits. A kill between two steps leaves unreferenced content (collected by
retention) or an unindexed line (indexed on the next open), never a line without its content.
Segments are fsynced at least every half second.
"""

from __future__ import annotations

import gzip
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.store import index, journal, pieces, recovery, retention, snapshot
from flowbook.store.content import ContentStore
from flowbook.store.records import (
    IMPORTED_AT,
    Record,
    flow_from_json,
    flow_line,
    record_for,
    ref_line,
    ref_of,
)
from flowbook.store.segments import SegmentWriter, read_line

log = logging.getLogger(__name__)

STORE_DIR = "flows"
INDEX_FILE = "index.sqlite"
SCOPES = ("content", "request", "response")


class FileStore:
    """JSONL segments + SQLite index for one data dir. Thread-safe.

    ``FileStore(data_dir)`` opens (creating) ``<data_dir>/flows`` and brings the index in step
    with the segments; what it had to repair is in ``recovery_report`` (plain sentences).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        segment_max_bytes: int = 64 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.root = self.data_dir / STORE_DIR
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.index_path = self.root / INDEX_FILE
        self.clock = clock
        self.recovery_report: list[str] = []
        self._lock = threading.RLock()  # writes: segment writer + write connection
        self._rlock = threading.Lock()  # the read connection
        self._closed = False
        self.content = ContentStore(self.root)
        self._conn = self._open_index()
        self._read = sqlite3.connect(self.index_path, isolation_level=None, check_same_thread=False)
        self._read.execute("PRAGMA cache_size=-65536")  # search reads scattered piece rows
        self._writer = SegmentWriter(self.root, segment_max_bytes, clock)
        self._seg_ids: dict[str, int] = {}
        self._unsnapshotted = 0  # rows stored since the writer last extended the snapshot
        self._frame_key: tuple | None = None  # what the cached summary frame was read at
        self._frame: pd.DataFrame | None = None
        # Called with the ids that left the store (retention, remove), after the fact.
        self.on_removed: list[Callable[[set[str]], None]] = []

    # -- opening ---------------------------------------------------------------------------

    def _open_index(self) -> sqlite3.Connection:
        reason = None if self.index_path.exists() else "the index was missing"
        try:
            conn = index.connect(self.index_path)
        except index.IndexOutdated as e:
            # A cache of an older layout: rebuilt from the segments (which stay as they are).
            reason = f"the index was of an older format ({e})"
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.index_path) + suffix).unlink(missing_ok=True)
            conn = index.connect(self.index_path)
        except index.IndexCorrupt as e:
            reason = f"the index was unreadable ({e})"
            aside = self.index_path.with_name(f"{INDEX_FILE}.corrupt-{int(time.time())}")
            self.index_path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.index_path) + suffix).unlink(missing_ok=True)
            self.recovery_report.append(f"Moved the unreadable index aside to {aside.name}.")
            conn = index.connect(self.index_path)
        for suffix in ("", "-wal", "-shm"):  # flows may hold prompts and keys: user-only
            p = Path(str(self.index_path) + suffix)
            if p.exists():
                p.chmod(0o600)
        n = recovery.reconcile(conn, self.root, self.recovery_report, self._load_line)
        if reason and n:
            self.recovery_report.append(
                f"Rebuilt the index from the segments: {reason}; {n} flow(s) indexed."
            )
        elif n:
            self.recovery_report.append(
                f"Indexed {n} flow(s) found in the segments but missing from the index "
                "(the previous session ended before indexing them)."
            )
        return conn

    # -- writing ---------------------------------------------------------------------------

    def append(self, flow: LLMFlow) -> None:
        """Store one flow (a JSONL line + index row + FTS row). The latest line of an id wins."""
        self._store([record_for(flow)])

    def append_many(self, flows: Iterable[LLMFlow]) -> None:
        """Store several flows with one index transaction."""
        records = [record_for(f) for f in flows]
        if records:
            self._store(records)

    def _store(self, records: list[Record]) -> None:
        with self._lock:
            self._check_open()
            rhs = self.content.put_many(rec.line for rec in records)  # committed first
            lines = [ref_line(rec.id, rh) for rec, rh in zip(records, rhs, strict=True)]
            places = self._writer.write_many(lines)  # one os.write per segment
            items = []
            marks: dict[int, int] = {}
            for rec, rh, line, (path, off) in zip(records, rhs, lines, places, strict=True):
                seg = self._seg_id(path)
                marks[seg] = off + len(line)
                params = index.flow_params(seg, off, len(line), rec.retain_from, rh, rec.row)
                items.append((params, rec.pieces))
            self._conn.execute("BEGIN")
            index.insert_flows(self._conn, items)
            for seg, end in marks.items():
                index.mark_indexed(self._conn, seg, end, end)
            self._conn.execute("COMMIT")
            self._unsnapshotted += len(records)
            if self._unsnapshotted >= snapshot.DELTA_ROWS:
                self._unsnapshotted = 0
                snapshot.extend(self._conn, self.root)  # keeps the columnar summary current

    def _seg_id(self, path: str) -> int:
        seg = self._seg_ids.get(path)
        if seg is None:
            seg = self._seg_ids[path] = index.segment_id(self._conn, path)
        return seg

    def set_annotations(self, flow_id: str, annotations: FlowAnnotations) -> None:
        """Persist a flow's bookmark, marker, tags and comment (journal + index)."""
        t = self.clock()
        with self._lock:
            self._check_open()
            journal.append(self.root, flow_id, annotations, t)
            self._conn.execute("BEGIN")
            index.upsert_annotations(self._conn, flow_id, annotations, t)
            index.meta_set(self._conn, "journal_bytes", str(journal.size(self.root)))
            self._conn.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------

    def get(self, flow_id: str) -> LLMFlow | None:
        """The full flow read back from its segment, with the current annotations applied."""
        flow = self._read_flow(flow_id)
        if flow is None:
            # Retention may have moved the line between our lookup and our read: retry while
            # holding the write lock, which retention holds for its whole run.
            with self._lock:
                flow = self._read_flow(flow_id)
        return flow

    def _read_flow(self, flow_id: str) -> LLMFlow | None:
        with self._rlock:
            self._check_open()
            row = self._read.execute(
                "SELECT s.path, f.off, f.len FROM flows f JOIN segments s ON s.seg=f.seg "
                "WHERE f.id=?",
                (flow_id,),
            ).fetchone()
            if row is None:
                return None
            ann = index.get_annotations(self._read, flow_id)
        try:
            flow, _ = self._load_line(read_line(self.root / row[0], row[1], row[2]))
        except (OSError, ValueError, LookupError):
            return None
        if flow is None or flow.id != flow_id:
            return None
        if ann is not None:
            flow.annotations = ann
        return flow

    def _load_line(self, data: bytes) -> tuple[LLMFlow | None, bytes | None]:
        """A segment line's flow and content recipe (None for a whole, format-1 line).

        Raises ContentMissing (a LookupError) when the content a line refers to is gone.
        """
        try:
            d = json.loads(data)
        except ValueError:
            return None, None
        rh = ref_of(d)
        if rh is None:
            return flow_from_json(d), None
        try:
            return flow_from_json(json.loads(self.content.get(rh))), rh
        except ValueError:
            return None, rh

    def summary_frame(self) -> pd.DataFrame:
        """One typed summary row per stored flow (``flowbook.schema.COLUMNS``), newest first
        (timestamp descending; storage order among equal times; see ``snapshot.newest_first``)."""
        with self._rlock:
            self._check_open()
            # A repeated call with nothing stored, changed or annotated since is served from
            # the frame read last time (pandas copy-on-write: callers cannot change it).
            key = (
                snapshot.identity(self._read),
                # New rows raise max(fid); changed or removed rows change the identity.
                self._read.execute("SELECT max(fid) FROM flows").fetchone()[0],
                *self._read.execute("SELECT count(*), max(updated) FROM annotations").fetchone(),
            )
            if key == self._frame_key and self._frame is not None:
                return self._frame.copy(deep=False)
            frame = snapshot.read_summary(self._read, self.root)
            frame = snapshot.apply_annotations(self._read, frame)
            self._frame_key, self._frame = key, frame
            return frame.copy(deep=False)

    def ids_matching_text(self, scope: str, text: str) -> set[str]:
        """Ids whose request/response text contains ``text``, case-insensitively.

        ``text`` is a literal substring (no FTS operators; quotes are literal). ``content``
        matches the request text or the response text. A match lies within one piece: the
        system prompt, one message, the tool list, or the response (with its error message).
        Three characters or more use the trigram index over distinct pieces; shorter strings
        scan the pieces' text.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        scopes = {
            "content": (pieces.REQUEST, pieces.RESPONSE),
            "request": (pieces.REQUEST,),
            "response": (pieces.RESPONSE,),
        }[scope]
        with self._rlock:
            self._check_open()
            if not text:
                return {r[0] for r in self._read.execute("SELECT id FROM flows")}
            hits = pieces.matching_pieces(self._read, scopes, text)
            return pieces.flows_with(self._read, hits)

    def ids(self) -> list[str]:
        """Every stored id, in storage order."""
        with self._rlock:
            return [r[0] for r in self._read.execute("SELECT id FROM flows ORDER BY fid")]

    def __contains__(self, flow_id: object) -> bool:
        with self._rlock:
            q = "SELECT 1 FROM flows WHERE id=?"
            return self._read.execute(q, (flow_id,)).fetchone() is not None

    def __len__(self) -> int:
        with self._rlock:
            return int(self._read.execute("SELECT count(*) FROM flows").fetchone()[0])

    # -- retention, import, export ---------------------------------------------------------

    def apply_retention(self, retention_days: float, now: float | None = None) -> int:
        """Remove flows older than ``retention_days`` (from capture or import); return count.

        Only expired flows go: segments holding newer ones are rewritten without the expired
        lines, and the index, FTS and annotation journal are updated in step. Every
        ``on_removed`` callback gets the set of ids that went.
        """
        if retention_days < 0:
            raise ValueError("retention_days must be >= 0")
        cutoff = (self.clock() if now is None else now) - retention_days * 86400.0
        with self._lock:
            self._check_open()
            by_seg = retention.expired_by_segment(self._conn, cutoff)
            candidates = {
                r[0]
                for r in self._conn.execute("SELECT id FROM flows WHERE retain_from < ?", (cutoff,))
            }
            # Annotations of removed flows go; those of flows not stored yet stay a while.
            return self._drop(by_seg, candidates, lambda i, t, gone: i not in gone and t >= cutoff)

    def remove(self, ids: Iterable[str]) -> int:
        """Delete these flows (lines, index rows, FTS rows, annotations); return how many went."""
        wanted = set(ids)
        with self._lock:
            self._check_open()
            by_seg: dict[int, set[int]] = {}
            candidates: set[str] = set()
            for flow_id in wanted:
                for fid, seg in self._conn.execute(
                    "SELECT fid, seg FROM flows WHERE id=?", (flow_id,)
                ):
                    by_seg.setdefault(seg, set()).add(fid)
                    candidates.add(flow_id)
            return self._drop(by_seg, candidates, lambda i, t, gone: i not in wanted)

    def _drop(
        self,
        by_seg: dict[int, set[int]],
        candidates: set[str],
        keep_annotation: Callable[[str, float, set[str]], bool],
    ) -> int:
        # Caller holds self._lock.
        removed = 0
        active = self._writer.active
        if active is not None and self._seg_ids.get(active) in by_seg:
            self._writer.rotate()  # our own lock on it would block the rewrite
        for seg, fids in by_seg.items():
            removed += retention.rewrite_segment(
                self._conn, self.root, seg, fids, self.recovery_report
            )
        self._seg_ids = {p: s for p, s in self._seg_ids.items() if s not in by_seg}
        if not removed:
            return 0
        live = {r[0] for r in self._conn.execute("SELECT id FROM flows")}
        gone = candidates - live
        # Content no remaining line refers to (the expired flows', never a shared chunk).
        self.content.collect(
            r[0] for r in self._conn.execute("SELECT rh FROM flows WHERE rh IS NOT NULL")
        )
        size = journal.compact(self.root, lambda i, t: i in live or keep_annotation(i, t, gone))
        self._conn.execute("BEGIN")
        self._conn.executemany("DELETE FROM annotations WHERE id=?", [(i,) for i in gone])
        index.meta_set(self._conn, "journal_bytes", str(size))
        self._conn.execute("COMMIT")
        for callback in list(self.on_removed):
            try:
                callback(set(gone))
            except Exception:  # a listener's bug must not undo a finished removal
                log.exception("on_removed callback failed")
        return removed

    def import_jsonl(self, path: Path | str) -> list[str]:
        """Import a flowbook JSONL file (``.jsonl`` or ``.jsonl.gz``); return the new ids.

        Lines that are not flows are skipped; ids already stored are skipped. Retention counts
        from the import, so loading old flows does not hand them to the next cleanup.
        """
        path = Path(path).expanduser()
        opener: Any = gzip.open if path.suffix == ".gz" else open
        now = self.clock()
        flows: list[LLMFlow] = []
        seen: set[str] = set()
        bad = 0
        with opener(path, "rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                try:
                    flow = flow_from_json(json.loads(raw))
                except ValueError:
                    flow = None
                if flow is None:
                    bad += 1
                    continue
                if flow.id in seen or flow.id in self:
                    continue
                seen.add(flow.id)
                flow.metadata.extra[IMPORTED_AT] = now
                flows.append(flow)
        if bad and not flows and not seen:
            raise ValueError(f"{path} holds no flowbook flows ({bad} unreadable line(s))")
        for i in range(0, len(flows), 1000):
            self.append_many(flows[i : i + 1000])
        return [f.id for f in flows]

    def export_jsonl(self, ids: Iterable[str] | None, path: Path | str) -> Path:
        """Write the given flows (all when ``ids`` is None) as flowbook JSONL; return the path."""
        path = Path(path).expanduser()
        with open(path, "wb") as f:
            for flow_id in self.ids() if ids is None else ids:
                flow = self.get(flow_id)
                if flow is not None:
                    f.write(flow_line(flow))
        return path

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the FileStore is closed")

    def close(self) -> None:
        """Flush and fsync the active segment and close the index. Idempotent."""
        with self._lock, self._rlock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
            self._read.close()
            index.release_free_pages(self._conn)
            self._conn.close()
            self.content.close()

    def __enter__(self) -> FileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)} flows"
        return f"<FileStore {self.root} {state}>"

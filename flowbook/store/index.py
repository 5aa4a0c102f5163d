"""The SQLite index over the segments: summary columns, location, annotations and FTS5.

The index is a cache: everything in it can be rebuilt from the segments and the annotation
journal. ``flows`` has one row per stored flow (the summary columns of ``fb.flows()`` plus the
segment and byte range of its line); ``annotations`` holds what the user set after the flow was
written; the search tables are described in ``pieces.py``. ``segments`` records how far each
segment has been indexed (the content itself is in ``content.sqlite``, ``content.py``).

Format 2: ``flows.rh`` is the content-store recipe of the flow (NULL for a line written whole,
by format 1), and search goes over distinct pieces (``flowbook.store.pieces``) instead of one
FTS row per flow. Format 3: 4 KB pages and leaner search tables (see ``pieces.py``); an index of
format 2 is rebuilt from the segments and the content on open, like any outdated cache.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flowbook.model import FlowAnnotations
from flowbook.schema import COLUMNS, DERIVED_COLUMNS
from flowbook.store import pieces

# 2: content by recipe (``rh``), search over distinct pieces; 3: 4 KB pages, FTS without
# per-row column sizes (``columnsize=0``), one search query per scope.
SCHEMA_VERSION = "3"
# Derived columns (sessions, threads, alerts) are filled in by the grouping overlay at read
# time, never stored in the index: an index written before they existed keeps working.
SUMMARY_COLUMNS = [c for c in COLUMNS if c not in DERIVED_COLUMNS]
_SQL_TYPES = {"Int64": "INTEGER", "float64": "REAL", "bool": "INTEGER"}


def _sql_type(dtype: str) -> str:
    if dtype.startswith("datetime64"):
        return "REAL"  # epoch seconds, as summary_row gives it
    return _SQL_TYPES.get(dtype, "TEXT")


def _q(name: str) -> str:
    return f'"{name}"'


_FLOW_COLS = ", ".join(f"{_q(c)} {_sql_type(COLUMNS[c])}" for c in SUMMARY_COLUMNS if c != "id")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS segments(
    seg INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL,
    indexed_bytes INTEGER NOT NULL DEFAULT 0, scanned_bytes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS flows(
    fid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
    seg INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,
    retain_from REAL NOT NULL, rh BLOB, {_FLOW_COLS});
CREATE INDEX IF NOT EXISTS flows_seg ON flows(seg);
CREATE INDEX IF NOT EXISTS flows_retain ON flows(retain_from);
CREATE TABLE IF NOT EXISTS annotations(
    id TEXT PRIMARY KEY, bookmarked INTEGER NOT NULL, marker TEXT, tags TEXT NOT NULL,
    comment TEXT, updated REAL);
"""

_INSERT_FLOW = (
    "INSERT OR IGNORE INTO flows(id, seg, off, len, retain_from, rh, "
    + ", ".join(_q(c) for c in SUMMARY_COLUMNS if c != "id")
    + ") VALUES ("
    + ", ".join("?" * (len(SUMMARY_COLUMNS) + 5))
    + ")"
)


class IndexCorrupt(Exception):
    """The index file is unreadable or from another schema; it must be rebuilt."""


class IndexOutdated(IndexCorrupt):
    """The index was written by another format version; it is rebuilt from the segments."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the index; raise IndexCorrupt when it cannot be used."""
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, factory=pieces.IndexConnection
        )
        # 4 KB pages (only for a new file). The rows here are a few hundred bytes (a summary
        # row, a compressed piece text) and FTS5 writes ~4 KB blobs: on 1 KB pages a page held
        # one or two such rows and a fifth of the file was slack (20k flows: 54 -> 48 MB). A
        # small store pays a page per table and index (~0.1 MB), still far within P8.
        conn.execute("PRAGMA page_size=4096")
        # FTS5 merges free pages as it writes; ``release_free_pages`` hands them back on close.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives a process kill; a power cut may lose the last commits,
        # which the next open re-indexes from the fsynced segments.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-32768")  # piece digests are random keys
        conn.executescript(SCHEMA)
        conn.executescript(pieces.SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
            # Identifies this index (a rebuilt one gets a new id): see snapshot.py.
            conn.execute("INSERT INTO meta VALUES('index_id', ?)", (uuid.uuid4().hex,))
        elif row[0] != SCHEMA_VERSION:
            conn.close()
            raise IndexOutdated(f"index format {row[0]!r}, this version writes {SCHEMA_VERSION!r}")
        conn.execute("SELECT count(*) FROM flows").fetchone()
        conn.execute("SELECT count(*) FROM pfts WHERE pfts MATCH 'abc'").fetchone()
    except sqlite3.DatabaseError as e:
        raise IndexCorrupt(str(e)) from e
    return conn


def release_free_pages(conn: sqlite3.Connection) -> None:
    """Give the file's free pages back to the disk (an index of an earlier format, made
    without ``auto_vacuum``, keeps them for its next writes)."""
    try:
        conn.execute("PRAGMA busy_timeout=0")  # closing: never wait for another process
        # Stepped to the end: each step of the pragma frees one page.
        conn.execute("PRAGMA incremental_vacuum").fetchall()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError:  # busy (another process reads or writes): next time
        pass


def flow_params(
    seg: int, off: int, length: int, retain_from: float, rh: bytes | None, row: dict[str, Any]
) -> list:
    """Parameters for ``_INSERT_FLOW`` from a summary row (``rh``: the content recipe)."""
    values: list[Any] = [row["id"], seg, off, length, retain_from, rh]
    for c in SUMMARY_COLUMNS[1:]:
        v = row.get(c)
        values.append(int(v) if isinstance(v, bool) else v)
    return values


_UPDATE_FLOW = (
    "UPDATE flows SET seg=?, off=?, len=?, retain_from=?, rh=?, "
    + ", ".join(f"{_q(c)}=?" for c in SUMMARY_COLUMNS if c != "id")
    + " WHERE id=? RETURNING fid"
)


def insert_flows(
    conn: sqlite3.Connection, items: Sequence[tuple[list, pieces.FlowPieces]]
) -> list[str]:
    """Upsert (flow params, the flow's search pieces); the latest line of an id wins.

    Returns the ids that were new to the index.
    """
    added = []
    for params, fp in items:
        cur = conn.execute(_INSERT_FLOW, params)
        if cur.rowcount:
            assert cur.lastrowid is not None
            pieces.add(conn, cur.lastrowid, fp)
            added.append(params[0])
            continue
        fid = conn.execute(_UPDATE_FLOW, [*params[1:], params[0]]).fetchone()[0]
        bump_generation(conn)
        pieces.remove(conn, [fid])
        pieces.add(conn, fid, fp)
    return added


def segment_id(conn: sqlite3.Connection, path: str) -> int:
    """The id of a segment path, registering it if new."""
    row = conn.execute("SELECT seg FROM segments WHERE path=?", (path,)).fetchone()
    if row:
        return int(row[0])
    cur = conn.execute("INSERT INTO segments(path) VALUES(?)", (path,))
    assert cur.lastrowid is not None
    return cur.lastrowid


def mark_indexed(conn: sqlite3.Connection, seg: int, indexed: int, scanned: int) -> None:
    """Advance a segment's watermarks (never backwards: another process may be ahead)."""
    conn.execute(
        "UPDATE segments SET indexed_bytes=max(indexed_bytes, ?), "
        "scanned_bytes=max(scanned_bytes, ?) WHERE seg=?",
        (indexed, scanned, seg),
    )


def delete_flows(conn: sqlite3.Connection, fids: Iterable[int]) -> None:
    """Remove flows and their search rows (annotations go with the journal compaction)."""
    fids = list(fids)
    if fids:
        bump_generation(conn)
    pieces.remove(conn, fids)
    for i in range(0, len(fids), 500):
        chunk = fids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM flows WHERE fid IN ({marks})", chunk)


def upsert_annotations(
    conn: sqlite3.Connection, flow_id: str, ann: FlowAnnotations, t: float
) -> None:
    """Store the annotations of a flow (tags as the summary's comma-joined string)."""
    conn.execute(
        "INSERT INTO annotations VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "bookmarked=excluded.bookmarked, marker=excluded.marker, tags=excluded.tags, "
        "comment=excluded.comment, updated=excluded.updated",
        (flow_id, int(ann.bookmarked), ann.marker, ",".join(ann.tags), ann.comment, t),
    )


def get_annotations(conn: sqlite3.Connection, flow_id: str) -> FlowAnnotations | None:
    """The annotations set on a flow after it was written, if any."""
    row = conn.execute(
        "SELECT bookmarked, marker, tags, comment FROM annotations WHERE id=?", (flow_id,)
    ).fetchone()
    if row is None:
        return None
    tags = [t for t in row[2].split(",") if t]
    return FlowAnnotations(bookmarked=bool(row[0]), marker=row[1], tags=tags, comment=row[3])


def meta_get(conn: sqlite3.Connection, key: str, default: str = "") -> str:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return str(row[0]) if row else default


def meta_set(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO meta VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, json.dumps(value) if not isinstance(value, str) else value),
    )


def bump_generation(conn: sqlite3.Connection) -> None:
    """Mark that stored rows changed or went (invalidates summary snapshots)."""
    conn.execute(
        "INSERT INTO meta VALUES('generation', '1') ON CONFLICT(key) DO UPDATE SET "
        "value=CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )


_SELECT_RAW = (
    "SELECT fid, "
    + ", ".join(f"{_q(c)}" for c in SUMMARY_COLUMNS)
    + " FROM flows WHERE fid > ? ORDER BY fid"
)


def raw_summary_columns(
    conn: sqlite3.Connection, after_fid: int = 0
) -> tuple[list[int], dict[str, list[Any]]]:
    """(fids, one list per summary column) of the rows after ``after_fid``, as written."""
    rows = conn.execute(_SELECT_RAW, (after_fid,)).fetchall()
    if not rows:
        return [], {c: [] for c in SUMMARY_COLUMNS}
    cols = list(zip(*rows, strict=True))
    return list(cols[0]), dict(zip(SUMMARY_COLUMNS, map(list, cols[1:]), strict=True))

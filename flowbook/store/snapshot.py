"""A columnar snapshot of the summary, so a million-row history opens in well under a second.

Reading a million rows out of SQLite costs seconds of Python object churn; Arrow IPC files of the
same columns map straight into arrays (``memory_map=True``: the OS pages them in, nothing is
turned into Python objects). The snapshot is a base file ``summary.arrow`` plus delta files
``summary.<after_fid>.arrow``, each holding the rows after the previous file's last ``fid``.
The writer appends a delta whenever ``DELTA_ROWS`` rows have been stored since the last file
(``extend``), so the snapshot stays current on write and a reader only asks SQLite for the
last few rows; a reader folds the deltas into a new base once there are ``MAX_DELTAS``.

Every file records the index id and generation it was made from; the generation changes whenever
stored rows change or go (re-append of an id, retention, recovery), and the index id when the
index is rebuilt, so a stale file is ignored (and replaced), never half-applied.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from flowbook.schema import frame_from_columns
from flowbook.store import index

SNAPSHOT = "summary.arrow"
DELTA_ROWS = 2_000  # the writer adds a delta file once this many rows are not in one
MAX_DELTAS = 16  # a reader folds the deltas into the base past this many
MIN_BASE_ROWS = 1_000  # below this, SQLite is fast enough and no file is written


def identity(conn: sqlite3.Connection) -> str:
    """``<index id>:<generation>``: changes when the index is rebuilt or rows change or go."""
    return f"{index.meta_get(conn, 'index_id')}:{index.meta_get(conn, 'generation', '0')}"


def _read(path: Path) -> tuple[pa.Table, dict[bytes, bytes]] | None:
    try:
        table = feather.read_table(path, memory_map=True)
    except (OSError, pa.ArrowInvalid):
        return None
    return table, dict(table.schema.metadata or {})


def _deltas(root: Path) -> list[tuple[int, Path]]:
    out = []
    for p in root.glob("summary.*.arrow"):
        after = p.name.split(".")[1]
        if after.isdigit():
            out.append((int(after), p))
    return sorted(out)


def load(root: Path, ident: str) -> tuple[list[pa.Table], int, int]:
    """(tables in fid order, last fid they cover, number of deltas) for ``ident``."""
    got = _read(root / SNAPSHOT)
    if got is None or got[1].get(b"flowbook_identity", b"").decode() != ident:
        return [], 0, 0
    tables = [got[0]]
    max_fid = int(got[1][b"flowbook_max_fid"])
    used = 0
    for after, path in _deltas(root):
        if after != max_fid:
            continue  # older (already in the base) or not contiguous
        d = _read(path)
        if d is None or d[1].get(b"flowbook_identity", b"").decode() != ident:
            continue
        tables.append(d[0])
        max_fid = int(d[1][b"flowbook_max_fid"])
        used += 1
    return tables, max_fid, used


def save(root: Path, df: pd.DataFrame, max_fid: int, ident: str, after: int | None = None) -> None:
    """Write the base (``after`` None) or a delta atomically; failures only cost speed."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"flowbook_identity"] = ident.encode()
    meta[b"flowbook_max_fid"] = str(max_fid).encode()
    name = SNAPSHOT if after is None else f"summary.{after}.arrow"
    tmp = root / f"{name}.{os.getpid()}.tmp"
    try:
        # Uncompressed: a memory-mapped read then copies nothing.
        feather.write_feather(table.replace_schema_metadata(meta), tmp, compression="uncompressed")
        os.chmod(tmp, 0o600)
        os.replace(tmp, root / name)
    except OSError:
        tmp.unlink(missing_ok=True)
        return
    if after is None:  # the new base holds every delta's rows
        for _, path in _deltas(root):
            path.unlink(missing_ok=True)


def _tail(conn: sqlite3.Connection, root: Path) -> tuple[str, list[pa.Table], int, int, list, dict]:
    conn.execute("BEGIN")  # one read snapshot for the identity, the tail and max(fid)
    try:
        ident = identity(conn)
        tables, max_fid, n_deltas = load(root, ident)
        fids, columns = index.raw_summary_columns(conn, max_fid)
    finally:
        conn.execute("COMMIT")
    return ident, tables, max_fid, n_deltas, fids, columns


def newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by timestamp, newest first (stable; missing times last).

    Stored and returned in this order, the default query (timestamp, descending) finds the rows
    already in place and moves no data; a sort of a million rows' string columns costs seconds.
    """
    ts = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")
    if len(ts) < 2 or bool((ts[:-1] >= ts[1:]).all()):
        return frame
    return frame.sort_values(
        "timestamp", ascending=False, kind="stable", na_position="last"
    ).reset_index(drop=True)


def read_summary(conn: sqlite3.Connection, root: Path) -> pd.DataFrame:
    """Every stored flow's summary row (annotations not yet applied), newest first."""
    ident, tables, max_fid, n_deltas, fids, columns = _tail(conn, root)
    tail = newest_first(frame_from_columns(columns))
    if not tables:
        if len(tail) >= MIN_BASE_ROWS:
            save(root, tail, fids[-1], ident)
        return tail
    # Each file is newest first and newer files hold newer rows: newest file first.
    ordered = tables[::-1]
    table = ordered[0] if len(ordered) == 1 else pa.concat_tables(ordered)
    # Strings stay Arrow-backed (string[pyarrow]): no object per value. One block per column:
    # consolidating same-typed columns into 2-D blocks copied every column once more.
    snap = table.to_pandas(split_blocks=True)
    frame = snap if len(tail) == 0 else pd.concat([tail, snap], ignore_index=True)
    sorted_frame = newest_first(frame)
    if n_deltas >= MAX_DELTAS or sorted_frame is not frame:
        # Fold the deltas, or store the order once so the next open finds it.
        save(root, sorted_frame, fids[-1] if fids else max_fid, ident)
    elif len(tail) >= DELTA_ROWS:
        save(root, tail, fids[-1], ident, after=max_fid)
    return sorted_frame


def extend(conn: sqlite3.Connection, root: Path) -> None:
    """The writer's step: add a delta when ``DELTA_ROWS`` stored rows are in no file yet.

    Only when a base for the current identity exists (building the base is the reader's job:
    it has to read every row anyway).
    """
    conn.execute("BEGIN")
    try:
        ident = identity(conn)
        tables, max_fid, _ = load(root, ident)
        if not tables:
            return
        n = conn.execute("SELECT count(*) FROM flows WHERE fid > ?", (max_fid,)).fetchone()[0]
        if n < DELTA_ROWS:
            return
        fids, columns = index.raw_summary_columns(conn, max_fid)
    finally:
        conn.execute("COMMIT")
    save(root, newest_first(frame_from_columns(columns)), fids[-1], ident, after=max_fid)


def apply_annotations(conn: sqlite3.Connection, frame: pd.DataFrame) -> pd.DataFrame:
    """Overlay the bookmarks and tags set after flows were written."""
    rows = conn.execute("SELECT id, bookmarked, tags FROM annotations").fetchall()
    if not rows or len(frame) == 0:
        return frame
    ann = pd.DataFrame(rows, columns=["id", "bookmarked", "tags"]).set_index("id")
    hit = frame["id"].isin(ann.index).to_numpy()
    if hit.any():
        frame = frame.copy()
        ids = frame.loc[hit, "id"]
        frame.loc[hit, "bookmarked"] = ann.loc[ids, "bookmarked"].astype(bool).to_numpy()
        frame.loc[hit, "tags"] = ann.loc[ids, "tags"].astype("string").to_numpy()
    return frame

"""A columnar snapshot of the summary, so a million-row history loads in about a second.

Reading a million rows out of SQLite costs ~10 s of Python object churn; an Arrow IPC file of the
same columns maps straight into arrays. ``summary.arrow`` holds the summary of every flow up to
some ``fid`` (as written, before annotations); the rows after it come from the index. The file
is only trusted when its index id and generation match the index's: the generation changes
whenever stored rows change or go (re-append of an id, retention, recovery), and the index id
changes when the index is rebuilt, so a stale snapshot is ignored, never half-applied.
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
REFRESH_ROWS = 50_000  # rewrite the snapshot once this many rows are read from SQLite


def identity(conn: sqlite3.Connection) -> str:
    """``<index id>:<generation>``: changes when the index is rebuilt or rows change or go."""
    return f"{index.meta_get(conn, 'index_id')}:{index.meta_get(conn, 'generation', '0')}"


def load(root: Path, ident: str) -> tuple[pd.DataFrame | None, int]:
    """The snapshot frame and its last fid, or (None, 0) when missing or stale."""
    path = root / SNAPSHOT
    try:
        table = feather.read_table(path, memory_map=True)
    except (OSError, pa.ArrowInvalid):
        return None, 0
    meta = table.schema.metadata or {}
    if meta.get(b"flowbook_identity", b"").decode() != ident:
        return None, 0
    return table.to_pandas(), int(meta[b"flowbook_max_fid"])


def save(root: Path, df: pd.DataFrame, max_fid: int, ident: str) -> None:
    """Write the snapshot atomically (tmp + rename); failures only cost speed."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"flowbook_identity"] = ident.encode()
    meta[b"flowbook_max_fid"] = str(max_fid).encode()
    tmp = root / f"{SNAPSHOT}.{os.getpid()}.tmp"
    try:
        feather.write_feather(table.replace_schema_metadata(meta), tmp, compression="lz4")
        os.chmod(tmp, 0o600)
        os.replace(tmp, root / SNAPSHOT)
    except OSError:
        tmp.unlink(missing_ok=True)


def read_summary(conn: sqlite3.Connection, root: Path) -> pd.DataFrame:
    """Every stored flow's summary row (annotations not yet applied), in storage order."""
    conn.execute("BEGIN")  # one read snapshot for the identity, the tail and max(fid)
    try:
        ident = identity(conn)
        snap, max_fid = load(root, ident)
        fids, columns = index.raw_summary_columns(conn, max_fid)
    finally:
        conn.execute("COMMIT")
    tail = frame_from_columns(columns)
    if snap is None:
        frame = tail
    elif len(tail) == 0:
        frame = snap
    else:
        frame = pd.concat([snap, tail], ignore_index=True)
    if len(tail) >= REFRESH_ROWS or (snap is None and len(frame) >= REFRESH_ROWS):
        save(root, frame, fids[-1] if fids else max_fid, ident)
    return frame


def apply_annotations(conn: sqlite3.Connection, frame: pd.DataFrame) -> pd.DataFrame:
    """Overlay the bookmarks and tags set after flows were written."""
    rows = conn.execute("SELECT id, bookmarked, tags FROM annotations").fetchall()
    if not rows or len(frame) == 0:
        return frame
    ann = pd.DataFrame(rows, columns=["id", "bookmarked", "tags"]).set_index("id")
    hit = frame["id"].isin(ann.index).to_numpy()
    if hit.any():
        ids = frame.loc[hit, "id"]
        frame.loc[hit, "bookmarked"] = ann.loc[ids, "bookmarked"].astype(bool).to_numpy()
        frame.loc[hit, "tags"] = ann.loc[ids, "tags"].astype("string").to_numpy()
    return frame

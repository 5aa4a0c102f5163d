"""Retention: remove expired flows, and only those.

The reference deleted whole files that held any old flow (newer flows included) and left FTS rows
behind. Here a segment with expired flows is rewritten without their lines (byte-for-byte copies
of the others, to a temporary file, fsynced, then atomically renamed over the old one), and in the
same transaction the index rows, FTS rows and offsets are updated. A segment with nothing left is
deleted. A segment another process is still appending to (it holds the lock) is left alone.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from flowbook.store import index
from flowbook.store.segments import try_lock


def expired_by_segment(conn: sqlite3.Connection, cutoff: float) -> dict[int, set[int]]:
    """fids of flows retained from before ``cutoff``, grouped by segment id."""
    out: dict[int, set[int]] = {}
    for fid, seg in conn.execute("SELECT fid, seg FROM flows WHERE retain_from < ?", (cutoff,)):
        out.setdefault(seg, set()).add(fid)
    return out


def rewrite_segment(
    conn: sqlite3.Connection, root: Path, seg: int, expired: set[int], report: list[str]
) -> int:
    """Drop the expired flows of one segment; return how many were removed."""
    path = conn.execute("SELECT path FROM segments WHERE seg=?", (seg,)).fetchone()[0]
    full = root / path
    rows = conn.execute(
        "SELECT fid, off, len FROM flows WHERE seg=? ORDER BY off", (seg,)
    ).fetchall()
    keep = [r for r in rows if r[0] not in expired]
    try:
        fd = os.open(full, os.O_RDONLY)
    except FileNotFoundError:
        fd = -1
    try:
        if fd >= 0 and not try_lock(fd):
            report.append(f"{path}: still being written by another process; retention skipped it.")
            return 0
        conn.execute("BEGIN")
        index.delete_flows(conn, expired)
        if not keep:
            conn.execute("DELETE FROM segments WHERE seg=?", (seg,))
            conn.execute("COMMIT")
            if fd >= 0:
                full.unlink(missing_ok=True)
            return len(expired)
        tmp = full.with_name(full.name + ".tmp")
        new_off = 0
        with open(full, "rb") as src, open(tmp, "wb") as dst:
            for fid, off, length in keep:
                src.seek(off)
                dst.write(src.read(length))
                conn.execute("UPDATE flows SET off=? WHERE fid=?", (new_off, fid))
                new_off += length
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, 0o600)
        conn.execute(
            "UPDATE segments SET indexed_bytes=?, scanned_bytes=? WHERE seg=?",
            (new_off, new_off, seg),
        )
        # Rename then commit: a crash in between leaves a shorter segment than the index
        # recorded, which the next open detects and re-indexes.
        os.replace(tmp, full)
        conn.execute("COMMIT")
        return len(expired)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        if fd >= 0:
            os.close(fd)

"""The annotation journal: bookmarks, tags and comments set after a flow was written.

Segments are never rewritten to change a flow, so annotations are appended to
``annotations.jsonl`` (one ``{"id", "annotations", "t"}`` record a line, the last record of an id
wins) as well as stored in the index. The journal is what lets a rebuilt index keep the user's
bookmarks. Retention compacts it.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

from flowbook.model import FlowAnnotations

JOURNAL = "annotations.jsonl"


def append(root: Path, flow_id: str, ann: FlowAnnotations, t: float) -> None:
    """Append one record, durably (annotations are rare, so fsync each)."""
    line = json.dumps(
        {"id": flow_id, "annotations": ann.to_dict(), "t": t}, ensure_ascii=False
    ).encode("utf-8")
    path = root / JOURNAL
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # other kernels may append or compact concurrently
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                continue  # compacted (replaced) while we waited for the lock: reopen
            os.write(fd, line + b"\n")
            os.fsync(fd)
            return
        finally:
            os.close(fd)


def read(root: Path, start: int = 0) -> tuple[list[tuple[str, FlowAnnotations, float]], int]:
    """Records from byte ``start`` and the offset after the last complete line."""
    path = root / JOURNAL
    if not path.exists():
        return [], 0
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    end = start + data.rfind(b"\n") + 1
    out = []
    for raw in data[: end - start].splitlines():
        try:
            d = json.loads(raw)
            out.append((str(d["id"]), FlowAnnotations.from_dict(d["annotations"]), float(d["t"])))
        except (ValueError, KeyError, TypeError):
            continue  # a damaged record: skip it, the others still apply
    return out, end


def size(root: Path) -> int:
    path = root / JOURNAL
    return path.stat().st_size if path.exists() else 0


def compact(root: Path, keep: Callable[[str, float], bool]) -> int:
    """Rewrite the journal with the last record of each id that ``keep(id, t)`` accepts.

    Returns the new size. Holds the journal's lock so no concurrent append is lost.
    """
    path = root / JOURNAL
    if not path.exists():
        return 0
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        records, _ = read(root)
        latest: dict[str, tuple[FlowAnnotations, float]] = {}
        for flow_id, ann, t in records:
            latest[flow_id] = (ann, t)
        lines = [
            json.dumps({"id": i, "annotations": a.to_dict(), "t": t}, ensure_ascii=False)
            for i, (a, t) in latest.items()
            if keep(i, t)
        ]
        data = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return len(data)
    finally:
        os.close(fd)

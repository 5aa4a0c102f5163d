"""JSONL segment files: the durable, append-only record of every stored flow.

A segment holds one flow per line (``json.dumps(flow.to_dict())``). Each writer (one per
process) creates its own segment files and never reopens an old one for appending, so a torn
last line left by a killed process can never be glued to a new line, and two kernels sharing a
data dir never interleave writes. Segments rotate daily (UTC) and when they reach a size limit.

Layout: ``<root>/segments/YYYY-MM-DD/HHMMSS-<pid>-<n>.jsonl``. The SQLite index refers to a
segment by this relative path.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SEGMENTS_DIR = "segments"
FSYNC_INTERVAL_S = 0.5
_READ_CHUNK = 1 << 20


def utc_day(t: float) -> str:
    """The UTC calendar day of an epoch time, as ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def list_segments(root: Path) -> list[str]:
    """Relative paths (``segments/<day>/<name>.jsonl``) of every segment, oldest first."""
    base = root / SEGMENTS_DIR
    if not base.is_dir():
        return []
    out = []
    for day in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(day.glob("*.jsonl")):
            out.append(f.relative_to(root).as_posix())
    return out


@dataclass
class Line:
    """One complete line of a segment: its byte offset, length (with the newline) and bytes."""

    offset: int
    length: int
    data: bytes


@dataclass
class ScanResult:
    """What a scan of a segment's tail found besides complete lines."""

    end: int = 0  # offset just past the last complete line
    torn_bytes: int = 0  # bytes after the last newline (an interrupted write)


def scan_lines(path: Path, start: int, result: ScanResult) -> Iterator[Line]:
    """Yield the complete lines of ``path`` from byte ``start``; record any torn tail."""
    result.end = start
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        pending = b""
        while True:
            chunk = f.read(_READ_CHUNK)
            if not chunk:
                break
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            for data in lines:
                yield Line(pos, len(data) + 1, data)
                pos += len(data) + 1
                result.end = pos
    result.torn_bytes = len(pending)


def read_line(path: Path, offset: int, length: int) -> bytes:
    """Read one stored line (without its newline)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length).rstrip(b"\n")


def try_lock(fd: int) -> bool:
    """Take an exclusive advisory lock; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class SegmentWriter:
    """Appends lines to this process's active segment; rotates; fsyncs in the background.

    Every ``write`` hands the whole line to the kernel with ``os.write`` before returning, so a
    flow survives the process being killed. A daemon thread fsyncs the active segment at least
    every ``FSYNC_INTERVAL_S`` so it also survives a power cut about a second later. The caller
    serialises calls to ``write``/``rotate``/``close``.
    """

    def __init__(self, root: Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.clock = clock
        self.active: str | None = None  # relative path
        self._fd: int | None = None
        self._size = 0
        self._day = ""
        self._seq = 0
        self._fd_lock = threading.Lock()
        self._dirty = False
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None

    def write(self, line: bytes) -> tuple[str, int]:
        """Append one line (ending in ``\\n``); return (segment relative path, offset)."""
        now = self.clock()
        if (
            self._fd is None
            or utc_day(now) != self._day
            or (self._size > 0 and self._size + len(line) > self.max_bytes)
        ):
            self._open_new(now)
        assert self._fd is not None and self.active is not None
        offset = self._size
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(line)
        self._dirty = True
        self._ensure_syncer()
        return self.active, offset

    def write_many(self, lines: list[bytes]) -> list[tuple[str, int]]:
        """Append lines (each ending in ``\\n``) with one ``os.write`` per segment they go to;
        return each line's (segment relative path, offset). Rotates as ``write`` would."""
        out: list[tuple[str, int]] = []
        now = self.clock()
        i = 0
        while i < len(lines):
            full = self._size > 0 and self._size + len(lines[i]) > self.max_bytes
            if self._fd is None or utc_day(now) != self._day or full:
                self._open_new(now)
            assert self._fd is not None and self.active is not None
            group: list[bytes] = []
            size = self._size
            while i < len(lines) and (not group or size + len(lines[i]) <= self.max_bytes):
                out.append((self.active, size))
                group.append(lines[i])
                size += len(lines[i])
                i += 1
            view = memoryview(b"".join(group))
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self._size = size
            self._dirty = True
        self._ensure_syncer()
        return out

    def _open_new(self, now: float) -> None:
        self.rotate()
        day = utc_day(now)
        (self.root / SEGMENTS_DIR).mkdir(exist_ok=True, mode=0o700)
        folder = self.root / SEGMENTS_DIR / day
        folder.mkdir(exist_ok=True, mode=0o700)
        stamp = time.strftime("%H%M%S", time.gmtime(now))
        while True:
            self._seq += 1
            name = f"{stamp}-{os.getpid()}-{self._seq:03d}.jsonl"
            try:
                fd = os.open(
                    folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
                )
            except FileExistsError:
                continue
            break
        # The lock tells other processes (retention) that this segment is still being written.
        try_lock(fd)
        with self._fd_lock:
            self._fd = fd
        self._size = 0
        self._day = day
        self.active = (folder / name).relative_to(self.root).as_posix()

    def rotate(self) -> None:
        """Close the active segment (fsynced); the next write starts a new one."""
        with self._fd_lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                if self._dirty:
                    os.fsync(fd)
                    self._dirty = False
                os.close(fd)
        self.active = None

    def sync(self) -> None:
        """fsync the active segment if anything was written since the last sync."""
        with self._fd_lock:
            if self._fd is None or not self._dirty:
                return
            self._dirty = False
            os.fsync(self._fd)

    def _ensure_syncer(self) -> None:
        if self._syncer is None:
            self._syncer = threading.Thread(
                target=self._sync_loop, name="flowbook-fsync", daemon=True
            )
            self._syncer.start()

    def _sync_loop(self) -> None:
        while not self._stop.wait(FSYNC_INTERVAL_S):
            try:
                self.sync()
            except OSError:
                pass  # the file was rotated away underneath us; the next tick syncs the new one

    def close(self) -> None:
        """Stop the fsync thread and close the active segment."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(timeout=2)
        self.rotate()

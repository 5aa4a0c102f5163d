"""Gemini's streamed JSON array, decoded one element at a time (docs/wire-formats.md §4.4).

Without ``alt=sse``, ``streamGenerateContent`` answers with one JSON array that grows as the
model generates: ``[{…}`` then ``\\n,\\r\\n{…}`` … ``\\n]``, every element pretty-printed.
Waiting for the closing ``]`` would hide the whole stream until it ends, so the decoder skips the
array punctuation (``[``, ``,``, ``]`` and whitespace) and scans one balanced ``{…}`` at a time,
tracking strings and escapes so braces inside string values do not count. Each element becomes one
:class:`StreamEvent` whose ``data`` is the parsed object. A bare object body (an error reply
``{"error": …}``) decodes the same way.

The scan works on bytes: every structural character is ASCII and no byte of a multi-byte UTF-8
sequence is below 0x80, so a chunk boundary inside a character cannot confuse it; the element is
decoded as UTF-8 only once it is complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from flowbook.model import StreamEvent
from flowbook.streams.base import FramingDecoder

# Inside an element but outside a string only these bytes change the scanner's state.
_STRUCTURAL = re.compile(rb'[{}"]')
# Inside a string only a quote (the end) or a backslash (skip the next byte) matters.
_IN_STRING = re.compile(rb'["\\]')
# Between elements: array punctuation and whitespace are skipped.
_BETWEEN = re.compile(rb"[\s\[\],]*")
_PUNCT_WS = b" \t\r\n[],"


class JSONArrayDecoder(FramingDecoder):
    """Incremental decoder for a JSON array of objects (or a sequence of bare objects)."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._pos = 0  # next byte of _buf to scan
        self._start = -1  # offset of the current element's "{", -1 between elements
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._opened = False  # saw the array's "["
        self._closed = False  # saw the array's "]"
        self._in_junk = False  # inside a run of unexpected bytes (reported once per run)

    def feed(self, data: bytes, t: float | None = None) -> list[StreamEvent]:
        """Consume ``data`` and return every element it completed."""
        t = self.now(t)
        self._buf += data
        events = self._scan(t)
        self._compact()
        return events

    def close(self, t: float | None = None) -> list[StreamEvent]:
        """End of body: report an element or an array left open."""
        t = self.now(t)
        events = self._scan(t)
        if self._start >= 0:
            self.errors.append(
                f"stream ended inside a JSON array element ({len(self._buf) - self._start} bytes)"
            )
        elif self._opened and not self._closed:
            self.errors.append("stream ended before the JSON array was closed")
        self._buf.clear()
        self._pos = 0
        self._start = -1
        return events

    def _scan(self, t: float) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        buf = self._buf
        n = len(buf)
        while self._pos < n:
            if self._start < 0:
                if not self._between(n):
                    break
                continue
            if self._in_string:
                if self._escape:
                    self._escape = False
                    self._pos += 1
                    continue
                m = _IN_STRING.search(buf, self._pos)
                if m is None:
                    self._pos = n
                    break
                self._pos = m.end()
                if m.group() == b"\\":
                    self._escape = True
                else:
                    self._in_string = False
                continue
            m = _STRUCTURAL.search(buf, self._pos)
            if m is None:
                self._pos = n
                break
            self._pos = m.end()
            ch = m.group()
            if ch == b'"':
                self._in_string = True
            elif ch == b"{":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    ev = self._emit(bytes(buf[self._start : self._pos]), t)
                    self._start = -1
                    if ev is not None:
                        events.append(ev)
        return events

    def _between(self, n: int) -> bool:
        """Skip punctuation between elements; start an element at "{". False: need more bytes."""
        buf = self._buf
        m = _BETWEEN.match(buf, self._pos)
        if m is not None and m.end() > self._pos:
            skipped = buf[self._pos : m.end()]
            if b"[" in skipped:
                self._opened = True
            if b"]" in skipped:
                self._closed = True
            self._pos = m.end()
            self._in_junk = False
        if self._pos >= n:
            return False
        if buf[self._pos] == ord("{"):
            self._start = self._pos
            self._depth = 1
            self._pos += 1
            self._in_junk = False
            return True
        # Anything else between elements is not part of the format: skip to the next byte
        # that could resume it, and report the run once.
        j = self._pos
        while j < n and buf[j] not in _PUNCT_WS and buf[j] != ord("{"):
            j += 1
        if not self._in_junk:
            preview = bytes(buf[self._pos : min(j, self._pos + 80)]).decode("utf-8", "replace")
            self.errors.append(f"unexpected bytes between JSON array elements: {preview!r}")
            self._in_junk = True
        self._pos = j
        return True

    def _emit(self, raw: bytes, t: float) -> StreamEvent | None:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            self.errors.append(f"JSON array element does not parse: {exc}")
            return None
        return StreamEvent(t=t, event=None, data=obj)

    def _compact(self) -> None:
        """Drop consumed bytes so the buffer holds at most the element being scanned."""
        keep = self._start if self._start >= 0 else self._pos
        if keep > 0:
            del self._buf[:keep]
            self._pos -= keep
            if self._start >= 0:
                self._start = 0


def encode_json_array(items: Iterable[Any], *, indent: int | None = 2) -> Iterator[bytes]:
    """A JSON array written one element at a time, as Gemini streams it (docs/wire-formats.md §4.4).

    Yields ``[{…}``, then ``\\n,\\r\\n{…}`` per further element, then ``\\n]``: each piece can be
    flushed on its own, and :class:`JSONArrayDecoder` returns each element as it completes. An
    empty input still yields a valid ``[\\n]``.
    """
    first = True
    for item in items:
        yield (("[" if first else "\n,\r\n") + json.dumps(item, indent=indent)).encode("utf-8")
        first = False
    yield b"[\n]" if first else b"\n]"

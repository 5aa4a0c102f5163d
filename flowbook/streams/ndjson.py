"""Newline-delimited JSON (``application/x-ndjson``): one JSON value per line (Ollama native).

Lines may end in LF or CRLF; blank lines are skipped. Splitting on the LF byte is safe for any
chunking because UTF-8 never uses 0x0A inside a multi-byte character. A line that is not JSON
becomes an event whose ``data`` is the text (the assembler decides what that means) and is noted
in ``errors``; a last line without a newline is accepted when it parses.
"""

from __future__ import annotations

import json

from flowbook.model import StreamEvent
from flowbook.streams.base import FramingDecoder


class NDJSONDecoder(FramingDecoder):
    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()

    def feed(self, data: bytes, t: float | None = None) -> list[StreamEvent]:
        t = self.now(t)
        # Search only the new bytes for a newline: the buffer before them has none.
        start = len(self._buf)
        self._buf += data
        if self._buf.find(b"\n", start) == -1:
            return []
        *lines, rest = bytes(self._buf).split(b"\n")
        self._buf = bytearray(rest)
        return [ev for line in lines if (ev := self._line(line, t)) is not None]

    def close(self, t: float | None = None) -> list[StreamEvent]:
        t = self.now(t)
        rest, self._buf = bytes(self._buf), bytearray()
        if not rest.strip():
            return []
        before = len(self.errors)
        ev = self._line(rest, t)
        if len(self.errors) > before:
            self.errors[-1] = "stream ended inside an NDJSON line: " + self.errors[-1]
        return [ev] if ev is not None else []

    def _line(self, line: bytes, t: float) -> StreamEvent | None:
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            return StreamEvent(t=t, event=None, data=json.loads(text))
        except ValueError as exc:
            self.errors.append(f"line is not JSON ({exc}): {text[:200]!r}")
            return StreamEvent(t=t, event=None, data=text)


def encode_ndjson(obj: object) -> bytes:
    """One NDJSON line, the inverse of :class:`NDJSONDecoder`: compact-enough JSON and an LF.

    ``json.dumps`` escapes newlines inside strings, so a value never spans two lines.
    """
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"

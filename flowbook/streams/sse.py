"""Server-sent events, following the WHATWG rules (docs/wire-formats.md §0.1).

Lines end in LF, CRLF or CR (Gemini uses CRLF); a blank line ends an event; ``data:`` lines join
with LF; one space after the colon is stripped; comment lines (``: OPENROUTER PROCESSING``) are
dropped. ``data`` is parsed as JSON when it parses, else kept as a string (``[DONE]``).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from flowbook import jsonfast
from flowbook.model import StreamEvent
from flowbook.streams.base import FramingDecoder


class SSEDecoder(FramingDecoder):
    def __init__(self) -> None:
        super().__init__()
        self._text = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._pending_cr = False

    def feed(self, data: bytes, t: float | None = None) -> list[StreamEvent]:
        t = self.now(t)
        text = self._text.decode(data)
        return self._consume(text, t, final=False)

    def close(self, t: float | None = None) -> list[StreamEvent]:
        t = self.now(t)
        out = self._consume(self._text.decode(b"", final=True), t, final=True)
        if self._data or self._event is not None:
            # The spec drops an unterminated event; we keep it (the body ended without a blank
            # line, which real servers do) but say so.
            self.errors.append("stream ended inside an SSE event (no blank line after it)")
            ev = self._dispatch(t)
            if ev is not None:
                out.append(ev)
        return out

    def _consume(self, text: str, t: float, final: bool) -> list[StreamEvent]:
        buf = self._buf + text
        if self._pending_cr and buf.startswith("\n"):
            buf = buf[1:]
        self._pending_cr = False
        if "\r" not in buf:
            # The common case (LF line ends only): one split instead of a search per line.
            lines = buf.split("\n")
            self._buf = lines.pop()  # the unterminated rest ("" after a final LF)
        else:
            lines = self._split_any(buf, final)
        if final and self._buf:
            lines.append(self._buf)
            self._buf = ""
        events = []
        for line in lines:
            ev = self._line(line, t)
            if ev is not None:
                events.append(ev)
        return events

    def _split_any(self, buf: str, final: bool) -> list[str]:
        """Complete lines ended by LF, CR or CRLF; the rest stays in ``_buf``."""
        lines = []
        start = 0
        n = len(buf)
        while start < n:
            i_n = buf.find("\n", start)
            i_r = buf.find("\r", start)
            if i_n == -1 and i_r == -1:
                break
            if i_r != -1 and (i_n == -1 or i_r < i_n):
                end = i_r
                if end + 1 < n:
                    nxt = end + 2 if buf[end + 1] == "\n" else end + 1
                else:
                    if not final:
                        # A CR at the end of the buffer may be half of a CRLF.
                        self._pending_cr = True
                    nxt = end + 1
            else:
                end = i_n
                nxt = end + 1
            lines.append(buf[start:end])
            start = nxt
        self._buf = buf[start:]
        return lines

    def _line(self, line: str, t: float) -> StreamEvent | None:
        if line == "":
            return self._dispatch(t)
        if line.startswith(":"):
            return None
        if line.lstrip()[:1] in ("{", "[", "}", "]", '"'):
            # A pretty-printed bare JSON line (Gemini's mid-stream error) is no field, even
            # when it holds a colon (``  "error": {``): keep it as data.
            self._data.append(line)
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif not sep and line.lstrip().startswith(("{", "[", "}", "]", '"')):
            # Gemini sends a mid-stream error as bare JSON lines without ``data:``
            # (python-genai counts braces for it). Keep those lines as data.
            self._data.append(line)
        return None

    def _dispatch(self, t: float) -> StreamEvent | None:
        if not self._data and self._event is None:
            return None
        raw = "\n".join(self._data)
        event = self._event
        self._data = []
        self._event = None
        data: Any
        try:
            data = jsonfast.loads(raw) if raw else raw
        except ValueError:
            data = raw
            # `[DONE]` (Chat Completions' end sentinel) starts with "[" but is not an error.
            if raw.lstrip()[:1] in ("{", "[") and raw.strip() != "[DONE]":
                self.errors.append(f"SSE data is not valid JSON: {raw[:120]!r}")
        return StreamEvent(t=t, event=event, data=data)


def encode_sse(
    data: Any,
    event: str | None = None,
    *,
    sep: str = "\n",
    separators: tuple[str, str] | None = None,
) -> bytes:
    """One SSE event, the inverse of :class:`SSEDecoder`: ``event:`` line, ``data:`` lines, blank.

    ``data`` that is not a string is written as JSON (``separators`` as for ``json.dumps``;
    non-ASCII kept); a string is written as is (``[DONE]``, or JSON a caller formatted itself).
    A value holding newlines becomes several ``data:`` lines, which the decoder joins back with
    LF. ``sep`` is the line ending: LF, or CRLF as Gemini sends.
    """
    payload = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=separators)
    )
    head = f"event: {event}{sep}" if event is not None else ""
    lines = "".join(f"data: {line}{sep}" for line in payload.split("\n"))
    return (head + lines + sep).encode("utf-8")

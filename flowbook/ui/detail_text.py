"""Text helpers for the detail payload: bounded strings, pretty JSON, raw body views.

A captured body can be megabytes (an agent resends its whole history every turn) or binary (AWS
event-stream frames). What the browser gets is bounded: text is cut at a limit with a flag and the
full size, JSON is pretty-printed only when it is small enough to be worth it, binary bodies are
shown as a hex dump of their start. Key-shaped strings are masked (again; masking is idempotent).
"""

from __future__ import annotations

import json
from typing import Any

from flowbook.redact import DEFAULT as REDACT

BODY_LIMIT = 200_000  # characters of a raw body sent to the browser
PRETTY_LIMIT = 1_000_000  # bodies above this stay as sent (pretty-printing would only cost)
HEX_BYTES = 1024  # bytes of a binary body shown as hex


def short_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters; the flag says whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def pretty_json(value: Any) -> str:
    """A value as indented JSON; a string that holds JSON is parsed first (tool arguments)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _hexdump(data: bytes) -> str:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hexed = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hexed:<47}  {text}")
    return "\n".join(lines)


def body_view(body: bytes | None, content_type: str) -> dict[str, Any]:
    """How a raw body is shown: ``kind`` (empty, json, text, binary), ``text``, ``size`` in bytes,
    ``truncated`` and the content type."""
    size = len(body or b"")
    out: dict[str, Any] = {
        "kind": "empty",
        "text": "",
        "size": size,
        "truncated": False,
        "content_type": content_type,
    }
    if not body:
        return out
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        out["kind"] = "binary"
        out["text"] = _hexdump(body[:HEX_BYTES])
        out["truncated"] = size > HEX_BYTES
        return out
    out["kind"] = "text"
    if size <= PRETTY_LIMIT and text.lstrip()[:1] in ("{", "["):
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            out["kind"] = "json"
        except ValueError:
            pass  # not JSON after all (a JSON-array stream cut short): show as sent
    text, cut = short_text(text, BODY_LIMIT)
    out["text"] = REDACT.mask_text(text)
    out["truncated"] = cut
    return out

"""String literals for each target language, correct for any content (quotes, newlines,
backslashes, ``$``, backticks, unicode, control characters)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any


def sh(s: str) -> str:
    """POSIX shell single quotes: nothing inside is special; ``'`` becomes ``'\\''``."""
    if "\x00" in s:
        raise ValueError("a NUL character cannot be passed on a shell command line")
    return "'" + s.replace("'", "'\\''") + "'"


def js(s: str) -> str:
    """A JavaScript/TypeScript double-quoted string."""
    return (
        json.dumps(s, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def py(s: str) -> str:
    """A Python double-quoted string (JSON's escapes are all valid Python escapes)."""
    return json.dumps(s, ensure_ascii=False)


def _escape_nonprintable(ch: str, short: str, long: str) -> str:
    cp = ord(ch)
    return short.format(cp) if cp <= 0xFFFF else long.format(cp)


_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _c_like(s: str, other: Callable[[str], str]) -> str:
    """A double-quoted literal with C-style escapes; ``other`` escapes a non-printable
    character or a BOM (the one place Go and Rust differ)."""
    out = ['"']
    for ch in s:
        esc = _C_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif not ch.isprintable() or ch == "\ufeff":
            out.append(other(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go(s: str) -> str:
    """A Go interpreted string literal (Go source is UTF-8; a BOM or control character inside
    would not compile, so those are escaped)."""
    return _c_like(s, lambda ch: _escape_nonprintable(ch, "\\u{:04x}", "\\U{:08x}"))


def rust(s: str) -> str:
    """A Rust string literal (escaped, because raw strings reject a bare carriage return)."""
    return _c_like(s, lambda ch: f"\\u{{{ord(ch):x}}}")


def py_value(value: Any, indent: int = 0) -> str:
    """A JSON value as a Python literal (``True``/``False``/``None``; non-finite floats too)."""
    pad, inner = "    " * indent, "    " * (indent + 1)
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f'float("{value}")'
    if isinstance(value, str):
        return py(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        items = "".join(f"{inner}{py_value(v, indent + 1)},\n" for v in value)
        return f"[\n{items}{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "".join(
            f"{inner}{py(str(k))}: {py_value(v, indent + 1)},\n" for k, v in value.items()
        )
        return f"{{\n{items}{pad}}}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")

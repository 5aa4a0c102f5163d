"""String literals for each target language, correct for any content (quotes, newlines,
backslashes, ``$``, backticks, unicode, control characters)."""

from __future__ import annotations

import json
import math
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


def go(s: str) -> str:
    """A Go interpreted string literal (Go source is UTF-8; a BOM or control character inside
    would not compile, so those are escaped)."""
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable() or ch == "\ufeff":
            out.append(_escape_nonprintable(ch, "\\u{:04x}", "\\U{:08x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def rust(s: str) -> str:
    """A Rust string literal (escaped, because raw strings reject a bare carriage return)."""
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable() or ch == "\ufeff":
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


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

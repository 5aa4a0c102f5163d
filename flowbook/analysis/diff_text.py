"""Text and value diffs the flow diff is made of: word-level text diffs and key-by-key diffs of
nested JSON-like values (parameters, tool schemas, tool call arguments).

Pure Python (``difflib``), no widgets. The browser redoes text diffs with jsdiff for display;
these are what ``FlowDiff.changes`` and ``to_markdown`` hold.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["equal", "insert", "delete"]

# Words, runs of whitespace and single punctuation marks: a changed word is one token, and the
# spacing around it survives the round trip (joining the tokens gives the text back).
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
# Past this many tokens a side, a word-level diff (quadratic in the worst case) falls back to
# whole lines; the result stays correct, only coarser.
MAX_WORD_TOKENS = 20_000


@dataclass
class TextDiff:
    """A text diff as a list of ``(op, text)`` runs; joining the ``equal`` and ``delete`` runs
    gives the old text, the ``equal`` and ``insert`` runs the new one."""

    ops: list[tuple[Op, str]] = field(default_factory=list)
    granularity: Literal["word", "line"] = "word"

    def __bool__(self) -> bool:
        return any(op != "equal" for op, _ in self.ops)

    @property
    def old(self) -> str:
        return "".join(t for op, t in self.ops if op != "insert")

    @property
    def new(self) -> str:
        return "".join(t for op, t in self.ops if op != "delete")

    @property
    def inserted(self) -> list[str]:
        """The inserted runs, in order."""
        return [t for op, t in self.ops if op == "insert"]

    @property
    def deleted(self) -> list[str]:
        """The deleted runs, in order."""
        return [t for op, t in self.ops if op == "delete"]

    def word_diff(self) -> str:
        """git's ``--word-diff`` notation: ``[-old-]{+new+}`` inline."""
        out = []
        for op, text in self.ops:
            out.append(
                text if op == "equal" else f"[-{text}-]" if op == "delete" else f"{{+{text}+}}"
            )
        return "".join(out)


def diff_text(a: str | None, b: str | None) -> TextDiff:
    """Word-level diff of two texts (line-level past :data:`MAX_WORD_TOKENS` tokens a side)."""
    a, b = a or "", b or ""
    if a == b:
        return TextDiff([("equal", a)] if a else [])
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    granularity: Literal["word", "line"] = "word"
    if max(len(ta), len(tb)) > MAX_WORD_TOKENS:
        ta, tb = a.splitlines(keepends=True), b.splitlines(keepends=True)
        granularity = "line"
    ops: list[tuple[Op, str]] = []

    def push(op: Op, text: str) -> None:
        if not text:
            return
        if ops and ops[-1][0] == op:
            ops[-1] = (op, ops[-1][1] + text)
        else:
            ops.append((op, text))

    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            push("equal", "".join(ta[i1:i2]))
        else:
            # Deletions before insertions, so a replaced word reads "old new".
            push("delete", "".join(ta[i1:i2]))
            push("insert", "".join(tb[j1:j2]))
    return TextDiff(ops, granularity)


def similarity(a: str, b: str) -> float:
    """0..1, how alike two texts are (token-level); cheap bound first for long texts."""
    if a == b:
        return 1.0
    ta, tb = _TOKEN.findall(a)[:2000], _TOKEN.findall(b)[:2000]
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    if matcher.real_quick_ratio() < 0.3:
        return matcher.real_quick_ratio()
    return matcher.ratio()


ChangeKind = Literal["added", "removed", "changed"]


@dataclass
class FieldChange:
    """One changed value: ``path`` is dotted (``stream_options.include_usage``, ``tools[0]``)."""

    path: str
    kind: ChangeKind
    a: Any = None
    b: Any = None

    def describe(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added {short(self.b)}"
        if self.kind == "removed":
            return f"{self.path}: removed (was {short(self.a)})"
        return f"{self.path}: {short(self.a)} → {short(self.b)}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def diff_values(a: Any, b: Any, path: str = "") -> list[FieldChange]:
    """Key-by-key diff of nested dicts; lists of equal length item by item, other lists whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[FieldChange] = []
        for key in _ordered_keys(a, b):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(FieldChange(sub, "removed", a[key], None))
            elif key not in a:
                out.append(FieldChange(sub, "added", None, b[key]))
            else:
                out += diff_values(a[key], b[key], sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += diff_values(x, y, f"{path}[{i}]")
        return out
    if _same(a, b):
        return []
    return [FieldChange(path or "value", "changed", a, b)]


def _ordered_keys(a: dict[Any, Any], b: dict[Any, Any]) -> list[Any]:
    """A's keys in A's order, then B's new keys: the order a reader saw them in."""
    return list(a) + [k for k in b if k not in a]


def short(value: Any, limit: int = 80) -> str:
    """A value in one short line, for summaries."""
    import json

    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float) and math.isfinite(value) and 0 < abs(value) < 1e-3:
        # Costs: 0.0000132, not 1.32e-05.
        text = f"{value:.12f}".rstrip("0")
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

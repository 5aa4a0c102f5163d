"""Value matchers shared by both evaluators.

Both the vectorised evaluator and the per-flow evaluator call these very objects, so a text
value or a number is judged by one function whichever way a filter runs: that is what keeps
``Filter.mask`` and ``Filter.matches`` in agreement.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from flowbook.filters.errors import FilterError

TextMode = Literal["substring", "glob", "regex", "exact", "not_exact"]


@dataclass(frozen=True)
class TextMatcher:
    """How a text value is matched.

    ``substring`` (default, case-insensitive), ``glob`` (the value has ``*``: anchored,
    case-insensitive), ``regex`` (``/…/`` or a mitmproxy ``~`` operator: case-insensitive
    search, as mitmproxy does by default), ``exact`` (``=value``, case-insensitive equality) and
    ``not_exact`` (``!=value``). A missing value (None) never matches.
    """

    mode: TextMode
    pattern: str
    flags: int = 0
    _compiled: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _needle: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needle", self.pattern.lower())
        if self.mode == "regex":
            rx = re.compile(self.pattern, re.IGNORECASE | self.flags)
        elif self.mode == "glob":
            body = ".*".join(re.escape(p) for p in self.pattern.split("*"))
            rx = re.compile(body, re.IGNORECASE | re.DOTALL)
        else:
            return
        object.__setattr__(self, "_compiled", rx)

    @property
    def literal(self) -> str | None:
        """The plain substring this matcher looks for, when it is one (for FTS and indexes)."""
        return self.pattern if self.mode == "substring" else None

    def __call__(self, value: str | None) -> bool:
        if value is None:
            return False
        mode = self.mode
        if mode == "substring":
            return self._needle in value.lower()
        if mode == "exact":
            return value.lower() == self._needle
        if mode == "not_exact":
            return value.lower() != self._needle
        assert self._compiled is not None
        if mode == "glob":
            return self._compiled.fullmatch(value) is not None
        return self._compiled.search(value) is not None

    def __str__(self) -> str:
        if self.mode == "regex":
            return "/" + self.pattern.replace("/", "\\/") + "/"
        prefix = {"exact": "=", "not_exact": "!="}.get(self.mode, "")
        if self.mode == "substring" and "*" in self.pattern:
            # Unquoted, a ``*`` would read back as a glob; quoted it stays a literal star.
            return '"' + self.pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return prefix + quote(self.pattern)


def quote(text: str) -> str:
    """Write a value so that the parser reads it back unchanged."""
    if text and re.fullmatch(r"[\w.\-*@+,#$%^?\[\]{}:;]+", text) and text[0] not in "=!<>/":
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compile_regex(pattern: str, flags: int, position: int) -> re.Pattern[str]:
    """Compile a user's regex, turning Python's error into a FilterError at its column."""
    try:
        return re.compile(pattern, re.IGNORECASE | flags)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        offset = getattr(exc, "pos", None) or 0
        raise FilterError(
            f"invalid regular expression {pattern!r}: {exc}",
            position + offset,
            "escape special characters with \\ or quote a plain value; regexes are Python's re",
        ) from None


NumOp = Literal[">", ">=", "<", "<=", "=", "!="]
_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "ms": 1.0, "s": 1e3}
_NUMBER = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Z]*)")


def parse_number(text: str, *, duration: bool, position: int, key: str) -> float:
    """Read ``1000``, ``1.5k``, ``2M``, ``500ms``, ``2s`` (time units only for durations, in ms)."""
    m = _NUMBER.fullmatch(text)
    example = f"{key}:>2s" if duration else f"{key}:>1.5k"
    if not m:
        raise FilterError(
            f"expected a number for {key}:, got {text!r}",
            position,
            f"write a number with an optional k or M suffix, e.g. {example}",
        )
    unit = m.group(2)
    if unit not in _UNITS:
        raise FilterError(
            f"unknown unit {unit!r} in {text!r}",
            position + len(m.group(1)),
            "units: k (thousand), M (million)" + (", ms, s" if duration else ""),
        )
    if unit in ("ms", "s") and not duration:
        raise FilterError(
            f"unit {unit!r} only applies to durations (latency, ttft)",
            position + len(m.group(1)),
            f"write a plain number or k/M, e.g. {example}",
        )
    value = float(m.group(1)) * _UNITS[unit]
    if not math.isfinite(value):
        raise FilterError(f"number {text!r} is too large", position, f"e.g. {example}")
    return value


@dataclass(frozen=True)
class NumCondition:
    """One or more comparisons that must all hold; a missing value (None/NaN) never matches."""

    checks: tuple[tuple[NumOp, float], ...]

    def __call__(self, value: float | int | None) -> bool:
        if value is None:
            return False
        v = float(value)
        if math.isnan(v):
            return False
        return all(_compare(v, op, x) for op, x in self.checks)

    def __str__(self) -> str:
        if len(self.checks) == 2 and self.checks[0][0] == ">=" and self.checks[1][0] == "<=":
            return f"{_fmt(self.checks[0][1])}..{_fmt(self.checks[1][1])}"
        return ",".join(f"{'' if op == '=' else op}{_fmt(x)}" for op, x in self.checks)


def _compare(v: float, op: str, x: float) -> bool:
    if op == ">":
        return v > x
    if op == ">=":
        return v >= x
    if op == "<":
        return v < x
    if op == "<=":
        return v <= x
    if op == "=":
        return v == x
    return v != x


def _fmt(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)

"""Building terms: ``key:value`` pairs and ``~`` operators (mitmproxy's and the reference's)."""

from __future__ import annotations

import difflib
import re

from flowbook.filters.ast import Const, FlagTerm, FlowTerm, Node, NumTerm, TextTerm
from flowbook.filters.errors import FilterError
from flowbook.filters.fields import (
    FLAG_ALIASES,
    FLAGS,
    FLOW_FLAGS,
    FLOW_TEXT_KEYS,
    NUM_ALIASES,
    NUM_KEYS,
    TEXT_ALIASES,
    TEXT_KEYS,
)
from flowbook.filters.lexer import VALUE_STOP, Cursor
from flowbook.filters.matchers import (
    NumCondition,
    NumOp,
    TextMatcher,
    TextMode,
    compile_regex,
    parse_number,
)

# mitmproxy operators that take no argument -> the node they mean for an LLM flow.
_MITM_UNARY: dict[str, Node] = {
    "e": FlagTerm("is:error"),
    "q": FlagTerm("~q"),
    "s": FlagTerm("has:response"),
    "marked": FlagTerm("is:bookmarked"),
    "a": FlowTerm("a"),  # (position filled in by tilde_term)
    "all": Const(True, "~all"),
    "http": Const(True, "~http"),  # every flowbook flow is an HTTP flow
    "websocket": Const(False, "~websocket"),
    "tcp": Const(False, "~tcp"),
    "udp": Const(False, "~udp"),
    "dns": Const(False, "~dns"),
}
# mitmproxy regex operators -> (summary text key or None for a full-flow term, regex flags).
_MITM_REGEX: dict[str, tuple[str | None, int]] = {
    "d": ("host", 0),
    "m": ("method", 0),
    "u": ("url", 0),
    "b": (None, re.DOTALL),
    "bq": (None, re.DOTALL),
    "bs": (None, re.DOTALL),
    "h": (None, re.MULTILINE),
    "hq": (None, re.MULTILINE),
    "hs": (None, re.MULTILINE),
    "t": (None, 0),
    "tq": (None, 0),
    "ts": (None, 0),
    "src": (None, 0),
    "dst": (None, 0),
    "meta": (None, re.MULTILINE),
    "marker": (None, 0),
    "comment": (None, re.MULTILINE),
}
# The reference's LLM flags that do not clash with mitmproxy (~t and ~s do; see docs/filters.md).
_LLM_FLAGS: dict[str, str] = {
    "tools": "has:tool_calls",
    "k": "has:thinking",
    "thinking": "has:thinking",
    "starred": "is:bookmarked",
    "bookmarked": "is:bookmarked",
}
# The reference's short names for keys (no clash with mitmproxy).
_TILDE_KEYS = {"p": "provider"}
_UNSUPPORTED = {"replay", "replayq", "replays"}


def all_key_names() -> list[str]:
    return [*TEXT_KEYS, *TEXT_ALIASES, *NUM_KEYS, *NUM_ALIASES, *FLOW_TEXT_KEYS, "is", "has"]


def canonical_key_names() -> list[str]:
    """The keys as documented (no aliases), for hints."""
    return [*TEXT_KEYS, *NUM_KEYS, *FLOW_TEXT_KEYS, "is", "has"]


def is_known_key(name: str) -> bool:
    return name in all_key_names()


def all_operator_names() -> list[str]:
    return [*_MITM_UNARY, *_MITM_REGEX, "c", *_LLM_FLAGS, *_TILDE_KEYS, *all_key_names()]


def key_term(cur: Cursor, key: str, start: int) -> Node:
    """Read the value of ``key:`` (the cursor is just after the colon or the ~operator)."""
    if key in ("is", "has"):
        return _flag(cur, key, start)
    key = TEXT_ALIASES.get(key, NUM_ALIASES.get(key, key))
    if key in NUM_KEYS:
        return NumTerm(key, _number_value(cur, key))
    matcher = _text_value(cur, key)
    if key in FLOW_TEXT_KEYS:
        return FlowTerm(key, matcher, pos=start)
    return TextTerm(key, matcher)


def tilde_term(cur: Cursor, start: int) -> Node:
    """Read a ``~operator [argument]`` term (the cursor is on the ``~``)."""
    cur.pos += 1
    raw = cur.identifier()
    name = raw.lower()
    name = _TILDE_KEYS.get(name, name)
    if not name:
        raise FilterError("'~' must be followed by an operator name", start, "e.g. ~e, ~d openai")
    if name in _MITM_UNARY:
        node = _MITM_UNARY[name]
        return FlowTerm(node.kind, pos=start) if isinstance(node, FlowTerm) else node
    if name in _LLM_FLAGS:
        return FlagTerm(_LLM_FLAGS[name])
    if name in _MITM_REGEX:
        arg_pos = _arg_position(cur)
        arg = cur.mitm_argument()
        if arg is None:
            raise FilterError(f"~{name} needs a regex argument", arg_pos, f"e.g. ~{name} openai")
        key, flags = _MITM_REGEX[name]
        compile_regex(arg, flags, arg_pos)
        matcher = TextMatcher("regex", arg, flags)
        return TextTerm(key, matcher) if key else FlowTerm(name, matcher, pos=start)
    if name == "c":
        arg_pos = _arg_position(cur)
        arg = cur.mitm_argument()
        if arg is None or not arg.isascii() or not arg.isdigit():
            raise FilterError("~c needs an integer status code", arg_pos, "e.g. ~c 429")
        return NumTerm("status", NumCondition((("=", float(int(arg))),)))
    if name in _UNSUPPORTED:
        raise FilterError(
            f"~{name} is not supported", start, "flowbook does not record mitmproxy replays"
        )
    if is_known_key(name):
        cur.skip_ws()
        if cur.eof:
            raise FilterError(f"~{name} needs an argument", cur.pos, f"e.g. {_example(name)}")
        return key_term(cur, name, start)
    close = difflib.get_close_matches(name, all_operator_names(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join('~' + c for c in close)}? " if close else ""
    raise FilterError(
        f"unknown operator ~{raw}", start, hint + "see docs/filters.md for the operator list"
    )


def _arg_position(cur: Cursor) -> int:
    save = cur.pos
    cur.skip_ws()
    pos = cur.pos
    cur.pos = save
    return pos


def _example(key: str) -> str:
    if key in NUM_KEYS or key in NUM_ALIASES:
        return f"~{key} >1000"
    return f"~{key} value"


def _flag(cur: Cursor, key: str, start: int) -> Node:
    pos = cur.pos
    word = cur.identifier().lower()
    name = FLAG_ALIASES.get(f"{key}:{word}", f"{key}:{word}")
    if name in FLAGS:
        return FlagTerm(name)
    if name in FLOW_FLAGS:
        return FlowTerm(FLOW_FLAGS[name], pos=start)
    valid = sorted(n.split(":")[1] for n in [*FLAGS, *FLOW_FLAGS] if n.startswith(key + ":"))
    raise FilterError(
        f"unknown flag {key}:{word}" if word else f"{key}: needs a flag name",
        pos,
        f"{key}: takes one of {', '.join(valid)}",
    )


def _text_value(cur: Cursor, key: str) -> TextMatcher:
    pos = cur.pos
    mode: TextMode | None = None
    if cur.text.startswith("!=", pos):
        mode, cur.pos = "not_exact", pos + 2
    elif cur.peek() == "=":
        mode, cur.pos = "exact", pos + 1
    elif cur.peek() in ("<", ">"):
        raise FilterError(
            f"{key}: is text; comparisons need a numeric key",
            pos,
            "numeric keys: " + ", ".join(NUM_KEYS),
        )
    c = cur.peek()
    vpos = cur.pos
    if c in ("'", '"'):
        # A quoted value is literal: quote it to match a '*' or a leading '/'.
        return TextMatcher(mode or "substring", cur.quoted())
    if c == "/" and mode is None:
        pattern = cur.regex_literal()
        compile_regex(pattern, 0, vpos + 1)
        return TextMatcher("regex", pattern)
    value = cur.word(VALUE_STOP)
    if not value:
        raise FilterError(
            f"missing value after {key}:",
            vpos,
            f'e.g. {key}:gpt-4, {key}:"two words", {key}:gpt-4*, {key}:/re/, {key}:=exact',
        )
    if mode is None:
        mode = "glob" if "*" in value else "substring"
    return TextMatcher(mode, value)


_OPS: tuple[NumOp, ...] = (">=", "<=", "!=", ">", "<", "=")


def _number_value(cur: Cursor, key: str) -> NumCondition:
    op: NumOp = "="
    explicit = False
    for candidate in _OPS:
        if cur.text.startswith(candidate, cur.pos):
            op, explicit = candidate, True
            cur.pos += len(candidate)
            break
    if explicit:
        cur.skip_ws()
    vpos = cur.pos
    word = cur.word(VALUE_STOP)
    duration = NUM_KEYS[key][1]
    if not word:
        raise FilterError(
            f"missing number after {key}:",
            vpos,
            f"e.g. {key}:>1000, {key}:>=1.5k, {key}:100..200"
            + (f", {key}:>2s" if duration else ""),
        )
    if not explicit and key == "status" and re.fullmatch(r"[1-5]xx", word, re.IGNORECASE):
        base = float(int(word[0]) * 100)
        return NumCondition(((">=", base), ("<=", base + 99)))
    if not explicit and ".." in word:
        lo_text, hi_text = word.split("..", 1)
        lo = parse_number(lo_text, duration=duration, position=vpos, key=key)
        hi = parse_number(hi_text, duration=duration, position=vpos + len(lo_text) + 2, key=key)
        if lo > hi:
            raise FilterError(f"empty range {word}", vpos, f"write the low end first: {key}:1..10")
        return NumCondition(((">=", lo), ("<=", hi)))
    return NumCondition(((op, parse_number(word, duration=duration, position=vpos, key=key)),))

"""A FlowDiff as text: one-line summaries and Markdown.

Captured content (prompts, messages, responses) only ever appears inside fenced code blocks whose
fence is longer than any backtick run in it, so Markdown renderers show it verbatim and inert.
Word changes use git's ``--word-diff`` notation: ``[-removed-]{+added+}``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flowbook.analysis.diff_text import TextDiff, short

if TYPE_CHECKING:
    from flowbook.analysis.diff import FlowDiff, MessageOp

# Equal messages are shown shortened: the diff is about what changed.
EQUAL_PREVIEW_CHARS = 120
MARK = {"equal": " ", "insert": "+", "delete": "-", "change": "~"}


def summary_lines(d: FlowDiff) -> list[str]:
    """One line per difference."""
    c = d.changes
    out = [f"{f.describe()}" for f in c.overview]
    out += [f"params.{f.describe()}" for f in c.params]
    for t in c.tools:
        if t.kind == "changed":
            out += [f"tool {t.name}: {f.describe()}" for f in t.changes]
        else:
            out.append(f"tool {t.name}: {t.kind}")
    if c.system:
        out.append("system prompt changed")
    for op in c.message_changes:
        out.append(f"message {_where(op)}: {_verb(op)} ({op.role})")
    if c.response_text:
        out.append("response text changed")
    if c.response_thinking:
        out.append("response thinking changed")
    out += [f"response.{f.describe()}" for f in c.response]
    return out


def _verb(op: MessageOp) -> str:
    return {"insert": "inserted", "delete": "removed", "change": "changed"}.get(op.kind, "same")


def _where(op: MessageOp) -> str:
    a = "–" if op.a_index is None else str(op.a_index)
    b = "–" if op.b_index is None else str(op.b_index)
    return f"{a}→{b}"


def fenced(text: str, info: str = "") -> str:
    """``text`` in a code fence longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _cell(text: object) -> str:
    """A value safe inside a Markdown table cell (short, no pipes, HTML escaped)."""
    import html

    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")


def _text_section(title: str, diff: TextDiff) -> list[str]:
    if not diff:
        return []
    note = " (line level: too long for words)" if diff.granularity == "line" else ""
    return [f"### {title}{note}", "", fenced(diff.word_diff()), ""]


def to_markdown(d: FlowDiff) -> str:
    """The whole diff as Markdown."""
    from flowbook.analysis.diff import message_text

    a, b, c = d.a, d.b, d.changes
    lines = [
        f"## Diff `{a.id}` → `{b.id}`",
        "",
        f"A: {_cell(a.provider)} · {_cell(a.model or '?')} — "
        f"B: {_cell(b.provider)} · {_cell(b.model or '?')}",
        "",
    ]
    if c.empty:
        ignored = ", ".join(sorted(d.ignore)) or "nothing"
        return "\n".join([*lines, f"No differences (ignoring {ignored}).", ""])
    for title, fields in (("Overview", c.overview), ("Parameters", c.params)):
        if fields:
            lines += [f"### {title}", "", "| field | A | B |", "|---|---|---|"]
            lines += [
                f"| {_cell(f.path)} | {_cell(short(f.a) if f.kind != 'added' else '—')} "
                f"| {_cell(short(f.b) if f.kind != 'removed' else '—')} |"
                for f in fields
            ]
            lines.append("")
    if c.tools:
        lines += ["### Tools", ""]
        for t in c.tools:
            if t.kind != "changed":
                lines.append(f"- `{_cell(t.name)}` {t.kind}")
                continue
            lines.append(f"- `{_cell(t.name)}` changed:")
            lines += [f"  - {_cell(f.describe())}" for f in t.changes]
        lines.append("")
    lines += _text_section("System prompt", c.system)
    if c.message_changes:
        lines += ["### Messages", "", "(`+` inserted, `-` removed, `~` changed, ` ` same)", ""]
        body = []
        for op in c.messages:
            head = f"{MARK[op.kind]} [{_where(op)}] {op.role}"
            if op.kind == "change" and op.text is not None:
                body.append(f"{head}: {op.text.word_diff()}")
                continue
            msg = op.b if op.b is not None else op.a
            text = message_text(msg) if msg is not None else ""
            if op.kind == "equal" and len(text) > EQUAL_PREVIEW_CHARS:
                text = text[:EQUAL_PREVIEW_CHARS] + "…"
            body.append(f"{head}: {text}")
        lines += [fenced("\n".join(body)), ""]
    lines += _text_section("Response text", c.response_text)
    lines += _text_section("Response thinking", c.response_thinking)
    if c.response:
        lines += ["### Response", ""]
        lines += [f"- {_cell(f.describe())}" for f in c.response]
        lines.append("")
    return "\n".join(lines)

"""The side-by-side diff widget (what a ``FlowDiff`` shows in a notebook) and its static fallback.

The kernel aligns the messages and diffs parameters and tools (:mod:`flowbook.analysis.diff`);
the widget gets that structure plus the texts as one JSON payload and redoes the text diffs with
jsdiff (by line, then by word, bounded by ``maxEditLength``) to highlight them. Where widgets do
not render (nbconvert, GitHub), the same structure is rendered as escaped static HTML.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from flowbook.analysis.diff import message_text
from flowbook.analysis.diff_text import FieldChange, TextDiff, short
from flowbook.ui import static_file

if TYPE_CHECKING:
    from flowbook.analysis.diff import FlowDiff, MessageOp
    from flowbook.model import LLMFlow

# Texts longer than this are cut (with a note) before they go to the browser: a diff view of a
# 2 MB prompt helps nobody and would stall the page.
MAX_TEXT_CHARS = 200_000
# Equal messages are shown collapsed; their text is sent up to this length.
EQUAL_TEXT_CHARS = 4_000


def _cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit:,} more characters not shown]"


def _side(f: LLMFlow) -> dict[str, Any]:
    return {
        "id": f.id,
        "provider": f.provider,
        "api": f.api,
        "model": f.model or "?",
        "state": str(f.state),
    }


def _display(value: Any) -> str:
    """A value for a table cell: strings as they are (no JSON quotes), the rest as short JSON."""
    if isinstance(value, str):
        return value if len(value) <= 400 else value[:399] + "…"
    return short(value, 400)


def _fields(changes: list[FieldChange]) -> list[dict[str, Any]]:
    return [
        {
            "path": c.path,
            "kind": c.kind,
            "a": "" if c.kind == "added" else _display(c.a),
            "b": "" if c.kind == "removed" else _display(c.b),
        }
        for c in changes
    ]


def _message(op: MessageOp) -> dict[str, Any]:
    limit = EQUAL_TEXT_CHARS if op.kind == "equal" else MAX_TEXT_CHARS
    return {
        "kind": op.kind,
        "role": op.role,
        "a_index": op.a_index,
        "b_index": op.b_index,
        "a": None if op.a is None else _cut(message_text(op.a), limit),
        "b": None if op.b is None else _cut(message_text(op.b), limit),
    }


def _text(diff: TextDiff) -> dict[str, Any]:
    return {"a": _cut(diff.old), "b": _cut(diff.new), "changed": bool(diff)}


def payload(d: FlowDiff) -> dict[str, Any]:
    """Everything the widget draws, as JSON-ready data (texts capped at MAX_TEXT_CHARS)."""
    c = d.changes
    return {
        "a": _side(d.a),
        "b": _side(d.b),
        "ignore": sorted(d.ignore),
        "summary": d.summary(),
        "overview": _fields(c.overview),
        "params": _fields(c.params),
        "tools": [{"name": t.name, "kind": t.kind, "changes": _fields(t.changes)} for t in c.tools],
        "system": _text(c.system),
        "messages": [_message(op) for op in c.messages],
        "response": _text(c.response_text),
        "thinking": _text(c.response_thinking),
        "response_fields": _fields(c.response),
    }


class DiffWidget(anywidget.AnyWidget):
    """Two flows side by side: parameters, tools, system prompt, aligned messages, response."""

    _esm = static_file("diff.js")
    _css = static_file("diff.css")

    data = traitlets.Dict().tag(sync=True)

    def __init__(self, diff: FlowDiff, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.diff = diff
        self.data = payload(diff)


def mimebundle(d: FlowDiff) -> dict[str, Any]:
    """The widget view plus static HTML, Markdown and plain text for where widgets do not run."""
    bundle: dict[str, Any] = {
        "text/plain": repr(d),
        "text/html": static_html(d),
        "text/markdown": d.to_markdown(),
    }
    try:
        widget = DiffWidget(d)
    except FileNotFoundError:  # front end not built: the static views still say everything
        return bundle
    view = widget._repr_mimebundle_()
    data = view[0] if isinstance(view, tuple) else view
    bundle.update(data or {})
    d._widget = widget  # type: ignore[attr-defined]  # keep the comm alive with the diff
    return bundle


# ---- static HTML ------------------------------------------------------------------------------

_E = html.escape
_KIND_STYLE = {
    "insert": "background:rgba(34,197,94,.18)",
    "delete": "background:rgba(239,68,68,.18)",
    "change": "background:rgba(234,179,8,.16)",
    "equal": "opacity:.7",
}


def _inline(diff: TextDiff, side: str) -> str:
    out = []
    for op, text in diff.ops:
        if op == "equal":
            out.append(_E(text))
        elif op == "delete" and side == "a":
            out.append(f"<del>{_E(text)}</del>")
        elif op == "insert" and side == "b":
            out.append(f"<ins>{_E(text)}</ins>")
    return "".join(out)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pre(body: str) -> str:
    return f'<pre style="white-space:pre-wrap;margin:0">{body}</pre>'


def static_html(d: FlowDiff) -> str:
    """The diff as self-contained HTML; every captured string is escaped."""
    c = d.changes
    a, b = d.a, d.b
    rows = [
        f"<tr><th></th><th>A {_E(a.id)}</th><th>B {_E(b.id)}</th></tr>",
        f"<tr><td>flow</td><td>{_E(a.provider)} · {_E(a.model or '?')}</td>"
        f"<td>{_E(b.provider)} · {_E(b.model or '?')}</td></tr>",
    ]
    for title, fields in (("", c.overview), ("params.", c.params), ("response.", c.response)):
        for f in fields:
            va = "—" if f.kind == "added" else short(f.a, 200)
            vb = "—" if f.kind == "removed" else short(f.b, 200)
            rows.append(f"<tr><td>{_E(title + f.path)}</td><td>{_E(va)}</td><td>{_E(vb)}</td></tr>")
    for t in c.tools:
        detail = "; ".join(f.describe() for f in t.changes) or t.kind
        rows.append(f"<tr><td>tool {_E(t.name)}</td><td colspan=2>{_E(detail)}</td></tr>")
    for title, diff in (("system", c.system), ("response", c.response_text)):
        if diff:
            rows.append(
                f"<tr><td>{title}</td><td>{_pre(_inline(diff, 'a'))}</td>"
                f"<td>{_pre(_inline(diff, 'b'))}</td></tr>"
            )
    for op in c.messages:
        style = _KIND_STYLE[op.kind]
        if op.kind == "change" and op.text is not None:
            left, right = _inline(op.text, "a"), _inline(op.text, "b")
        else:
            left = _E(_clip(message_text(op.a))) if op.a is not None else ""
            right = _E(_clip(message_text(op.b))) if op.b is not None else ""
        rows.append(
            f'<tr style="{style}"><td>{_E(op.kind)} {_E(op.role)}</td>'
            f"<td>{_pre(left)}</td><td>{_pre(right)}</td></tr>"
        )
    note = "" if c.sections() else "<p>No differences.</p>"
    return (
        f'<div class="fb-diff-static"><strong>Diff {_E(a.id)} → {_E(b.id)}</strong>{note}'
        f'<table style="border-collapse:collapse;width:100%">{"".join(rows)}</table></div>'
    )

"""A flow as static HTML and Markdown: what a plain cell, nbconvert HTML or GitHub shows.

``LLMFlow._repr_html_``/``_repr_markdown_`` call these. No widgets, no script, no styles that
need a stylesheet: a small table of facts and the last user message and the answer as escaped
text. Every captured string is escaped (HTML) or fenced (Markdown), so hostile model output is
shown, never run or rendered.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from flowbook.model import LLMFlow

PREVIEW_CHARS = 2000


def _cut(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def usd(value: float) -> str:
    """Dollars with three significant digits below a cent (``$0.00000960``), else four places."""
    if value <= 0 or value >= 0.01:
        return f"${value:.4f}"
    places = 2 - math.floor(math.log10(value))
    return f"${value:.{places}f}"


def _last_user_text(flow: LLMFlow) -> str:
    for m in reversed(flow.request.messages):
        if m.role == "user":
            return m.plain_text()
    return ""


def _answer(flow: LLMFlow) -> str:
    resp = flow.response
    if resp is None:
        return ""
    parts = [resp.text]
    parts += [f"→ {c.name}({c.arguments_raw or c.arguments})" for c in resp.tool_calls]
    return "\n".join(p for p in parts if p)


def facts(flow: LLMFlow) -> list[tuple[str, str]]:
    """The summary rows both renderings show (label, plain text value)."""
    ts, usage, resp = flow.timestamps, flow.usage, flow.response
    rows = [
        ("Flow", flow.id),
        ("Provider", f"{flow.provider} / {flow.api}"),
        ("Model", flow.model or "?"),
        (
            "State",
            str(flow.state) + (f" · HTTP {resp.status_code}" if resp and resp.status_code else ""),
        ),
        ("Request", f"{flow.request.method} {flow.request.host}{flow.request.path}"),
    ]
    if ts.latency_ms is not None:
        ttft = f" · TTFT {ts.ttft_ms:.0f} ms" if ts.ttft_ms is not None else ""
        rows.append(("Latency", f"{ts.latency_ms:.0f} ms{ttft}"))
    if usage is not None and usage.source != "missing":
        extra = [
            f"{n} {k}"
            for k, n in (("cached", usage.cache_read), ("reasoning", usage.reasoning))
            if n
        ]
        more = f" ({', '.join(extra)})" if extra else ""
        rows.append(("Tokens", f"{usage.input} in / {usage.output} out{more} · {usage.source}"))
    if flow.metadata.cost_usd is not None:
        rows.append(("Cost", usd(flow.metadata.cost_usd)))
    if flow.error is not None:
        rows.append(("Error", f"{flow.error.type}: {_cut(flow.error.message, 300)}"))
    ann = flow.annotations
    if ann.bookmarked or ann.tags or ann.comment:
        notes = ["★ bookmarked"] if ann.bookmarked else []
        notes += [f"#{t}" for t in ann.tags]
        notes += [_cut(ann.comment, 300)] if ann.comment else []
        rows.append(("Notes", " ".join(notes)))
    return rows


def flow_html(flow: LLMFlow) -> str:
    """An escaped HTML summary (inline styles only, so it survives nbconvert and sanitisers)."""
    esc = html.escape
    cell = "padding:2px 8px;text-align:left;vertical-align:top"
    rows = "".join(
        f'<tr><th style="{cell}">{esc(k)}</th><td style="{cell}">{esc(v)}</td></tr>'
        for k, v in facts(flow)
    )
    blocks: list[str] = []
    for label, text in (("Last user message", _last_user_text(flow)), ("Answer", _answer(flow))):
        if text:
            blocks.append(
                f"<div><strong>{esc(label)}</strong>"
                f'<pre style="white-space:pre-wrap;max-height:20em;overflow:auto;margin:2px 0">'
                f"{esc(_cut(text))}</pre></div>"
            )
    return (
        f'<div class="flowbook-flow"><table style="border-collapse:collapse">{rows}</table>'
        f"{''.join(blocks)}</div>"
    )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def _md_escape(text: str) -> str:
    """Escape Markdown and HTML metacharacters in a one-line value."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _fence(text: str) -> str:
    """A fenced block longer than any backtick run inside, so the text cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def flow_markdown(flow: LLMFlow) -> str:
    """A Markdown summary: a facts table and the texts as fenced code blocks."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| **{_md_escape(k)}** | {_md_escape(v)} |" for k, v in facts(flow)]
    out: list[Any] = ["\n".join(lines)]
    for label, text in (("Last user message", _last_user_text(flow)), ("Answer", _answer(flow))):
        if text:
            out.append(f"**{label}**\n\n{_fence(_cut(text))}")
    return "\n\n".join(out)

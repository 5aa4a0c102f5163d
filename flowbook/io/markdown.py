"""A Markdown report to paste into an issue or a PR: a summary table, then each flow's metadata,
tokens and cost, conversation, response and error.

Captured content is always inside code fences (so nothing in it renders as Markdown or HTML),
each fence one backtick longer than the longest backtick run in its content, so a message that
itself contains ``` cannot close the fence early. Thinking and long bodies fold into
``<details>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import pandas as pd

from flowbook.model import LLMFlow, Message, Part

FOLD_CHARS = 1500  # longer blocks fold into <details>
FOLD_LINES = 30
_TICKS = re.compile(r"`+")


def fence(text: str, lang: str = "") -> str:
    """``text`` in a fenced code block that its own content cannot close."""
    longest = max((len(m) for m in _TICKS.findall(text)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"{ticks}{lang}\n{body}{ticks}\n"


def code(text: str) -> str:
    """Inline code that survives backticks in ``text``."""
    text = text.replace("\n", " ")
    longest = max((len(m) for m in _TICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def cell(value: Any) -> str:
    """A table cell: one line, ``|`` escaped, HTML neutralised."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def block(text: str, lang: str = "", *, label: str = "text") -> str:
    """A fenced block, folded into ``<details>`` when long."""
    fenced = fence(text, lang)
    if len(text) > FOLD_CHARS or text.count("\n") > FOLD_LINES:
        lines = text.count("\n") + 1
        summary = f"{cell(label)} ({len(text):,} characters, {lines:,} lines)"
        return f"<details><summary>{summary}</summary>\n\n{fenced}\n</details>\n"
    return fenced


def details(summary: str, inner: str) -> str:
    return f"<details><summary>{cell(summary)}</summary>\n\n{inner}\n</details>\n"


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:,.0f} ms"


def _cost(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "unknown"
    return f"${float(v):.6f}"


def summary_table(df: pd.DataFrame) -> str:
    cols = ["#", "time (UTC)", "provider", "model", "status", "tokens in/out", "cost",
            "latency", "TTFT", "id"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, row in enumerate(df.to_dict("records"), 1):
        ts = row.get("timestamp")
        when = pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts is not None else ""
        status = row.get("status_code")
        status_text = (
            f"{int(status)}" if isinstance(status, int | float) and status == status else ""
        )
        state = row.get("state") or ""
        tokens = f"{_int(row.get('input_tokens'))} / {_int(row.get('output_tokens'))}"
        cells = [str(i), when, row.get("provider"), row.get("model"),
                 f"{status_text} {state}".strip(), tokens, _cost(row.get("cost_usd")),
                 _ms(_num(row.get("latency_ms"))), _ms(_num(row.get("ttft_ms"))),
                 row.get("id")]  # fmt: skip
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and v == v else None


def _int(v: Any) -> str:
    n = _num(v)
    return "–" if n is None else f"{int(n):,}"


def _part(part: Part, role: str) -> str:
    t = part.type
    if t == "text":
        return block(part.text or "", label=f"{role} text")
    if t == "thinking":
        if part.redacted:
            return details("thinking (redacted by the provider)", "")
        return details("thinking", fence(part.text or ""))
    if t == "tool_call":
        head = f"**tool call** {code(part.name or '?')}" + (
            f" (id {code(part.id)})" if part.id else ""
        )
        return f"{head}\n\n{block(_json(part.arguments), 'json', label='arguments')}"
    if t == "tool_result":
        head = "**tool result**" + (f" for {code(part.tool_call_id)}" if part.tool_call_id else "")
        if part.is_error:
            head += " (error)"
        return f"{head}\n\n{block(_json(part.content), label='tool result')}"
    if t in ("image", "document"):
        size = f", {len(part.data) * 3 // 4:,} bytes" if part.data else ""
        where = f", {code(part.url)}" if part.url and not part.url.startswith("data:") else ""
        return f"*[{t}: {cell(part.media_type or 'unknown type')}{size}{where}]*\n"
    return block(part.text or _json(part.content), label=t)


def _message(i: int, m: Message) -> str:
    name = f" ({cell(m.name)})" if m.name else ""
    parts = "\n".join(_part(p, m.role) for p in m.parts) or "*(empty)*\n"
    return f"#### {i}. {cell(m.role)}{name}\n\n{parts}"


def flow_section(n: int, flow: LLMFlow) -> str:
    req, resp, ts = flow.request, flow.response, flow.timestamps
    out = [f"## {n}. {cell(flow.provider)} {cell(flow.api)} · {cell(flow.model or '?')} · "
           f"{cell(str(flow.state))}\n"]  # fmt: skip
    rows: list[tuple[str, str]] = [
        ("id", code(flow.id)),
        ("request", code(f"{req.method} {req.url or req.path}")),
        ("status", cell(f"{resp.status_code} {resp.reason}".strip()) if resp else "no response"),
        ("stream", "yes" if req.stream else "no"),
        ("started", _when(ts.created)),
        ("latency", _ms(ts.latency_ms)),
        ("time to first token", _ms(ts.ttft_ms)),
    ]
    if flow.metadata.client:
        rows.append(("client", cell(flow.metadata.client)))
    u = flow.usage
    if u is not None:
        rows.append(("tokens", cell(
            f"input {u.input:,} (cache read {u.cache_read:,}, cache write {u.cache_write:,}) · "
            f"output {u.output:,} (reasoning {u.reasoning:,}) · total {u.total:,} "
            f"({u.source})")))  # fmt: skip
    rows.append(("cost", _cost(flow.metadata.cost_usd)))
    if resp is not None and resp.stop_reason:
        rows.append(("stop reason", code(resp.stop_reason)))
    a = flow.annotations
    if a.bookmarked:
        rows.append(("bookmarked", "yes"))
    if a.tags:
        rows.append(("tags", ", ".join(code(t) for t in a.tags)))
    if flow.metadata.session:
        rows.append(("session", cell(flow.metadata.session)))
    out.append("| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
    if a.comment:
        out.append("**Comment**\n\n" + block(a.comment, label="comment"))
    if req.params:
        out.append("**Parameters**\n\n" + block(_json(req.params), "json", label="parameters"))
    if req.tools:
        names = ", ".join(code(t.name) for t in req.tools)
        tools = block(_json([t.to_dict() for t in req.tools]), "json", label="tool definitions")
        out.append(f"**Tools offered:** {names}\n\n" + details("tool definitions", tools))
    if req.system or req.messages:
        out.append("### Conversation\n")
        if req.system:
            out.append("#### system\n\n" + block(req.system, label="system prompt"))
        for i, m in enumerate(req.messages, 1):
            out.append(_message(i, m))
    elif req.body:
        out.append("### Request body\n\n" + block(req.body.decode("utf-8", "replace"), "json",
                                                  label="request body"))  # fmt: skip
    if resp is not None:
        out.append("### Response\n")
        if resp.thinking:
            out.append(details("thinking", fence(resp.thinking)))
        if resp.text:
            out.append(block(resp.text, label="response text"))
        if resp.refusal:
            out.append("**refusal**\n\n" + block(resp.refusal, label="refusal"))
        for c in resp.tool_calls:
            head = f"**tool call** {code(c.name)}" + (f" (id {code(c.id)})" if c.id else "")
            out.append(f"{head}\n\n{block(_json(c.arguments), 'json', label='arguments')}")
        if not (resp.text or resp.thinking or resp.tool_calls or resp.refusal):
            body = (resp.body or b"").decode("utf-8", "replace")
            out.append(block(body, "json", label="response body") if body else "*(empty)*\n")
        if resp.events:
            out.append(f"*{len(resp.events):,} stream events.*\n")
    if flow.error is not None:
        e = flow.error
        status = f", HTTP {e.status}" if e.status else ""
        retry = "retryable" if e.retryable else "not retryable"
        out.append(f"### Error\n\n{code(str(e.type))}{status}, {retry}\n\n"
                   + block(e.message, label="error message"))  # fmt: skip
    return "\n".join(out)


def write_markdown(flows: Iterable[LLMFlow], out: TextIO, *, summary: pd.DataFrame) -> int:
    """The report, flow by flow."""
    out.write(f"# LLM flows ({len(summary)})\n\nExported by flowbook.\n\n")
    if len(summary):
        out.write(summary_table(summary) + "\n")
    n = 0
    for flow in flows:
        n += 1
        out.write("---\n\n" + flow_section(n, flow) + "\n")
    return n

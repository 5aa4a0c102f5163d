"""A session's Markdown report: what the agent did, in what order, at what cost, and what hurt.

Sections: summary; timeline of turns (time, thread and turn, model, what was asked or which tool
result came back, which tools were called, latency, tokens, cost, status); tools used; cost (by
model, cache savings); the slowest turns with their cause; errors. Captured text is escaped (no
Markdown or HTML from a flow is ever rendered as such) and shortened.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd

from flowbook.analysis.cost import cost_by
from flowbook.analysis.latency import slowest

if TYPE_CHECKING:
    from flowbook.grouping.manage import Sessions

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: object, limit: int = 80) -> str:
    """Captured text made inert in Markdown: one line, shortened, specials and HTML escaped."""
    s = " ".join(str(text or "").split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


class Report(str):
    """Markdown text that a notebook displays as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _ms(v: object) -> str:
    return "–" if v is None or pd.isna(v) else f"{float(v) / 1000:.2f} s"  # type: ignore[arg-type]


def _usd(v: object) -> str:
    return "–" if v is None or pd.isna(v) else f"${float(v):.4f}"  # type: ignore[arg-type]


def _int(v: object) -> str:
    return "–" if v is None or pd.isna(v) else f"{int(v):,}"  # type: ignore[call-overload]


def session_report(sessions: Sessions, name: str, *, slow_n: int = 5) -> Report:
    """Build the report of session ``name``."""
    meta = dict(sessions._tracker.db.one("SELECT * FROM sessions WHERE name=?", (name,)) or {})
    df = sessions.flows(name)
    store = sessions._store
    lines = [f"# Session {md_escape(name, 100)}", ""]
    if meta.get("description"):
        lines += [md_escape(meta["description"], 500), ""]
    if df.empty:
        return Report("\n".join([*lines, "No flows in this session."]))
    first, last = df["timestamp"].min(), df["timestamp"].max()
    failed = df["error_type"].notna() | df["state"].eq("error").fillna(False)
    total_cost = df["cost_usd"].sum(min_count=1)
    # A failed call without usage bills nothing; only calls with tokens and no price are unknown.
    tokens = df["total_tokens"].to_numpy(dtype="float64", na_value=0.0)
    unpriced = df["cost_usd"].isna().to_numpy() & (tokens > 0)
    ids = list(df["id"])
    marks = ",".join("?" * len(ids))
    chains = {
        (r["flow_id"], r["call_id"]): r["name"]
        for r in sessions._tracker.db.rows(
            f"SELECT flow_id, call_id, name FROM chains WHERE flow_id IN ({marks})",
            ids,
        )
    }
    threads = df["thread_id"].nunique(dropna=True)
    lines += [
        f"- **{len(df)} flows** in {threads} thread(s), {meta.get('kind', 'manual')} session",
        f"- from {first:%Y-%m-%d %H:%M:%S} to {last:%H:%M:%S} UTC "
        f"({(last - first).total_seconds():.1f} s)",
        f"- tokens: {_int(df['input_tokens'].sum())} in, {_int(df['output_tokens'].sum())} out",
        f"- cost: {_usd(total_cost)}" + (" (some prices unknown)" if unpriced.any() else ""),
        f"- models: {md_escape(', '.join(sorted(df['model'].dropna().unique())), 200)}",
        f"- errors: {int(failed.sum())}",
        "",
        "## Timeline",
        "",
        "| # | time | thread · turn | model | input | tools called | latency | tokens | cost "
        "| status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tools: Counter[str] = Counter()
    tool_flows: dict[str, set[str]] = {}
    thread_no = {t: i + 1 for i, t in enumerate(dict.fromkeys(df["thread_id"].dropna()))}
    for i, row in enumerate(df.itertuples(index=False), start=1):
        flow = store.get(row.id)
        called: list[str] = []
        asked = str(row.preview or "")
        if flow is not None:
            called = [c.name for c in (flow.response.tool_calls if flow.response else [])]
            last_msg = flow.request.messages[-1] if flow.request.messages else None
            if last_msg is not None and any(p.type == "tool_result" for p in last_msg.parts):
                results = [p for p in last_msg.parts if p.type == "tool_result"]
                asked = "tool result: " + ", ".join(
                    p.name or chains.get((row.id, p.tool_call_id)) or p.tool_call_id or "?"
                    for p in results
                )
        for t in called:
            tools[t] += 1
            tool_flows.setdefault(t, set()).add(row.id)
        thread = thread_no.get(row.thread_id, "–") if not pd.isna(row.thread_id) else "–"
        turn = "–" if pd.isna(row.turn) else int(row.turn)
        status = (
            "error " + str(row.error_type)
            if not pd.isna(row.error_type)
            else (str(row.status_code) if not pd.isna(row.status_code) else str(row.state))
        )
        lines.append(
            f"| {i} | {row.timestamp:%H:%M:%S} | T{thread} · {turn} | {md_escape(row.model, 40)} "
            f"| {md_escape(asked, 60)} | {md_escape(', '.join(called), 60) or '–'} "
            f"| {_ms(row.latency_ms)} | {_int(row.total_tokens)} | {_usd(row.cost_usd)} "
            f"| {md_escape(status, 40)} |"
        )
    lines += ["", "## Tools used", ""]
    if tools:
        lines += ["| tool | calls |", "|---|---|"]
        lines += [f"| {md_escape(t, 60)} | {n} |" for t, n in tools.most_common()]
    else:
        lines.append("No tool calls.")
    lines += ["", "## Cost", ""]
    by_model = cost_by(df, "model")
    lines += [
        "| model | flows | cost | cache savings | cache-write cost |",
        "|---|---|---|---|---|",
    ]
    for r in by_model.itertuples(index=False):
        lines.append(
            f"| {md_escape(r.model, 40)} | {r.flows} | {_usd(r.cost_usd)} "
            f"| {_usd(r.cache_savings_usd)} | {_usd(r.cache_write_cost_usd)} |"
        )
    lines += ["", f"## Slowest turns (top {slow_n})", ""]
    slow = slowest(df, slow_n) if df["latency_ms"].notna().any() else pd.DataFrame()
    if slow.empty:
        lines.append("No completed turns.")
    else:
        lines += [
            "| flow | model | latency | cause | detail | outlier |",
            "|---|---|---|---|---|---|",
        ]
        for r in slow.itertuples(index=False):
            lines.append(
                f"| {md_escape(r.id, 20)} | {md_escape(r.model, 40)} | {_ms(r.latency_ms)} "
                f"| {md_escape(r.cause, 30)} | {md_escape(r.detail, 120)} "
                f"| {'yes' if r.outlier else ''} |"
            )
    lines += ["", "## Errors", ""]
    errs = df[failed.to_numpy()]
    if errs.empty:
        lines.append("None.")
    else:
        for r in errs.itertuples(index=False):
            flow = store.get(r.id)
            msg = flow.error.message if flow is not None and flow.error else ""
            lines.append(
                f"- {r.timestamp:%H:%M:%S} {md_escape(r.id, 20)} {md_escape(r.model, 40)}: "
                f"{md_escape(r.error_type or r.status_code, 40)} {md_escape(msg, 120)}"
            )
    return Report("\n".join(lines) + "\n")

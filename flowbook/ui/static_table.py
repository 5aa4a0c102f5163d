"""The flow table as plain HTML: what a notebook shows where widgets do not render (nbconvert
HTML, GitHub, a front end without the widget manager). Every value is escaped."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

MAX_ROWS = 50

HEAD = ["time", "provider", "model", "state", "status", "latency", "TTFT", "tokens in",
        "tokens out", "cost", "preview", "★"]  # fmt: skip


def _num(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return format(v, fmt)


def _time(ms: float | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_rows(rows: list[dict[str, Any]], total: int, title: str = "flowbook flows") -> str:
    """HTML for page rows (as ``views.page_table(...).to_pylist()``), ``total`` rows in all."""
    cells = []
    for r in rows:
        cost = r.get("cost_usd")
        values = [
            _time(r.get("time_ms")),
            r.get("provider") or "",
            r.get("model") or "",
            r.get("state") or "",
            _num(r.get("status"), "d"),
            _num(r.get("latency_ms"), ",.0f") + (" ms" if r.get("latency_ms") is not None else ""),
            _num(r.get("ttft_ms"), ",.0f") + (" ms" if r.get("ttft_ms") is not None else ""),
            _num(r.get("tokens_in"), ",.0f"),
            _num(r.get("tokens_out"), ",.0f"),
            "" if cost is None else f"${cost:.4f}",  # unknown price: blank, never $0
            (r.get("preview") or "")[:120],
            "★" if r.get("bookmarked") else "",
        ]
        cells.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>")
    shown = len(rows)
    note = f"{total:,} flows" + (f" (first {shown} shown)" if total > shown else "")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEAD)
    return (
        f'<div class="fb-static-table"><p><strong>{html.escape(title)}</strong>: {note}</p>'
        f'<table border="1" style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table></div>"
    )


def render_page(table: pa.Table, total: int, title: str = "flowbook flows") -> str:
    """HTML for an Arrow page (``views.PAGE_SCHEMA``)."""
    return render_rows(table.slice(0, MAX_ROWS).to_pylist(), total, title)


__all__ = ["MAX_ROWS", "render_page", "render_rows"]

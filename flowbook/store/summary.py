"""The summary row: one flat record per flow, the columns of ``fb.flows()`` (DESIGN §3).

The summary is what the table, filters, stats and charts read; it is small (a few hundred bytes a
flow) so it is kept for every flow, in memory and in the SQLite index, while full flows live in an
LRU and on disk.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from flowbook.model import FlowState, LLMFlow

# Column name -> pandas dtype. Order is the DataFrame's column order.
STRING = "string[pyarrow]"
COLUMNS: dict[str, str] = {
    "id": STRING,
    "timestamp": "datetime64[ns, UTC]",
    "provider": STRING,
    "api": STRING,
    "model": STRING,
    "state": STRING,
    "status_code": "Int64",
    "method": STRING,
    "host": STRING,
    "path": STRING,
    "stream": "bool",
    "input_tokens": "Int64",
    "output_tokens": "Int64",
    "cache_read_tokens": "Int64",
    "cache_write_tokens": "Int64",
    "reasoning_tokens": "Int64",
    "total_tokens": "Int64",
    "usage_source": STRING,
    "cost_usd": "float64",
    "latency_ms": "float64",
    "ttft_ms": "float64",
    "output_tokens_per_s": "float64",
    "request_bytes": "Int64",
    "response_bytes": "Int64",
    "tool_calls": "Int64",
    "has_thinking": "bool",
    "stop_reason": STRING,
    "error_type": STRING,
    "session": STRING,
    "bookmarked": "bool",
    "tags": STRING,
    "client": STRING,
    "preview": STRING,
}

TEXT_COLUMNS = [c for c, t in COLUMNS.items() if t == STRING]
PREVIEW_CHARS = 160


def _preview(flow: LLMFlow) -> str:
    """The last user message, shortened: what a row shows at a glance."""
    for m in reversed(flow.request.messages):
        if m.role == "user":
            text = " ".join(m.plain_text().split())
            if text:
                return text[:PREVIEW_CHARS]
    if flow.response and flow.response.text:
        return " ".join(flow.response.text.split())[:PREVIEW_CHARS]
    return ""


def summary_row(flow: LLMFlow) -> dict[str, Any]:
    """Flatten one flow into the summary columns (Python scalars; None for unknown)."""
    resp = flow.response
    usage = resp.usage if resp else None
    ts = flow.timestamps
    latency = ts.latency_ms
    ttft = ts.ttft_ms
    out_tps: float | None = None
    if usage and usage.output and ts.completed:
        start = ts.first_token or ts.first_byte
        if start and ts.completed > start:
            out_tps = usage.output / (ts.completed - start)
        elif latency:
            out_tps = usage.output / (latency / 1000.0)
    cost = flow.metadata.cost_usd
    return {
        "id": flow.id,
        "timestamp": ts.created,
        "provider": flow.metadata.provider,
        "api": flow.metadata.api,
        "model": flow.model,
        "state": str(flow.state),
        "status_code": resp.status_code if resp and resp.status_code else None,
        "method": flow.request.method,
        "host": flow.request.host,
        "path": flow.request.path,
        "stream": bool(flow.request.stream),
        "input_tokens": usage.input if usage and usage.source != "missing" else None,
        "output_tokens": usage.output if usage and usage.source != "missing" else None,
        "cache_read_tokens": usage.cache_read if usage and usage.source != "missing" else None,
        "cache_write_tokens": usage.cache_write if usage and usage.source != "missing" else None,
        "reasoning_tokens": usage.reasoning if usage and usage.source != "missing" else None,
        "total_tokens": usage.total if usage and usage.source != "missing" else None,
        "usage_source": usage.source if usage else "missing",
        "cost_usd": cost if cost is not None and not math.isnan(cost) else None,
        "latency_ms": latency,
        "ttft_ms": ttft,
        "output_tokens_per_s": out_tps,
        "request_bytes": flow.request.size,
        "response_bytes": resp.size if resp else None,
        "tool_calls": len(resp.tool_calls) if resp else 0,
        "has_thinking": bool(resp and resp.thinking),
        "stop_reason": resp.stop_reason if resp else None,
        "error_type": str(flow.error.type) if flow.error else None,
        "session": flow.metadata.session,
        "bookmarked": flow.annotations.bookmarked,
        "tags": ",".join(flow.annotations.tags),
        "client": flow.metadata.client,
        "preview": _preview(flow),
    }


def empty_frame() -> pd.DataFrame:
    return frame_from_rows([])


def frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build the typed DataFrame from summary rows (timestamps as epoch seconds)."""
    return frame_from_columns({col: [r.get(col) for r in rows] for col in COLUMNS})


def row_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    """A summary row as a tuple in COLUMNS order: a third of a dict's memory per flow."""
    return tuple(row.get(col) for col in COLUMNS)


def frame_from_tuples(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Build the typed DataFrame from ``row_tuple`` rows."""
    if not rows:
        return frame_from_columns({col: [] for col in COLUMNS})
    return frame_from_columns(
        dict(zip(COLUMNS, (list(c) for c in zip(*rows, strict=True)), strict=True))
    )


def frame_from_columns(values: dict[str, list[Any]]) -> pd.DataFrame:
    """Build the typed DataFrame from one list of Python values per column."""
    data: dict[str, Any] = {}
    for col, dtype in COLUMNS.items():
        col_values = values[col]
        if col == "timestamp":
            data[col] = pd.to_datetime(
                pd.Series(col_values, dtype="float64"), unit="s", utc=True
            ).astype(dtype)
        elif dtype == "bool":
            data[col] = pd.Series([bool(v) for v in col_values], dtype="bool")
        elif dtype == "float64":
            data[col] = pd.Series(
                [float("nan") if v is None else v for v in col_values], dtype="float64"
            )
        else:
            data[col] = pd.Series(col_values, dtype=dtype)
    return pd.DataFrame(data)


def is_final_state(state: str) -> bool:
    return FlowState(state).is_final

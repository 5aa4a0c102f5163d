"""The summary schema: one flat row per flow, the columns of ``fb.flows()``, and its frame builder.

This module sits below both the store and the filters (neither imports the other for it). The
summary is what the table, filters, stats and charts read; it is small (a few hundred bytes a
flow) so it is kept for every flow, in memory and in the SQLite index, while full flows live in an
LRU and on disk. See docs/architecture.md.

``FLOW_LINE_VERSION`` is the format version written into every stored JSONL line (``"v"``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from flowbook.model import FlowState, LLMFlow

# The version of a stored flow line (``{"v": 1, ...LLMFlow.to_dict()}``); lines written before
# versioning have no "v" and the same layout, so they read as version 0.
FLOW_LINE_VERSION = 1

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
    # Derived by the session tracker (flowbook.grouping.tracker), filled in by the store's
    # enricher on every frame: the conversation a flow belongs to, its place in it, and alerts.
    "thread_id": STRING,
    "turn": "Int64",
    "parent_id": STRING,
    "alert": STRING,
}
# Columns whose values come from the sessions file, not from the flow itself.
DERIVED_COLUMNS = ("thread_id", "turn", "parent_id", "alert")

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
        "thread_id": None,
        "turn": None,
        "parent_id": None,
        "alert": None,
    }


def empty_frame() -> pd.DataFrame:
    """The typed summary frame with no rows."""
    return frame_from_columns({col: [] for col in COLUMNS})


def frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build the typed DataFrame from ``summary_row`` dicts (timestamps as epoch seconds)."""
    return frame_from_columns({col: [r.get(col) for r in rows] for col in COLUMNS})


def row_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    """A summary row as a tuple in COLUMNS order: a third of a dict's memory per flow."""
    return tuple(row.get(col) for col in COLUMNS)


def frame_from_tuples(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Build the typed DataFrame from ``row_tuple`` rows."""
    if not rows:
        return empty_frame()
    return frame_from_columns(
        dict(zip(COLUMNS, (list(c) for c in zip(*rows, strict=True)), strict=True))
    )


def _int_array(values: list[Any]) -> pd.arrays.IntegerArray:
    arr = pa.array(values, type=pa.int64())
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    data = arr.fill_null(0).to_numpy(zero_copy_only=False)
    return pd.arrays.IntegerArray(np.asarray(data, dtype="int64"), np.asarray(mask, dtype=bool))


def _float_array(values: list[Any]) -> np.ndarray:
    return np.asarray(
        pa.array(values, type=pa.float64()).to_numpy(zero_copy_only=False), dtype="float64"
    )


def frame_from_columns(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The typed summary frame (dtypes of ``COLUMNS``) from one list of Python values per column.

    The one frame builder: rows, tuples, the SQLite index and the snapshot all come through here.
    It goes through Arrow, which converts a list in C instead of checking each value in Python
    (several times faster for a million rows).
    """
    data: dict[str, Any] = {}
    n = len(next(iter(columns.values()), []))
    for col, dtype in COLUMNS.items():
        # A column a source does not have (an index or snapshot written before the column
        # existed) is unknown for all its rows.
        values = columns[col] if col in columns else [None] * n
        if col == "timestamp":
            secs = pd.Series(_float_array(values), dtype="float64")
            data[col] = pd.to_datetime(secs, unit="s", utc=True).astype(dtype)
        elif dtype == "bool":
            data[col] = pd.Series(np.asarray([bool(v) for v in values], dtype=bool), dtype="bool")
        elif dtype == "float64":
            data[col] = pd.Series(_float_array(values), dtype="float64")
        elif dtype == "Int64":
            data[col] = pd.Series(_int_array(values), dtype="Int64")
        else:
            arr = pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
            data[col] = pd.Series(arr).astype(dtype)
    return pd.DataFrame(data)


def is_final_state(state: str) -> bool:
    """Whether a summary row's ``state`` is one a flow ends in."""
    return FlowState(state).is_final

"""The keys of the filter language and the summary columns behind them.

Each key is defined once, as a column (or a composition of columns) of the summary; the
per-flow evaluator reads the same value from ``summary_row(flow)``, so the two evaluators cannot
drift apart. Flags are defined as a pair of functions (frame -> mask, row -> bool) side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Row = Mapping[str, Any]

# key -> summary column. "url" (host + path) and "tag" (the comma-joined tags column, matched
# tag by tag) are composed; see row_text().
TEXT_KEYS: dict[str, str] = {
    "model": "model",
    "provider": "provider",
    "api": "api",
    "state": "state",
    "method": "method",
    "host": "host",
    "path": "path",
    "url": "url",
    "client": "client",
    "session": "session",
    "tag": "tags",
    "stop": "stop_reason",
    "error": "error_type",
    "source": "usage_source",
    "id": "id",
    "preview": "preview",
}
TEXT_ALIASES = {
    "tags": "tag",
    "stop_reason": "stop",
    "error_type": "error",
    "usage_source": "source",
    "domain": "host",
}

# key -> (summary column, is a duration in ms). "bytes" is request + response bytes.
NUM_KEYS: dict[str, tuple[str, bool]] = {
    "tokens": ("total_tokens", False),
    "input": ("input_tokens", False),
    "output": ("output_tokens", False),
    "cache_read": ("cache_read_tokens", False),
    "cache_write": ("cache_write_tokens", False),
    "reasoning": ("reasoning_tokens", False),
    "cost": ("cost_usd", False),
    "latency": ("latency_ms", True),
    "ttft": ("ttft_ms", True),
    "tps": ("output_tokens_per_s", False),
    "bytes": ("bytes", False),
    "request_bytes": ("request_bytes", False),
    "response_bytes": ("response_bytes", False),
    "status": ("status_code", False),
    "tool_calls": ("tool_calls", False),
}
NUM_ALIASES = {
    "total_tokens": "tokens",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache_read",
    "cache_write_tokens": "cache_write",
    "reasoning_tokens": "reasoning",
    "cost_usd": "cost",
    "latency_ms": "latency",
    "ttft_ms": "ttft",
    "output_tokens_per_s": "tps",
    "status_code": "status",
    "code": "status",
}

# Keys answered from the full flow, not the summary.
FLOW_TEXT_KEYS = ("content", "request", "response", "tool")


def tag_list(joined: str | None) -> list[str]:
    """The tags of a summary row (stored comma-joined)."""
    return [t for t in (joined or "").split(",") if t]


def row_text(row: Row, key: str) -> str | None:
    """The value a text key reads from a summary row (None when unknown)."""
    if key == "url":
        return (row.get("host") or "") + (row.get("path") or "")
    value = row.get(TEXT_KEYS[key])
    return None if value is None or value is pd.NA else str(value)


def row_number(row: Row, key: str) -> float | None:
    """The value a numeric key reads from a summary row (None when unknown)."""
    column = NUM_KEYS[key][0]
    if column == "bytes":
        return float((row.get("request_bytes") or 0) + (row.get("response_bytes") or 0))
    value = row.get(column)
    if value is None or value is pd.NA:
        return None
    return float(value)


def frame_number(df: pd.DataFrame, key: str) -> np.ndarray:
    """The column a numeric key reads, as float64 with NaN for unknown."""
    column = NUM_KEYS[key][0]
    if column == "bytes":
        req = df["request_bytes"].to_numpy(dtype="float64", na_value=np.nan)
        resp = df["response_bytes"].to_numpy(dtype="float64", na_value=np.nan)
        return np.nan_to_num(req, nan=0.0) + np.nan_to_num(resp, nan=0.0)
    return df[column].to_numpy(dtype="float64", na_value=np.nan)


@dataclass(frozen=True)
class Flag:
    """A yes/no property: ``frame`` computes it for a whole DataFrame, ``row`` for one row."""

    frame: Callable[[pd.DataFrame], np.ndarray]
    row: Callable[[Row], bool]
    help: str


def _eq(column: str, value: str) -> Flag:
    return Flag(
        lambda df: (df[column] == value).to_numpy(dtype=bool, na_value=False),
        lambda r: r.get(column) == value,
        f"{column} is {value}",
    )


def _bool(column: str, help: str) -> Flag:
    return Flag(
        lambda df: df[column].to_numpy(dtype=bool, na_value=False),
        lambda r: bool(r.get(column)),
        help,
    )


def _positive(*columns: str, help: str) -> Flag:
    def frame(df: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(df), dtype=bool)
        for c in columns:
            out |= df[c].to_numpy(dtype="float64", na_value=0.0) > 0
        return out

    return Flag(frame, lambda r: any((r.get(c) or 0) > 0 for c in columns), help)


def _present(column: str, help: str) -> Flag:
    return Flag(
        lambda df: df[column].notna().to_numpy(dtype=bool),
        lambda r: _known(r.get(column)),
        help,
    )


def _known(value: Any) -> bool:
    return not (value is None or value is pd.NA or (isinstance(value, float) and value != value))


def _is_error_frame(df: pd.DataFrame) -> np.ndarray:
    state = (df["state"] == "error").to_numpy(dtype=bool, na_value=False)
    return df["error_type"].notna().to_numpy(dtype=bool) | state


_ERROR = Flag(
    _is_error_frame,
    lambda r: r.get("error_type") is not None or r.get("state") == "error",
    "the flow failed (error_type set or state error)",
)
_BOOKMARKED = _bool("bookmarked", "bookmarked (starred)")

FLAGS: dict[str, Flag] = {
    "is:bookmarked": _BOOKMARKED,
    "is:starred": _BOOKMARKED,
    "is:error": _ERROR,
    "is:stream": _bool("stream", "the request asked for a streamed response"),
    "is:streaming": _eq("state", "streaming"),
    "is:completed": _eq("state", "completed"),
    "is:pending": _eq("state", "pending"),
    "is:intercepted": _eq("state", "intercepted"),
    "is:cancelled": _eq("state", "cancelled"),
    "is:estimated": _eq("usage_source", "estimated"),
    "is:reported": _eq("usage_source", "reported"),
    "has:thinking": _bool("has_thinking", "the response has thinking/reasoning text"),
    "has:cache": _positive(
        "cache_read_tokens", "cache_write_tokens", help="cache read or write tokens > 0"
    ),
    "has:cost": _present("cost_usd", "the price is known (cost_usd not NaN)"),
    "has:error": _ERROR,
    "has:tool_calls": _positive("tool_calls", help="the model called at least one tool"),
    "has:usage": Flag(
        lambda df: (df["usage_source"].notna() & (df["usage_source"] != "missing")).to_numpy(
            dtype=bool, na_value=False
        ),
        lambda r: r.get("usage_source") not in (None, "missing"),
        "token usage is reported or estimated",
    ),
    "has:response": _present("response_bytes", "a response arrived (mitmproxy ~s)"),
    "has:alert": Flag(
        lambda df: (
            df["alert"].notna() & (df["alert"] != "")
            if "alert" in df
            else pd.Series(False, index=df.index)
        ).to_numpy(dtype=bool, na_value=False),
        lambda r: bool(r.get("alert")),
        "a threshold marked the flow (alert column: latency, tokens, cost, error)",
    ),
    # mitmproxy's ~q: a request that has no response (yet).
    "~q": Flag(
        lambda df: df["response_bytes"].isna().to_numpy(dtype=bool),
        lambda r: not _known(r.get("response_bytes")),
        "request without a response",
    ),
}
FLAG_ALIASES = {
    "is:failed": "is:error",
    "is:marked": "is:bookmarked",
    "has:tool_call": "has:tool_calls",
}
# Flags answered from the full flow.
FLOW_FLAGS = {"has:tools": "has_tools"}

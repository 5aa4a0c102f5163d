"""Thresholds that mark a flow as an alert: slow, big, expensive or failed.

The ``alert`` column of ``fb.flows()`` (and the ``has:alert`` filter) is computed from the summary
with the thresholds in force when you look, so changing a threshold re-marks the history too. The
reasons are comma-joined: ``latency``, ``tokens``, ``cost``, ``error``. A threshold of 0 is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

REASONS = ("latency", "tokens", "cost", "error")


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds (0 turns one off). Defaults: 5 s and 10,000 tokens, as the reference."""

    latency_s: float = 5.0
    tokens: int = 10_000
    cost_usd: float = 1.0
    errors: bool = True

    @classmethod
    def from_settings(cls, get: Any) -> Thresholds:
        """From a settings getter (``ConfigManager.get``)."""
        return cls(
            latency_s=float(get("alert_latency_s")),
            tokens=int(get("alert_tokens")),
            cost_usd=float(get("alert_cost_usd")),
            errors=bool(get("alert_on_error")),
        )


def row_alerts(row: dict[str, Any], t: Thresholds) -> list[str]:
    """The alert reasons of one summary row (``flowbook.schema.summary_row``)."""

    def num(key: str) -> float:
        v = row.get(key)
        return float("nan") if v is None or v is pd.NA else float(v)

    out = []
    if t.latency_s > 0 and num("latency_ms") >= t.latency_s * 1000:
        out.append("latency")
    if t.tokens > 0 and num("total_tokens") >= t.tokens:
        out.append("tokens")
    if t.cost_usd > 0 and num("cost_usd") >= t.cost_usd:
        out.append("cost")
    if t.errors and (row.get("error_type") is not None or row.get("state") == "error"):
        out.append("error")
    return out


# Every combination of reasons, indexed by its bit mask (bit i = REASONS[i]).
_LABELS = pa.array(
    [
        ",".join(r for i, r in enumerate(REASONS) if mask >> i & 1) or None
        for mask in range(1 << len(REASONS))
    ],
    type=pa.large_string(),
)


def frame_alerts(df: pd.DataFrame, t: Thresholds) -> pd.Series:
    """The ``alert`` column for a summary frame: comma-joined reasons, NA when none.

    A bit mask per row, mapped through a table of the 16 combinations (no loop over rows).
    """

    def col(name: str) -> np.ndarray:
        return df[name].to_numpy(dtype="float64", na_value=np.nan)

    mask = np.zeros(len(df), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        if t.latency_s > 0:
            mask |= (col("latency_ms") >= t.latency_s * 1000).astype(np.int64)
        if t.tokens > 0:
            mask |= (col("total_tokens") >= t.tokens).astype(np.int64) << 1
        if t.cost_usd > 0:
            mask |= (col("cost_usd") >= t.cost_usd).astype(np.int64) << 2
    if t.errors:
        state = (df["state"] == "error").to_numpy(dtype=bool, na_value=False)
        failed = df["error_type"].notna().to_numpy(dtype=bool) | state
        mask |= failed.astype(np.int64) << 3
    labels = pc.take(_LABELS, pa.array(mask))
    return pd.Series(pd.arrays.ArrowStringArray(labels), index=df.index, name="alert").astype(
        "string[pyarrow]"
    )


def describe(reasons: list[str], row: dict[str, Any], t: Thresholds) -> str:
    """One line saying why a flow is an alert, for notifications and reports."""
    bits = []
    for r in reasons:
        if r == "latency":
            bits.append(f"latency {row['latency_ms'] / 1000:.1f} s ≥ {t.latency_s:g} s")
        elif r == "tokens":
            bits.append(f"{int(row['total_tokens']):,} tokens ≥ {t.tokens:,}")
        elif r == "cost":
            bits.append(f"cost ${row['cost_usd']:.4f} ≥ ${t.cost_usd:g}")
        elif r == "error":
            bits.append(f"error {row.get('error_type') or row.get('status_code')}")
    return "; ".join(bits)

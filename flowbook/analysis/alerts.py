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


def frame_alerts(df: pd.DataFrame, t: Thresholds) -> pd.Series:
    """The ``alert`` column for a summary frame: comma-joined reasons, NA when none."""
    n = len(df)
    flags: list[np.ndarray] = []

    def col(name: str) -> np.ndarray:
        return df[name].to_numpy(dtype="float64", na_value=np.nan)

    with np.errstate(invalid="ignore"):
        flags.append(
            col("latency_ms") >= t.latency_s * 1000 if t.latency_s > 0 else np.zeros(n, bool)
        )
        flags.append(col("total_tokens") >= t.tokens if t.tokens > 0 else np.zeros(n, bool))
        flags.append(col("cost_usd") >= t.cost_usd if t.cost_usd > 0 else np.zeros(n, bool))
    if t.errors:
        state = (df["state"] == "error").to_numpy(dtype=bool, na_value=False)
        flags.append(df["error_type"].notna().to_numpy(dtype=bool) | state)
    else:
        flags.append(np.zeros(n, bool))
    stacked = np.vstack(flags) if n else np.zeros((len(REASONS), 0), bool)
    any_alert = stacked.any(axis=0)
    values: list[str | None] = [None] * n
    for i in np.flatnonzero(any_alert):
        values[i] = ",".join(r for r, hit in zip(REASONS, stacked[:, i], strict=True) if hit)
    return pd.Series(pd.array(values, dtype="string[pyarrow]"), index=df.index, name="alert")


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

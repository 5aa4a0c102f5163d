"""Per-group statistics over the summary DataFrame (``fb.stats``).

Everything is one ``groupby`` pass per kind of aggregate (counts/sums, quantiles), so a million
rows take well under a second. Group keys become ordinary columns at the front; rows are sorted
by ``count``, largest first (time buckets: oldest first).

* ``success_rate`` / ``error_rate`` are shares of the *finished* flows of a group (completed,
  error, cancelled), so flows still pending or streaming do not drag them down; NaN when none has
  finished. A completed flow with an ``error_type`` (an in-stream error) counts as an error.
* ``cost_usd`` sums the known costs; it is NaN when no flow of the group has a known cost, never
  0. ``cost_known_share`` says how many flows had one.
* ``estimated_share`` is the share of flows whose usage flowbook estimated (``usage_source``).
* ``by`` takes any summary column (or a list of them), ``"hour"`` / ``"day"`` for time buckets of
  ``timestamp``, or None for one overall row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIME_BUCKETS = {"minute": "min", "hour": "h", "day": "D", "week": "W"}
TOKEN_COLUMNS = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
]
STAT_COLUMNS = [
    "count",
    "success_rate",
    "error_rate",
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "ttft_p50",
    "ttft_p95",
    "output_tokens_per_s",
    *TOKEN_COLUMNS,
    "cost_usd",
    "cost_known_share",
    "estimated_share",
]
_FINAL_STATES = ["completed", "error", "cancelled"]
_OVERALL = "__all__"


def _keys(df: pd.DataFrame, by: str | list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """Add bucket columns for time keys; return the frame to group and the key names."""
    names = [] if by is None else [by] if isinstance(by, str) else list(by)
    keys: dict[str, pd.Series] = {}
    for name in names:
        if name in TIME_BUCKETS and name not in df.columns:
            keys[name] = df["timestamp"].dt.floor(TIME_BUCKETS[name])
        elif name in df.columns:
            keys[name] = df[name]
        else:
            raise KeyError(f"stats: unknown group key {name!r}")
    if not names:
        keys[_OVERALL] = pd.Series(0, index=df.index)
    return pd.DataFrame(keys, index=df.index), names


def _empty(names: list[str]) -> pd.DataFrame:
    cols = {n: pd.Series(dtype="object") for n in names}
    cols.update({c: pd.Series(dtype="float64") for c in STAT_COLUMNS})
    cols["count"] = pd.Series(dtype="int64")
    for c in TOKEN_COLUMNS:
        cols[c] = pd.Series(dtype="int64")
    return pd.DataFrame(cols)


def stats(df: pd.DataFrame, by: str | list[str] | None = "model") -> pd.DataFrame:
    """Aggregate the summary DataFrame of ``fb.flows()`` into one row per group.

    Columns: the group keys, then :data:`STAT_COLUMNS`. Missing key values (a flow with no model)
    form their own group.
    """
    key_frame, names = _keys(df, by)
    if df.empty:
        return _empty(names)
    key_cols = list(key_frame.columns)

    state = df["state"].astype("string")
    has_error = df["error_type"].notna()
    finished = state.isin(_FINAL_STATES).fillna(False)
    work = pd.DataFrame(
        {
            "_finished": finished.astype("int64"),
            "_ok": (finished & state.eq("completed").fillna(False) & ~has_error).astype("int64"),
            "_err": (finished & (state.eq("error").fillna(False) | has_error)).astype("int64"),
            "_cost": df["cost_usd"].astype("float64"),
            "_cost_known": df["cost_usd"].notna().astype("int64"),
            "_estimated": df["usage_source"].eq("estimated").fillna(False).astype("int64"),
            "_latency": df["latency_ms"].astype("float64"),
            "_ttft": df["ttft_ms"].astype("float64"),
            "_tps": df["output_tokens_per_s"].astype("float64"),
        },
        index=df.index,
    )
    for c in TOKEN_COLUMNS:
        work[c] = df[c].astype("float64").fillna(0.0)
    work = pd.concat([key_frame, work], axis=1)
    grouped = work.groupby(key_cols, dropna=False, sort=False, observed=True)

    sums = grouped[["_finished", "_ok", "_err", "_cost_known", "_estimated", *TOKEN_COLUMNS]].sum()
    out = pd.DataFrame(index=sums.index)
    out["count"] = grouped.size().astype("int64")
    fin = sums["_finished"].replace(0, np.nan)
    out["success_rate"] = sums["_ok"] / fin
    out["error_rate"] = sums["_err"] / fin

    for col, prefix, qs in (
        ("_latency", "latency", (0.5, 0.9, 0.95, 0.99)),
        ("_ttft", "ttft", (0.5, 0.95)),
    ):
        q = grouped[col].quantile(list(qs)).unstack()
        for p in qs:
            out[f"{prefix}_p{round(p * 100)}"] = q[p].reindex(out.index)
    out["output_tokens_per_s"] = grouped["_tps"].median()
    for c in TOKEN_COLUMNS:
        out[c] = sums[c].astype("int64")
    out["cost_usd"] = grouped["_cost"].sum(min_count=1)
    out["cost_known_share"] = sums["_cost_known"] / out["count"]
    out["estimated_share"] = sums["_estimated"] / out["count"]

    out = out.reset_index()
    if not names:
        out = out.drop(columns=[_OVERALL])
    elif any(n in TIME_BUCKETS for n in names):
        out = out.sort_values(names, kind="stable").reset_index(drop=True)
    else:
        out = out.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    return out[[*names, *STAT_COLUMNS]]

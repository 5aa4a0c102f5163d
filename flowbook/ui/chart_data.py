"""The aggregates behind ``fb.charts``: computed in the kernel from the summary DataFrame, so the
browser only ever receives a handful of numbers per group, never one point per stored flow
(except the TTFT scatter, capped at :data:`MAX_POINTS` most recent flows).

Unknown stays unknown: a cost bucket where no flow has a known price is NaN, never 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_POINTS = 5_000
METRICS = {"tokens": "total_tokens", "cost": "cost_usd"}
TOKEN_AXES = {"output": "output_tokens", "input": "input_tokens", "total": "total_tokens"}
MISSING_GROUP = "(none)"


def group_key(df: pd.DataFrame, by: str) -> pd.Series:
    """The grouping column as plain strings (missing values become ``(none)``)."""
    if by not in df.columns:
        import difflib

        close = difflib.get_close_matches(by, list(df.columns), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"cannot group by {by!r}: not a column of fb.flows().{hint}")
    return df[by].astype("string").fillna(MISSING_GROUP).astype(object)


def latency_stats(df: pd.DataFrame, by: str = "model") -> pd.DataFrame:
    """Per group: count, min, q1, median, q3, max and mean of ``latency_ms`` over the flows that
    succeeded (an instant 429 is not a latency sample; ``errors()`` shows those), sorted by group
    name."""
    key = group_key(df, by)
    lat = pd.to_numeric(df["latency_ms"], errors="coerce").astype(float)
    ok = lat.notna().to_numpy() & ~is_error(df)
    g = lat[ok].groupby(key[ok], sort=True)
    out = pd.DataFrame(
        {
            "count": g.count(),
            "min": g.min(),
            "q1": g.quantile(0.25),
            "median": g.median(),
            "q3": g.quantile(0.75),
            "max": g.max(),
            "mean": g.mean(),
        }
    )
    out.index.name = by
    return out


def ttft_points(
    df: pd.DataFrame, tokens: str = "output", by: str = "model", limit: int = MAX_POINTS
) -> pd.DataFrame:
    """One row per flow with both a TTFT and a token count (the ``limit`` most recent):
    ``id``, group, ``tokens``, ``ttft_ms``, oldest first."""
    if tokens not in TOKEN_AXES:
        raise ValueError(f"tokens must be one of {sorted(TOKEN_AXES)}, got {tokens!r}")
    key = group_key(df, by)
    x = pd.to_numeric(df[TOKEN_AXES[tokens]], errors="coerce").astype(float)
    y = pd.to_numeric(df["ttft_ms"], errors="coerce").astype(float)
    pts = pd.DataFrame(
        {"id": df["id"].astype(object), by: key, "tokens": x, "ttft_ms": y, "t": df["timestamp"]}
    )
    pts = pts[pts["tokens"].notna() & pts["ttft_ms"].notna()]
    pts = pts.sort_values("t", kind="stable").tail(limit)
    return pts.drop(columns="t").reset_index(drop=True)


def usage_series(
    df: pd.DataFrame, metric: str = "tokens", by: str = "model", freq: str = "1min"
) -> pd.DataFrame:
    """Sum of tokens (or cost) per time bucket (rows) and group (columns).

    A bucket where no flow of the group has a known value is NaN (an unknown price is not $0).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be 'tokens' or 'cost', got {metric!r}")
    try:
        pd.tseries.frequencies.to_offset(freq)
    except ValueError as exc:
        raise ValueError(
            f"freq {freq!r} is not a pandas frequency; try '10s', '1min', '5min', '1h' or '1D'"
        ) from exc
    key = group_key(df, by)
    values = pd.to_numeric(df[METRICS[metric]], errors="coerce").astype(float)
    bucket = df["timestamp"].dt.floor(freq)
    frame = pd.DataFrame({"bucket": bucket, by: key, "v": values})
    if frame.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="bucket"))
    summed = frame.groupby(["bucket", by], sort=True)["v"].sum(min_count=1)
    table = summed.unstack(by)
    table.columns.name = by
    return table


def is_error(df: pd.DataFrame) -> np.ndarray:
    """Flows that failed: state ``error`` or an error type (an in-stream error on a 200)."""
    state = df["state"].astype("string").fillna("")
    return ((state == "error") | df["error_type"].notna()).to_numpy(dtype=bool)


def error_counts(df: pd.DataFrame, by: str = "provider") -> pd.DataFrame:
    """Errors per group (rows, every group seen, 0 when it had none) and error type (columns),
    plus ``flows`` (all flows of the group) and ``error_rate``."""
    key = group_key(df, by)
    err = is_error(df)
    etype = df["error_type"].astype("string").fillna("other").astype(object)
    counts = pd.crosstab(key[err], etype[err]) if err.any() else pd.DataFrame()
    groups = sorted(set(key))
    table = counts.reindex(index=groups, fill_value=0).astype(int)
    table.columns.name = "error_type"
    table.index.name = by
    flows = key.value_counts().reindex(groups)
    table["flows"] = flows.to_numpy()
    errors = table.drop(columns="flows").sum(axis=1)
    table["error_rate"] = errors / table["flows"]
    return table

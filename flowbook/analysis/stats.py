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
  ``timestamp``, or None for one overall row. ``"session"`` counts a flow in each of its sessions.
* Latency is split into **queueing** (time to first byte/token, ``ttft_ms``: the request waiting
  and the prompt being read) and **generation** (the rest, ``latency_ms - ttft_ms``), as p50 and
  p95, with ``queue_share`` the share of all latency spent before the first byte.
* ``throughput_tps`` is output tokens per second of generation over the group (sum over sum,
  so long answers weigh more than in the median ``output_tokens_per_s``).
* ``errors_by_type`` lists the failed flows' error types with counts (``rate_limit=2, ...``).
* ``requests_per_min`` is the group's count over its time span; ``peak_rpm`` the most requests
  in any sliding window of ``window`` (default 60 s), scaled to a minute.
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
    "queue_p50",
    "queue_p95",
    "generation_p50",
    "generation_p95",
    "queue_share",
    "throughput_tps",
    "errors_by_type",
    "requests_per_min",
    "peak_rpm",
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
    cols["errors_by_type"] = pd.Series(dtype="object")
    for c in TOKEN_COLUMNS:
        cols[c] = pd.Series(dtype="int64")
    return pd.DataFrame(cols)


def stats(
    df: pd.DataFrame, by: str | list[str] | None = "model", *, window: str = "60s"
) -> pd.DataFrame:
    """Aggregate the summary DataFrame of ``fb.flows()`` into one row per group.

    Columns: the group keys, then :data:`STAT_COLUMNS`. Missing key values (a flow with no model)
    form their own group. ``window`` is the sliding window of ``peak_rpm`` (a pandas offset).
    """
    names_in = [] if by is None else [by] if isinstance(by, str) else list(by)
    if "session" in names_in and "session" in df.columns:
        from flowbook.analysis.sessions import explode_sessions

        df = explode_sessions(df)
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
    latency = work["_latency"]
    ttft = work["_ttft"].where(work["_ttft"] <= latency, latency)
    work["_gen"] = (latency - ttft).where(ttft.notna())
    work["_queue"] = ttft.where(latency.notna())
    work["_gen_s"] = work["_gen"] / 1000.0
    work["_out_timed"] = df["output_tokens"].astype("float64").where(work["_gen"] > 0)
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
    for col, prefix in (("_queue", "queue"), ("_gen", "generation")):
        q = grouped[col].quantile([0.5, 0.95]).unstack()
        out[f"{prefix}_p50"] = q[0.5].reindex(out.index)
        out[f"{prefix}_p95"] = q[0.95].reindex(out.index)
    queue_sum = grouped["_queue"].sum(min_count=1)
    total_sum = queue_sum + grouped["_gen"].sum(min_count=1)
    out["queue_share"] = queue_sum / total_sum.replace(0, np.nan)
    gen_s = grouped["_gen_s"].sum(min_count=1).where(lambda x: x > 0)
    out["throughput_tps"] = grouped["_out_timed"].sum(min_count=1) / gen_s
    out["errors_by_type"] = _errors_by_type(df, work, key_cols).reindex(out.index).fillna("")
    if "timestamp" in df.columns:
        rate_frame = pd.concat([key_frame, df["timestamp"].rename("_ts")], axis=1)
        rates = rate_frame.groupby(key_cols, dropna=False, sort=False, observed=True)["_ts"]
        span_min = (rates.max() - rates.min()).dt.total_seconds() / 60.0
        out["requests_per_min"] = (out["count"] / span_min.where(span_min > 0)).reindex(out.index)
        out["peak_rpm"] = rates.agg(lambda t: _peak_rpm(t, window)).reindex(out.index)
    else:
        out["requests_per_min"] = out["peak_rpm"] = np.nan

    out = out.reset_index()
    if not names:
        out = out.drop(columns=[_OVERALL])
    elif any(n in TIME_BUCKETS for n in names):
        out = out.sort_values(names, kind="stable").reset_index(drop=True)
    else:
        out = out.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    return out[[*names, *STAT_COLUMNS]]


def _errors_by_type(df: pd.DataFrame, work: pd.DataFrame, key_cols: list[str]) -> pd.Series:
    """``"rate_limit=2, server_error=1"`` per group (most frequent first)."""
    err = work["_err"] > 0
    if not err.any():
        return pd.Series(dtype="object")
    kind = df["error_type"].astype(object).where(df["error_type"].notna(), "error")
    kinds = pd.concat([work[key_cols], kind.rename("_kind")], axis=1)[err]
    counts = kinds.groupby([*key_cols, "_kind"], dropna=False, observed=True).size()

    def fmt(s: pd.Series) -> str:
        s = s.droplevel(list(range(len(key_cols)))).sort_values(ascending=False, kind="stable")
        return ", ".join(f"{k}={int(v)}" for k, v in s.items())

    return counts.groupby(level=list(range(len(key_cols))), dropna=False).apply(fmt)


def _peak_rpm(ts: pd.Series, window: str) -> float:
    """Most requests in any window of length ``window`` ending at a request, per minute."""
    t = ts.dropna().sort_values()
    if t.empty:
        return float("nan")
    width = pd.Timedelta(window)
    ones = pd.Series(1.0, index=pd.DatetimeIndex(t))
    peak = float(ones.rolling(width).sum().max())
    return peak * (pd.Timedelta("60s") / width)


def request_rate(df: pd.DataFrame, window: str = "60s", by: str | None = None) -> pd.DataFrame:
    """Requests per minute over a sliding ``window``, at each request's time (``fb.rate``).

    One row per flow: ``timestamp``, the group (``by``) if any, and ``rpm``.
    """
    width = pd.Timedelta(window)
    scale = pd.Timedelta("60s") / width
    cols = ["timestamp", *([by] if by else [])]
    frame = df[cols].dropna(subset=["timestamp"]).sort_values("timestamp")
    if frame.empty:
        return frame.assign(rpm=pd.Series(dtype="float64"))
    parts = []
    groups = frame.groupby(by, dropna=False, sort=False) if by else [(None, frame)]
    for _, g in groups:
        counts = pd.Series(1.0, index=pd.DatetimeIndex(g["timestamp"])).rolling(width).sum()
        parts.append(g.assign(rpm=counts.to_numpy() * scale))
    return pd.concat(parts).sort_values("timestamp").reset_index(drop=True)

"""Cost analysis: cost by session, thread, day or any column; prompt-cache savings; projection.

* **cache savings** of a flow: its cache-read tokens priced at the model's input rate minus
  what they really cost at the cache-read rate (what caching saved on that call);
* **cache-write cost**: the cache-write tokens at the cache-write rate, and the ``extra`` part of
  it (the surcharge over the input rate), so ``net_cache_savings_usd`` = savings − extra;
* **projection**: from ``fb.stats(by="hour")``, the cost (and requests, tokens) per hour over the
  observed span, carried to a day and a 30-day month at the current rate.

Rates come from ``flowbook.analysis.pricing.unit_prices``: price overrides first, then
genai-prices at the flow's date. Unknown prices give NaN, never 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowbook.analysis.pricing import unit_prices

COST_COLUMNS = [
    "flows",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "cache_savings_usd",
    "cache_write_cost_usd",
    "net_cache_savings_usd",
    "cost_without_cache_usd",
]
TIME_KEYS = {"hour": "h", "day": "D", "week": "W", "month": "MS"}


def _rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per-token input, cache-read and cache-write rates of each row (NaN when unknown)."""
    day = df["timestamp"].dt.floor("D")
    keys = pd.DataFrame(
        {"provider": df["provider"].astype(object), "model": df["model"].astype(object), "day": day}
    )
    table: dict[tuple[object, object, object], tuple[float, float, float]] = {}
    for prov, model, d in keys.drop_duplicates().itertuples(index=False):
        rates = None
        if isinstance(model, str) and model:
            ts = None if pd.isna(d) else d.timestamp() + 43200
            rates = unit_prices(prov if isinstance(prov, str) else "", model, ts)
        table[(prov, model, d)] = (
            (rates["input"], rates["cache_read"], rates["cache_write"])
            if rates
            else (np.nan, np.nan, np.nan)
        )
    looked = [table[k] for k in keys.itertuples(index=False, name=None)]
    arr = np.asarray(looked, dtype="float64").reshape(-1, 3)
    return pd.DataFrame(arr, columns=["input", "cache_read", "cache_write"], index=df.index)


def flow_costs(df: pd.DataFrame) -> pd.DataFrame:
    """Per flow: ``cost_usd``, ``cache_savings_usd``, ``cache_write_cost_usd`` and
    ``cache_write_extra_usd`` (the summary frame's index)."""
    rates = _rates(df)
    read = df["cache_read_tokens"].to_numpy(dtype="float64", na_value=0.0)
    write = df["cache_write_tokens"].to_numpy(dtype="float64", na_value=0.0)
    savings = read * (rates["input"] - rates["cache_read"]).to_numpy()
    write_cost = write * rates["cache_write"].to_numpy()
    extra = write * (rates["cache_write"] - rates["input"]).to_numpy()
    # No cache tokens: nothing saved or spent, even when the price is unknown.
    savings = np.where(read > 0, savings, 0.0)
    write_cost = np.where(write > 0, write_cost, 0.0)
    extra = np.where(write > 0, extra, 0.0)
    return pd.DataFrame(
        {
            "cost_usd": df["cost_usd"].astype("float64"),
            "cache_savings_usd": savings,
            "cache_write_cost_usd": write_cost,
            "cache_write_extra_usd": extra,
        },
        index=df.index,
    )


def cost_by(df: pd.DataFrame, by: str | list[str] | None = "session") -> pd.DataFrame:
    """Cost per group: ``session`` (a flow counts in each of its sessions), ``thread_id``,
    ``hour``/``day``/``week``/``month``, or any summary column; None for one total row.
    Sorted by cost, largest first (time buckets: oldest first)."""
    names = [] if by is None else [by] if isinstance(by, str) else list(by)
    if "session" in names:
        from flowbook.analysis.sessions import explode_sessions

        df = explode_sessions(df)
    costs = (
        flow_costs(df)
        if len(df)
        else pd.DataFrame(
            columns=[
                "cost_usd",
                "cache_savings_usd",
                "cache_write_cost_usd",
                "cache_write_extra_usd",
            ]
        )
    )
    work = pd.DataFrame(index=df.index)
    keys = []
    for n in names:
        if n in TIME_KEYS and n not in df.columns:
            work[n] = (
                df["timestamp"]
                .dt.tz_convert(None)
                .dt.to_period(TIME_KEYS[n].replace("MS", "M"))
                .dt.start_time.dt.tz_localize("UTC")
            )
        elif n in df.columns:
            work[n] = df[n]
        else:
            raise KeyError(f"cost_by: unknown group key {n!r}")
        keys.append(n)
    if not keys:
        work["_all"] = 0
        keys = ["_all"]
    for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        work[c] = df[c].astype("float64").fillna(0.0)
    for c in costs.columns:
        work[c] = costs[c].astype("float64")
    g = work.groupby(keys, dropna=False, sort=False)
    out = pd.DataFrame({"flows": g.size()})
    for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        out[c] = g[c].sum().astype("int64")
    out["cost_usd"] = g["cost_usd"].sum(min_count=1)
    out["cache_savings_usd"] = g["cache_savings_usd"].sum(min_count=1)
    out["cache_write_cost_usd"] = g["cache_write_cost_usd"].sum(min_count=1)
    out["net_cache_savings_usd"] = out["cache_savings_usd"] - g["cache_write_extra_usd"].sum(
        min_count=1
    )
    out["cost_without_cache_usd"] = out["cost_usd"] + out["net_cache_savings_usd"]
    out = out.reset_index()
    if names:
        if any(n in TIME_KEYS for n in names):
            out = out.sort_values(names, kind="stable")
        else:
            out = out.sort_values("cost_usd", ascending=False, na_position="last", kind="stable")
        return out.reset_index(drop=True)[[*names, *COST_COLUMNS]]
    return out[COST_COLUMNS]


def projection(hourly: pd.DataFrame, *, days_per_month: float = 30.0) -> pd.Series:
    """Carry ``fb.stats(by="hour")`` forward: per hour over the observed span (first to last
    hour, idle hours included), then per day and per month at that rate."""
    if "hour" not in hourly.columns:
        raise ValueError('projection() takes the output of fb.stats(by="hour")')
    if hourly.empty:
        return pd.Series(dtype="float64")
    hours = (hourly["hour"].max() - hourly["hour"].min()) / pd.Timedelta(hours=1) + 1
    cost = float(hourly["cost_usd"].sum(min_count=1))
    requests = float(hourly["count"].sum())
    tokens = float(hourly["total_tokens"].sum())
    per_hour = {"cost_usd": cost / hours, "requests": requests / hours, "tokens": tokens / hours}
    out = {"observed_hours": float(hours), "observed_cost_usd": cost}
    for k, v in per_hour.items():
        out[f"{k}_per_hour"] = v
        out[f"{k}_per_day"] = v * 24
        out[f"{k}_per_month"] = v * 24 * days_per_month
    return pd.Series(out, name="projection")

"""Per-session aggregates over the summary frame (``fb.sessions.list()``) and session explosion.

A flow may belong to several sessions, so the ``session`` column holds comma-joined names;
:func:`explode_sessions` gives one row per (flow, session) for grouping, and costs summed per
session then add up to more than the total when sessions overlap (each session's own bill).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def explode_sessions(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (flow, session): the ``session`` column split on commas (flows in no session
    keep one row with ``session`` NA)."""
    if df.empty:
        return df.copy()
    split = (
        df["session"]
        .astype(object)
        .map(lambda v: [s for s in str(v).split(",") if s] if isinstance(v, str) and v else [None])
    )
    out = df.drop(columns=["session"]).assign(session=split).explode("session")
    out["session"] = out["session"].astype("string[pyarrow]")
    return out[list(df.columns)].reset_index(drop=True)


def _join(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values.dropna() if str(v)}))


def session_table(meta: pd.DataFrame, members: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Aggregate each session's flows: counts, span, tokens, cost, errors, models, clients.

    ``meta`` has one row per session (name, kind, description, archived, created), ``members``
    (session, flow_id) pairs, ``frame`` the summary rows (enriched) of every stored flow.
    """
    cols = [
        "name", "kind", "description", "archived", "flows", "first", "last", "duration_s",
        "input_tokens", "output_tokens", "total_tokens", "cost_usd", "errors", "models", "clients",
    ]  # fmt: skip
    if meta.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    rows = members.merge(
        frame.drop(columns=["session"]), left_on="flow_id", right_on="id", how="inner"
    )
    out = meta.copy()
    out["archived"] = out["archived"].astype(bool)
    if rows.empty:
        agg = pd.DataFrame(index=pd.Index([], name="session"))
    else:
        failed = rows["error_type"].notna() | rows["state"].eq("error").fillna(False)
        rows = rows.assign(_err=failed.astype("int64"))
        g = rows.groupby("session", sort=False)
        agg = pd.DataFrame(
            {
                "flows": g.size(),
                "first": g["timestamp"].min(),
                "last": g["timestamp"].max(),
                "input_tokens": g["input_tokens"].sum(min_count=0),
                "output_tokens": g["output_tokens"].sum(min_count=0),
                "total_tokens": g["total_tokens"].sum(min_count=0),
                "cost_usd": g["cost_usd"].sum(min_count=1),
                "errors": g["_err"].sum(),
                "models": g["model"].agg(_join),
                "clients": g["client"].agg(_join),
            }
        )
    out = out.merge(agg, left_on="name", right_index=True, how="left")
    out["flows"] = out.get("flows", pd.Series(dtype="float64")).fillna(0).astype("int64")
    out["errors"] = out.get("errors", pd.Series(dtype="float64")).fillna(0).astype("int64")
    for c in ("input_tokens", "output_tokens", "total_tokens"):
        out[c] = out.get(c, pd.Series(dtype="float64")).fillna(0).astype("int64")
    for c in ("first", "last"):
        if c not in out:
            out[c] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    for c in ("models", "clients"):
        out[c] = out.get(c, pd.Series(dtype="object")).fillna("")
    if "cost_usd" not in out:
        out["cost_usd"] = np.nan
    out["duration_s"] = (out["last"] - out["first"]).dt.total_seconds()
    out = out.sort_values("last", ascending=False, na_position="last", kind="stable")
    return out.reset_index(drop=True)[cols]

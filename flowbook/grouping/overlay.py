"""The columns the session tracker adds to every summary frame, applied in Arrow.

``fb.flows()`` must stay fast on a million rows, so nothing here loops over rows in Python: the
per-flow values (sessions, thread, turn, parent) are kept as Arrow arrays keyed by flow id,
rebuilt only after they changed, and matched to the frame's ids with one hash look-up
(``pyarrow.compute.index_in``); alerts come from ``flowbook.analysis.alerts.frame_alerts``;
price overrides are numpy arithmetic per overridden model.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flowbook.analysis.alerts import Thresholds, frame_alerts
from flowbook.schema import COLUMNS, DERIVED_COLUMNS

Link = tuple[str | None, int | None, str | None]
DELTA_MAX = 5000
_DTYPES = {c: pd.api.types.pandas_dtype(COLUMNS[c]) for c in (*DERIVED_COLUMNS, "session")}


def _string_series(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    return pd.Series(pd.arrays.ArrowStringArray(arr), index=index).astype(COLUMNS["session"])


def _arrow_ids(df: pd.DataFrame) -> pa.Array:
    values = df["id"].array
    data = getattr(values, "_pa_array", None)
    if data is None:
        return pa.array(df["id"].astype(object).tolist(), type=pa.large_string())
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    return data.cast(pa.large_string())


class Overlay:
    """Per-flow derived values, kept as dicts (cheap updates) and Arrow arrays (cheap reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sessions: dict[str, str] = {}
        self.links: dict[str, Link] = {}
        self._built: dict[str, Any] | None = None
        # Ids changed since the arrays were built: patched row by row until there are many
        # (rebuilding the arrays costs O(all tracked flows), a patch O(changed ones)).
        self._delta: set[str] = set()

    def set(
        self, sessions: dict[str, str] | None = None, links: dict[str, Link] | None = None
    ) -> None:
        """Replace everything (a reload)."""
        with self._lock:
            if sessions is not None:
                self.sessions = sessions
            if links is not None:
                self.links = links
            self._built = None
            self._delta.clear()

    def update(
        self, sessions: dict[str, str] | None = None, links: dict[str, Link] | None = None
    ) -> None:
        """Change some flows' values."""
        with self._lock:
            self.sessions.update(sessions or {})
            self.links.update(links or {})
            if self._built is not None:
                self._delta.update(sessions or {})
                self._delta.update(links or {})
                if len(self._delta) > DELTA_MAX:
                    self._built = None
                    self._delta.clear()

    def _arrays(self) -> dict[str, Any]:
        # One key array for both kinds of values, so a frame needs one hash look-up.
        with self._lock:
            if self._built is None:
                self._delta.clear()
                keys = list(self.sessions)
                keys += [k for k in self.links if k not in self.sessions]
                none: Link = (None, None, None)
                triples = [self.links.get(k, none) for k in keys]
                self._built = {
                    "keys": pa.array(keys, type=pa.large_string()),
                    "has_sess": pa.array([k in self.sessions for k in keys], type=pa.bool_()),
                    "sess": pa.array(
                        [self.sessions.get(k) or None for k in keys], type=pa.large_string()
                    ),
                    "thread": pa.array([t[0] for t in triples], type=pa.large_string()),
                    "turn": pa.array([t[1] for t in triples], type=pa.int64()),
                    "parent": pa.array([t[2] for t in triples], type=pa.large_string()),
                }
            return self._built

    def apply(self, df: pd.DataFrame, thresholds: Thresholds, overrides: bool) -> pd.DataFrame:
        """A shallow copy of ``df`` with the derived columns filled in."""
        out = df.copy(deep=False)
        for col in DERIVED_COLUMNS:  # a frame from an older snapshot may lack them
            if col not in out.columns or out[col].dtype != _DTYPES[col]:
                values = out[col] if col in out.columns else pd.Series(None, index=out.index)
                out[col] = values.astype(object).where(values.notna(), None).astype(COLUMNS[col])
        arrays = self._arrays()
        if len(arrays["keys"]):
            pos = pc.index_in(_arrow_ids(out), value_set=arrays["keys"])
            # A flow the tracker knows takes its sessions from the file (none is none); others
            # keep what their own metadata says.
            known = pc.fill_null(pc.take(arrays["has_sess"], pos), False)
            taken = pc.take(arrays["sess"], pos)
            original = _arrow_ids_like(out["session"])
            out["session"] = _string_series(pc.if_else(known, taken, original), out.index)
            out["thread_id"] = _string_series(pc.take(arrays["thread"], pos), out.index)
            out["parent_id"] = _string_series(pc.take(arrays["parent"], pos), out.index)
            turn = pc.take(arrays["turn"], pos).to_pandas()
            out["turn"] = pd.Series(turn.to_numpy(), index=out.index).astype("Int64")
        self._patch(out)
        if overrides:
            out["cost_usd"] = reprice(out)
        out["alert"] = frame_alerts(out, thresholds)
        return out

    def _patch(self, out: pd.DataFrame) -> None:
        """Apply the values changed since the arrays were built (few rows)."""
        with self._lock:
            if not self._delta:
                return
            keys = list(self._delta)
            values = [(self.sessions.get(k), self.links.get(k)) for k in keys]
        pos = pc.index_in(_arrow_ids(out), value_set=pa.array(keys, type=pa.large_string()))
        hit = np.flatnonzero(pc.is_valid(pos).to_numpy(zero_copy_only=False))
        if not len(hit):
            return
        which = pos.to_numpy(zero_copy_only=False)[hit].astype(np.int64)
        for col, get in (
            ("session", lambda v: v[0]),
            ("thread_id", lambda v: v[1][0] if v[1] else None),
            ("turn", lambda v: v[1][1] if v[1] else None),
            ("parent_id", lambda v: v[1][2] if v[1] else None),
        ):
            new = [get(values[w]) for w in which]
            if col == "session":  # a flow without a membership entry keeps its own value
                keep = [values[w][0] is None for w in which]
                old = out[col].iloc[hit].tolist()
                new = [o if k else (n or None) for o, n, k in zip(old, new, keep, strict=True)]
            series = out[col].copy()
            series.iloc[hit] = pd.array(new, dtype=_DTYPES[col])
            out[col] = series


def _arrow_ids_like(col: pd.Series) -> pa.Array:
    data = getattr(col.array, "_pa_array", None)
    if data is None:
        return pa.array(col.astype(object).where(col.notna(), None).tolist(), pa.large_string())
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    return data.cast(pa.large_string())


def reprice(df: pd.DataFrame) -> pd.Series:
    """``cost_usd`` with price overrides applied to the rows whose model has one."""
    from flowbook.analysis.pricing import price_override

    cost = df["cost_usd"].to_numpy(dtype="float64", na_value=np.nan).copy()
    models = df["model"]
    for model in models.dropna().unique():
        rates = price_override(str(model))
        if rates is None:
            continue
        rows = (models == model).to_numpy(dtype=bool, na_value=False)

        def tok(c: str, rows: np.ndarray = rows) -> np.ndarray:
            return df[c].to_numpy(dtype="float64", na_value=np.nan)[rows]

        inp, out = tok("input_tokens"), tok("output_tokens")
        read = np.nan_to_num(tok("cache_read_tokens"))
        write = np.nan_to_num(tok("cache_write_tokens"))
        i_rate, o_rate = rates["input"], rates["output"]
        r_rate, w_rate = rates.get("cache_read", i_rate), rates.get("cache_write", i_rate)
        plain = np.maximum(np.nan_to_num(inp) - read - write, 0)
        value = (
            plain * i_rate + read * r_rate + write * w_rate + np.nan_to_num(out) * o_rate
        ) / 1e6
        value[np.isnan(inp) & np.isnan(out)] = np.nan
        cost[rows] = value
    return pd.Series(cost, index=df.index, name="cost_usd")

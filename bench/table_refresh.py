"""P7: the cost of a flow-table refresh with 1M flows stored vs 1k (target ≤ 1.1×).

A refresh is what the table does while traffic flows: the store's change signal brings a few
new and updated flows, the view merges them (``TableView.apply``) and the visible window is
encoded as Arrow IPC and pushed (``FlowTable.page``). Both stores are filled with the same kind
of synthetic summary rows (``fill_store``); the view is built once (that is the cost of choosing
a filter or sort, paid once, O(N)) and then each refresh is timed: 10 new flows plus 2 updates of
streaming flows, then the visible page of 60 rows. Reported: the median over many refreshes for
the default view (newest first) and for a view sorted by latency with a filter.

    python -m bench.table_refresh            # prints JSON
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from flowbook.schema import COLUMNS
from flowbook.store.memory import FlowStore

PROVIDERS = ["openai", "anthropic", "gemini", "openrouter", "ollama"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "deepseek-chat",
          "llama3.2"]  # fmt: skip
T0 = 1_767_225_600.0  # 2026-01-01
_POS = {c: i for i, c in enumerate(COLUMNS)}


def synthetic_columns(n: int, start: int = 0, seed: int = 7) -> dict[str, list[Any]]:
    """Summary values (Python lists per column, timestamps epoch seconds) for n flows."""
    rng = np.random.default_rng(seed + start)
    i = np.arange(start, start + n)
    prov = rng.integers(0, len(PROVIDERS), n)
    model = rng.integers(0, len(MODELS), n)
    status = np.where(rng.random(n) < 0.03, 429, 200)
    tin = rng.integers(20, 20_000, n)
    tout = rng.integers(1, 2_000, n)
    lat = rng.gamma(2.0, 600.0, n)
    cost = np.where(model % 5 == 4, np.nan, (tin * 2.5 + tout * 10) / 1e6)
    cols: dict[str, Any] = {c: [None] * n for c in COLUMNS}
    cols.update(
        id=[f"syn{k:010d}" for k in i.tolist()],
        timestamp=(T0 + i * 0.05).tolist(),
        provider=[PROVIDERS[k] for k in prov.tolist()],
        api=["chat"] * n,
        model=[MODELS[k] for k in model.tolist()],
        state=["completed"] * n,
        status_code=status.tolist(),
        method=["POST"] * n,
        host=["api.example.com"] * n,
        path=["/v1/chat/completions"] * n,
        stream=[True] * n,
        input_tokens=tin.tolist(),
        output_tokens=tout.tolist(),
        total_tokens=(tin + tout).tolist(),
        usage_source=["reported"] * n,
        cost_usd=[None if np.isnan(c) else c for c in cost.tolist()],
        latency_ms=lat.tolist(),
        ttft_ms=(lat * 0.2).tolist(),
        request_bytes=(tin * 4).tolist(),
        response_bytes=(tout * 4).tolist(),
        tool_calls=[0] * n,
        has_thinking=[False] * n,
        stop_reason=["stop"] * n,
        bookmarked=[False] * n,
        tags=[""] * n,
        preview=[f"synthetic question number {k}" for k in i.tolist()],
    )
    return cols


def fill_store(store: FlowStore, n: int, *, chunk: int = 200_000) -> None:
    """Put n synthetic summary rows into a memory store (no full flows), as fast as possible:
    rows as tuples, and the store's cached frame built once from columns."""
    from flowbook.schema import frame_from_columns

    frames = []
    for start in range(0, n, chunk):
        cols = synthetic_columns(min(chunk, n - start), start)
        rows = zip(*(cols[c] for c in COLUMNS), strict=True)
        with store._lock:
            for row in rows:
                store._rows[row[0]] = row
        frames.append(frame_from_columns(cols))
    frame = pd.concat(frames, ignore_index=True) if frames else None
    with store._lock:
        store._revision += 1
        store._frame, store._frame_rev = frame, store._revision
        store._dirty = set()
        store._full_rebuild = False


class _Source:
    """The table's store adapter over a bare FlowStore (no runtime, no file store)."""

    def __init__(self, store: FlowStore) -> None:
        self.store = store

    def frame(self, include_history: bool) -> pd.DataFrame:
        return self.store.frame()

    def rows(self, ids: Any) -> list[dict[str, Any]]:
        return [r for r in (self.store.row(i) for i in ids) if r is not None]

    def flow_source(self, include_history: bool) -> Any:
        return None

    def memory_flows(self, ids: Any) -> dict[str, Any]:
        return {}  # rows only: every new row goes through the filter's vectorised path


def _live_batch(store: FlowStore, n_new: int, next_i: int, updates: list[str]) -> set[str]:
    """n_new new streaming flows and updates of earlier ones, as the recorder would write."""
    cols = synthetic_columns(n_new, next_i)
    cols["state"] = ["streaming"] * n_new
    changed = set()
    with store._lock:
        for row in zip(*(cols[c] for c in COLUMNS), strict=True):
            store._rows[row[0]] = row
            changed.add(row[0])
        for fid in updates:  # a streaming flow completes: tokens and latency change
            cells = list(store._rows[fid])
            cells[_POS["state"]] = "completed"
            cells[_POS["output_tokens"]] = int(cells[_POS["output_tokens"]] or 0) + 50
            cells[_POS["latency_ms"]] = float(cells[_POS["latency_ms"]] or 0) + 900.0
            store._rows[fid] = tuple(cells)
            changed.add(fid)
        store._revision += 1
    return changed


class _Case:
    """One store and one view over it, refreshed round by round."""

    def __init__(self, n: int, filter_expr: str, sort_by: str, sort_order: str) -> None:
        from flowbook.ui.views import TableView, ipc_bytes

        self.n = n
        self.store = FlowStore(1000)
        fill_store(self.store, n)
        t = time.perf_counter()
        self.view = TableView(_Source(self.store), filter_expr, sort_by, sort_order)  # type: ignore[arg-type]
        self.build_ms = (time.perf_counter() - t) * 1000
        self.encode = ipc_bytes
        self.encode(self.view.page(0, 60))
        self.next_i = n
        self.streaming: list[str] = []
        self.times: list[float] = []

    def refresh(self) -> None:
        changed = _live_batch(self.store, 10, self.next_i, self.streaming[:2])
        self.streaming = [f"syn{k:010d}" for k in range(self.next_i, self.next_i + 10)]
        self.next_i += 10
        t = time.perf_counter()
        self.view.apply(frozenset(changed))
        self.encode(self.view.page(0, 60))
        self.times.append((time.perf_counter() - t) * 1000)

    def summary(self) -> dict[str, Any]:
        times = sorted(self.times)
        return {
            "n": self.n,
            "build_ms": round(self.build_ms, 1),
            "refresh_p50_ms": round(statistics.median(times), 3),
            "refresh_p90_ms": round(times[int(len(times) * 0.9)], 3),
            "rows_in_view": len(self.view),
        }


def measure_pair(
    small: int,
    big: int,
    *,
    rounds: int = 300,
    filter_expr: str = "",
    sort_by: str = "timestamp",
    sort_order: str = "desc",
) -> dict[str, Any]:
    """Refresh cost at ``small`` and ``big`` stored flows, rounds interleaved so that machine
    load affects both alike; the ratio of the medians is P7."""
    import gc

    a = _Case(small, filter_expr, sort_by, sort_order)
    b = _Case(big, filter_expr, sort_by, sort_order)
    for _ in range(20):  # warm-up
        a.refresh()
        b.refresh()
    a.times.clear()
    b.times.clear()
    gc.collect()
    gc.disable()  # a collection over a million row tuples would land in one random round
    try:
        for _ in range(rounds):
            a.refresh()
            b.refresh()
    finally:
        gc.enable()
    sa, sb = a.summary(), b.summary()
    return {
        "view": f"filter={filter_expr!r} sort={sort_by} {sort_order}",
        "small": sa,
        "big": sb,
        "ratio": round(sb["refresh_p50_ms"] / sa["refresh_p50_ms"], 3),
    }


def run(big: int = 1_000_000, small: int = 1_000, rounds: int = 300) -> dict[str, Any]:
    """P7 for the default view and a filtered, latency-sorted one."""
    cases = [
        measure_pair(small, big, rounds=rounds),
        measure_pair(small, big, rounds=rounds, filter_expr="status:200", sort_by="latency_ms"),
    ]
    return {"cases": cases, "rounds": rounds, "P7_ratio": max(c["ratio"] for c in cases)}


def rows_for_table(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for c in r["cases"]:
        a, b = c["small"], c["big"]
        rows.append((
            f"P7 table refresh {b['n']:,} vs {a['n']:,} flows ({c['view']})",
            f"{b['refresh_p50_ms']:.2f} / {a['refresh_p50_ms']:.2f} ms = {c['ratio']:.2f}x",
            "≤ 1.10x", "yes" if c["ratio"] <= 1.10 else "NO",
        ))  # fmt: skip
    return rows


if __name__ == "__main__":
    big = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(json.dumps(run(big), indent=2))

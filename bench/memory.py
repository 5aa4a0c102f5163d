"""P5: memory per flow kept, flowbook vs a list of mitmproxy flows (docs/architecture.md).

Each case runs in its own fresh interpreter and reports its RSS growth (``/proc/self/statm``)
after ``gc.collect()``, measured from a baseline taken after imports and a warm-up, divided by N:

* ``mitm``: a Python list of N ``mitmproxy.http.HTTPFlow`` (request + response with bodies,
  one client/server connection pair per 50 flows), which is what mitmweb's view keeps.
* ``flowstore``: flowbook's ``FlowStore`` after N ``put``s with the LRU full (``lru`` full
  flows) plus its cached summary DataFrame (``frame()``): what a session holds. **P5 ratio.**
* ``rows``: the summary row tuples alone (as ``FlowStore`` keeps them), and the typed summary
  DataFrame built from them (its size from ``memory_usage(deep=True)``, exact for Arrow columns).
* ``full``: ``lru`` full flowbook flows alone, per flow (the price of one LRU slot).

Traffic is ``bench.synthetic`` (the same exchanges for both sides).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.synthetic import connections, llm_flow, mitm_flow, specs

PAGE = os.sysconf("SC_PAGE_SIZE")
ROOT = Path(__file__).resolve().parent.parent


def rss() -> int:
    """Resident set size of this process in bytes (after a full collection)."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _warm_up() -> None:
    # Touch the generator and allocator once so the baseline includes their steady state.
    for s in specs(500, seed=99):
        llm_flow(s)
        mitm_flow(s, connections(s))


def case(name: str, n: int, lru: int, seed: int) -> dict[str, Any]:
    """Run one case in this process; RSS growth in bytes per flow kept."""
    from flowbook.schema import frame_from_tuples, row_tuple, summary_row
    from flowbook.store.memory import FlowStore

    _warm_up()
    base = rss()
    out: dict[str, Any] = {"case": name, "n": n}
    keep: Any
    if name == "mitm":
        keep, conns = [], None
        for s in specs(n, seed):
            if s.i % 50 == 0:
                conns = connections(s)
            keep.append(mitm_flow(s, conns))  # type: ignore[arg-type]
        out["body_bytes_per_flow"] = (
            sum(
                len(f.request.raw_content or b"") + len(f.response.raw_content or b"") for f in keep
            )
            / n
        )
    elif name == "flowstore":
        keep = FlowStore(max_flows_in_memory=lru)
        for s in specs(n, seed):
            keep.put(llm_flow(s))
        out["before_frame_bytes_per_flow"] = (rss() - base) / n
        frame = keep.frame()
        out["frame_bytes_per_flow"] = int(frame.memory_usage(deep=True).sum()) / n
        out["full_flows_in_lru"] = len(keep.flows())
        # With no widget connected the change signal keeps nothing.
        out["pending_change_ids"] = len(keep.changed._pending)
    elif name == "rows":
        # The rows as FlowStore keeps them: one tuple per flow in COLUMNS order.
        keep = [row_tuple(summary_row(llm_flow(s))) for s in specs(n, seed)]
        rows_rss = rss() - base
        out["rows_bytes_per_flow"] = rows_rss / n
        frame = frame_from_tuples(keep)
        out["frame_bytes_per_flow"] = int(frame.memory_usage(deep=True).sum()) / n
        out["frame_columns"] = len(frame.columns)
    elif name == "full":
        keep = [llm_flow(s) for s in specs(n, seed)]
    else:
        raise ValueError(name)
    out["rss_bytes_per_flow"] = (rss() - base) / n
    return out


def _spawn(name: str, n: int, lru: int, seed: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.memory", "--case", name, "--n", str(n)]
    cmd += ["--lru", str(lru), "--seed", str(seed)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run(n: int = 100_000, lru: int = 1000, seed: int = 1, jobs: int = 2) -> dict[str, Any]:
    """All cases, each in its own subprocess (``jobs`` at a time); the P5 ratios."""
    plan = [("flowstore", n), ("rows", n), ("mitm", n), ("full", lru)]
    with ThreadPoolExecutor(jobs) as pool:
        got = list(pool.map(lambda c: _spawn(c[0], c[1], lru, seed), plan))
    res: dict[str, Any] = {c["case"]: c for c in got}
    res["n"], res["lru"] = n, lru
    fb = res["flowstore"]["rss_bytes_per_flow"]
    mt = res["mitm"]["rss_bytes_per_flow"]
    res["P5_ratio"] = fb / mt
    res["summary_dict_rows_bytes_per_flow"] = res["rows"]["rows_bytes_per_flow"]
    res["summary_frame_bytes_per_flow"] = res["rows"]["frame_bytes_per_flow"]
    res["full_flow_vs_mitm_flow"] = res["full"]["rss_bytes_per_flow"] / mt
    return res


def rows_for_table(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, pass) rows for the summary table."""
    n, fb, mt = r["n"], r["flowstore"]["rss_bytes_per_flow"], r["mitm"]["rss_bytes_per_flow"]
    frame, rows = r["summary_frame_bytes_per_flow"], r["summary_dict_rows_bytes_per_flow"]
    return [
        (f"P5 memory per flow, {n:,} flows: FlowStore (LRU {r['lru']} full) / mitmproxy list",
         f"{fb / 1024:.2f} KB / {mt / 1024:.2f} KB = {r['P5_ratio']:.2f}x", "≤ 0.5x",
         "yes" if r["P5_ratio"] <= 0.5 else "NO"),
        ("P5 summary per flow: DataFrame (Arrow)", f"{frame:.0f} B", "≤ 1 KB",
         "yes" if frame <= 1024 else "NO"),
        ("P5 summary per flow: FlowStore row tuples", f"{rows:.0f} B", "≤ 1 KB",
         "yes" if rows <= 1024 else "NO"),
        ("P5 one full flow in memory: flowbook / mitmproxy",
         f"{r['full']['rss_bytes_per_flow'] / 1024:.1f} KB / {mt / 1024:.1f} KB", "-", "-"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=["mitm", "flowstore", "rows", "full"])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--lru", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.case:
        print(json.dumps(case(a.case, a.n, a.lru, a.seed)))
    else:
        print(json.dumps(run(a.n, a.lru, a.seed), indent=2))


if __name__ == "__main__":
    main()

"""Run every benchmark (docs/architecture.md, "Performance"); write ``bench/results/latest.json``
and ``RESULTS.md``.

    python -m bench                 # P1/P2, P3, P4 (+ FTS), P5, P7 (~20 min once cached)
    python -m bench --quick         # smaller N everywhere (a few minutes)
    python -m bench --skip-proxy    # storage, memory, the table and P6 only
    python -m bench --only table    # P7: flow-table refresh at 1M vs 1k flows
    python -m bench.attach_latency  # P6 alone (bench/results/p6.json, P6.md)
    python -m bench --only proxy --only throughput --baseline DIR --baseline-label main@abc
                                    # P1/P2/P3, plus the flowbook package in DIR measured in the
                                    # same rounds (``git archive main flowbook | tar -x -C DIR``)

The 1M-flow corpus for P4/FTS is cached under /tmp (see ``bench.storage_filters``); the first
full run builds it (~20 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
Row = tuple[str, str, str, str]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in x
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "mitmproxy": version("mitmproxy"),
        "pandas": version("pandas"),
        "pyarrow": version("pyarrow"),
        "sqlite": sqlite3.sqlite_version,
        "load_avg_at_start": os.getloadavg(),
    }


PLACEMENTS = (
    ("capture", "", "flowbook, mitmproxy in its own process (own_process=True)", "_capture"),
    ("flowbook", "", "flowbook in-kernel thread (fb.start())", ""),
)


def proxy_rows(r: dict[str, Any]) -> list[Row]:
    added = r["P1_added_ms"]
    rows: list[Row] = []
    for name, _, label, sfx in PLACEMENTS:
        if name not in r:
            continue
        p50, p99 = r["P1_ratio_p50" + sfx], r["P1_ratio_p99" + sfx]
        p2_ms = r[name]["sse_ttft_p50_ms"]
        rows += [
            (
                f"P1 added latency p50: {label} / bare mitmproxy",
                f"{added['p50'][name]:.2f} / {added['p50']['bare']:.2f} ms = {p50:.2f}x",
                "≤ 1.10x",
                "yes" if p50 <= 1.10 else "NO",
            ),
            (
                f"P1 added latency p99: {label} / bare mitmproxy",
                f"{added['p99'][name]:.2f} / {added['p99']['bare']:.2f} ms = {p99:.2f}x",
                "≤ 1.25x",
                "yes" if p99 <= 1.25 else "NO",
            ),
            (
                f"P2 SSE TTFT p50 {label} vs direct",
                f"{p2_ms:.1f} ms ({r['P2_ttft_ratio' + sfx]:.3f}x)",
                f"≤ {r['P2_target_ms']:.1f} ms (1.05x + 1 ms)",
                "yes" if p2_ms <= r["P2_target_ms"] else "NO",
            ),
        ]
    fb_ms = "/".join(f"{r[n]['sse_ttft_p50_ms']:.1f}" for n, *_ in PLACEMENTS if n in r)
    rows += [
        ("P2 context: SSE TTFT p50 direct / bare mitmproxy / own_process / in-kernel thread",
         f"{r['direct']['sse_ttft_p50_ms']:.1f} / {r['bare']['sse_ttft_p50_ms']:.1f} / "
         f"{fb_ms} ms", "-", "-"),
        ("P2 SSE body captured byte-identical", str(r["P2_body_identical"]), "True",
         "yes" if r["P2_body_identical"] else "NO"),
    ]  # fmt: skip
    if "baseline" in r:
        rows.append(
            ("P1/P2 context: the baseline flowbook (--baseline) in the same rounds",
             f"P1 p50 {added['p50']['baseline']:.2f} ms = {r['P1_ratio_p50_baseline']:.2f}x, "
             f"p99 {added['p99']['baseline']:.2f} ms = {r['P1_ratio_p99_baseline']:.2f}x; "
             f"P2 TTFT {r['baseline']['sse_ttft_p50_ms']:.1f} ms", "-", "-")
        )  # fmt: skip
    return rows


def all_rows(res: dict[str, Any]) -> list[Row]:
    """The summary table rows of every part present in a results dict."""
    from bench import memory, storage_filters, table_refresh, throughput

    rows: list[Row] = []
    if "proxy" in res:
        rows += proxy_rows(res["proxy"])
    if "throughput" in res:
        rows += throughput.rows_for_table(res["throughput"])
    if "storage" in res:
        rows += storage_filters.rows_for_table(res["storage"])
    if "memory" in res:
        rows += memory.rows_for_table(res["memory"])
    if "table" in res:
        rows += table_refresh.rows_for_table(res["table"])
    return rows


def table(rows: list[Row]) -> str:
    head = ("measure", "value", "target", "pass")
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(res: dict[str, Any], rows: list[Row]) -> None:
    m = res["machine"]
    st, mem, tab = res.get("storage"), res.get("memory"), res.get("table")
    out = [
        "# flowbook benchmark results",
        "",
        f"Run {res['date']} with `{res['command']}` ({res['elapsed_s'] / 60:.1f} min).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}; Python "
        f"{m['python']}, mitmproxy {m['mitmproxy']}, pandas {m['pandas']}, pyarrow "
        f"{m['pyarrow']}, SQLite {m['sqlite']}. Load average at start: "
        f"{', '.join(f'{x:.2f}' for x in m['load_avg_at_start'])}.",
        "",
        table(rows),
        "",
        *[
            f"Part `{u['part']}` re-measured {u['date']} with `{u['command']}` "
            f"({u['elapsed_s'] / 60:.1f} min, load average at start "
            f"{', '.join(f'{x:.2f}' for x in u['machine']['load_avg_at_start'])})."
            for u in res.get("updates", [])
        ],
        "",
        "## How each number was measured",
        "",
    ]
    if "baseline" in res.get("proxy", {}) or "baseline" in res.get("throughput", {}):
        label = res.get("baseline", {}).get("label", "the --baseline package")
        out.append(
            f"- Baseline rows: flowbook's own proxy importing `{label}`, measured in the same "
            "interleaved rounds/windows as the rest, so the two versions meet the same load."
        )
    if "proxy" in res:
        pr = res["proxy"]
        out.append(
            "- P1/P2: `bench/proxy_latency.py` (interleaved rounds over loopback; "
            f"{pr['rounds']['json']} JSON and {pr['rounds']['sse']} SSE rounds)"
            + (f"; load average before / after: {pr['load_avg_before']} / "
               f"{pr['load_avg_after']}" if "load_avg_before" in pr else "")
            + (". The baseline row is flowbook's proxy importing the `--baseline` package, in "
               "the same rounds." if "baseline" in pr else ".")
        )  # fmt: skip
    elif res.get("proxy_skipped"):
        out.append("- P1/P2: skipped in this run (`--skip-proxy`).")
    if "attach" in res:
        out.append(
            "- P6: `bench/attach_latency.py` (probe process; kernel idle, sorting, filtering)."
        )
    if "throughput" in res:
        tp = res["throughput"]
        out.append(
            f"- P3: `bench/throughput.py`: {tp['concurrency']} keep-alive clients (a minimal "
            "asyncio HTTP/1.1 client), back-to-back calls alternating plain JSON and streamed "
            "SSE (21 events, no think time upstream), through bare mitmdump (streaming-only "
            "addon) and `flowbook capture`, each in its own process, reverse mode, in "
            f"{tp['windows']} interleaved windows of {tp['window_s']:.0f} s per proxy after a "
            "warm-up. Lost = calls sent through the capture minus flows in its data dir after "
            "a clean stop (SIGINT). CPU per call is the proxy's user+system time over the "
            "windows (all threads; for `flowbook capture` its process and the mitmproxy child "
            "process together) divided by the calls: it depends less on other load "
            f"than calls/s do. Load average during the run: {tp['load_avg']}" + "."
        )
    if st:
        fb, mt = st["p4_flowbook"], st["p4_mitmproxy"]
        out += [
            f"- P4: `parse({fb['expression']!r}).mask(frame)` over the summary frame of a "
            f"FileStore holding {st['n']:,} synthetic flows (`bench/synthetic.py`), warm, median "
            f"of 7 runs; {fb['matches']:,} matches. mitmproxy: `flowfilter.parse("
            f"{MITM!r})` called per `HTTPFlow` (as `View` does) plus a Python latency check, over "
            f"{mt['n_sample']:,} flows of the same traffic: {mt['per_flow_us']:.2f} µs per flow "
            f"(flowfilter alone {mt['flowfilter_only_per_flow_us']:.2f} µs), extrapolated to "
            f"{mt['extrapolated_ms'] / 1000:.1f} s for {st['n']:,} flows "
            "(not run at 1M: 1M HTTPFlows would take ~11 GB and minutes to build; the "
            "per-flow cost is flat in N).",
            f"- Both sides select the same flows: on the first {mt['n_sample']:,} flows "
            f"flowbook's mask matches {st['p4_same_matches_on_sample']['flowbook']:,}, "
            f"mitmproxy {st['p4_same_matches_on_sample']['mitmproxy']:,}.",
            f"- flowbook's own per-flow evaluator (`Filter.matches`, live rules) on the same "
            f"expression: {st['flowbook_per_flow_evaluator_us']:.2f} µs per flow.",
            "- Other expressions over the same frame (ms, matches): "
            + "; ".join(
                f"`{k}` {v['ms']:.1f} ms ({v['matches']:,})"
                for k, v in st["extra_filters_ms"].items()
            )
            + ".",
            "- FTS (`FileStore.ids_matching_text`, FTS5 trigram), median of 3: "
            + "; ".join(
                f"{k}: {v['ms']:.1f} ms ({v['matches']:,} ids)" for k, v in st["fts"].items()
            )
            + ".",
            "- Store on disk: "
            + ", ".join(f"{k} {v:,.0f} MB" for k, v in st["store_disk_mb"].items())
            + f". `summary_frame()` cold (SQLite, "
            f"writes the Arrow snapshot) {st['summary_frame_cold_ms'] / 1000:.1f} s, warm "
            f"(snapshot) {st['summary_frame_warm_ms']:.0f} ms; frame "
            f"{st['frame_bytes_per_row']:.0f} B/row. Corpus build: "
            + (
                f"{st['store_build_s'] / 60:.1f} min in this run."
                if st["store_build_s"]
                else "reused from the /tmp cache."
            ),
        ]
    if mem:
        fs, mt5 = mem["flowstore"], mem["mitm"]
        out += [
            f"- P5: RSS growth per flow in a fresh subprocess per case (`bench/memory.py`), "
            f"N = {mem['n']:,}. mitmproxy: a list of `HTTPFlow` with bodies "
            f"({mt5['body_bytes_per_flow']:.0f} B of bodies per flow, a connection pair per 50 "
            f"flows). flowbook: `FlowStore` with its LRU full ({fs['full_flows_in_lru']} full "
            f"flows) + summary rows + the cached DataFrame ({fs['before_frame_bytes_per_flow']:.0f}"
            f" B/flow before `frame()`). One full flowbook flow (with stream events) costs "
            f"{mem['full']['rss_bytes_per_flow']:.0f} B; the summary row tuples "
            f"{mem['summary_dict_rows_bytes_per_flow']:.0f} B; the DataFrame "
            f"{mem['summary_frame_bytes_per_flow']:.0f} B (`memory_usage(deep=True)`).",
        ]
    if tab:
        out.append(
            "- P7: `bench/table_refresh.py`: a flow-table view (`flowbook.ui.views.TableView`) "
            "over a memory store filled with synthetic summary rows; one refresh = merging a "
            "live batch (10 new streaming flows + 2 completing ones) and encoding the visible "
            "60 rows as Arrow IPC, what the table pushes to the browser. Median of "
            f"{tab['rounds']} refreshes per size, the two sizes interleaved round by round; "
            "view build (once per filter/sort choice, O(N)): "
            + "; ".join(
                f"{c['view']}: {c['small']['build_ms']:.0f} ms at {c['small']['n']:,}, "
                f"{c['big']['build_ms']:.0f} ms at {c['big']['n']:,}"
                for c in tab["cases"]
            )
            + "."
        )
    out += ["", "Raw numbers: `latest.json`.", ""]
    (RESULTS / "RESULTS.md").write_text("\n".join(out))


MITM = "~d api.openai.com & ~u chat"
PARTS = ("proxy", "throughput", "storage", "memory", "table", "attach")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N everywhere (minutes)")
    ap.add_argument("--skip-proxy", action="store_true", help="skip P1/P2 and P3")
    ap.add_argument(
        "--only", action="append", choices=PARTS, help="run this part (repeat for several)"
    )
    ap.add_argument(
        "--baseline",
        help="P1/P2/P3 also measure the flowbook package in this directory, in the same rounds",
    )
    ap.add_argument("--baseline-label", help="what the baseline is, for RESULTS.md (main@abc)")
    ap.add_argument("--n", type=int, help="flows in the P4/FTS corpus (default 1M; quick 100k)")
    ap.add_argument("--mitm-sample", type=int, help="HTTPFlows for flowfilter (default 50k)")
    ap.add_argument("--p5-n", type=int, help="flows for P5 (default 100k; quick 20k)")
    a = ap.parse_args()
    n = a.n or (100_000 if a.quick else 1_000_000)
    p5_n = a.p5_n or (20_000 if a.quick else 100_000)
    sample = a.mitm_sample or (20_000 if a.quick else 50_000)
    parts = a.only or list(PARTS)
    if a.skip_proxy:
        parts = [p for p in parts if p not in ("proxy", "throughput")]

    t0 = time.monotonic()
    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": machine(),
        "proxy_skipped": "proxy" not in parts,
    }
    if a.baseline:
        res["baseline"] = {"path": a.baseline, "label": a.baseline_label or a.baseline}
    rows: list[Row] = []
    if "proxy" in parts:
        from bench import proxy_latency

        print("P1/P2: proxy latency …", file=sys.stderr, flush=True)
        kw: dict[str, Any] = {"json_rounds": 100, "sse_rounds": 20} if a.quick else {}
        res["proxy"] = proxy_latency.run(**kw, baseline=a.baseline)
        rows += proxy_rows(res["proxy"])
    if "throughput" in parts:
        from bench import throughput

        print("P3: saturated throughput …", file=sys.stderr, flush=True)
        kw = {"seconds": 4.0, "windows": 2} if a.quick else {}
        res["throughput"] = throughput.run(**kw, baseline=a.baseline)
        rows += throughput.rows_for_table(res["throughput"])
    if "storage" in parts:
        from bench import storage_filters

        print(f"P4 + FTS: {n:,} flows …", file=sys.stderr, flush=True)
        res["storage"] = storage_filters.run(n, mitm_sample=sample)
        rows += storage_filters.rows_for_table(res["storage"])
    if "memory" in parts:
        from bench import memory

        print(f"P5: memory, {p5_n:,} flows …", file=sys.stderr, flush=True)
        res["memory"] = memory.run(p5_n)
        rows += memory.rows_for_table(res["memory"])
    if "table" in parts:
        from bench import table_refresh

        big = 100_000 if a.quick else 1_000_000
        print(f"P7: table refresh, {big:,} vs 1,000 flows …", file=sys.stderr, flush=True)
        res["table"] = table_refresh.run(big)
        rows += table_refresh.rows_for_table(res["table"])
    if "attach" in parts:
        from bench import attach_latency

        print("P6: proxy p99 while the kernel works …", file=sys.stderr, flush=True)
        kw6 = {"n": 150, "rows": 200_000} if a.quick else {}
        res["attach"] = attach_latency.run(**kw6)  # type: ignore[arg-type]
        rows += attach_latency.rows_for_table(res["attach"])
    res["elapsed_s"] = time.monotonic() - t0

    RESULTS.mkdir(exist_ok=True)
    latest = RESULTS / "latest.json"
    if a.only and latest.exists():
        # Some parts re-run: keep the other parts' numbers, note when these were measured.
        merged = json.loads(latest.read_text())
        for part in parts:
            merged[part] = res[part]
            merged.setdefault("updates", []).append(
                {k: res[k] for k in ("date", "command", "machine", "elapsed_s")} | {"part": part}
            )
        if "baseline" in res:
            merged["baseline"] = res["baseline"]
        res = merged
        rows = all_rows(res)
    latest.write_text(json.dumps(res, indent=2, default=str) + "\n")
    write_markdown(res, rows)
    print(table(rows))
    print(f"\n{res['elapsed_s'] / 60:.1f} min; wrote {RESULTS / 'latest.json'} and RESULTS.md")


if __name__ == "__main__":
    main()

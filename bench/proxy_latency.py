"""P1 (added latency) and P2 (SSE time to first token); see docs/architecture.md.

Three paths to one loopback upstream, each proxy in its own process, measured in interleaved
rounds so drift hits all three alike:

* direct: client → upstream
* bare: client → mitmdump (reverse mode, a streaming-only addon) → upstream
* flowbook: client → flowbook's proxy (reverse mode, full capture) → upstream

P1 ratio = flowbook's added latency / bare mitmproxy's added latency (p50 and p99).
P2 ratio = flowbook's SSE time to first token / direct's; the body must arrive byte-identical.

``baseline=DIR`` adds a fourth path, ``baseline``: flowbook's proxy again, but importing the
``flowbook`` package found in DIR (e.g. an export of the main branch), measured in the same
interleaved rounds, so a change is compared with what it replaces under the same load.
"""

from __future__ import annotations

import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.loadavg import baseline_env, load_average

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def start_all(
    ttft: float, baseline: str | None = None
) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    up, bare, fbp, basep = free_port(), free_port(), free_port(), free_port()
    capp = free_port()
    upstream = f"http://127.0.0.1:{up}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.upstream", "--port", str(up), "--ttft", str(ttft)],
            cwd=HERE.parent,
        ),
        subprocess.Popen(
            [
                str(VENV_BIN / "mitmdump"),
                "-q",
                "--mode",
                f"reverse:{upstream}",
                "-p",
                str(bare),
                "--set",
                "connection_strategy=lazy",
                "-s",
                str(HERE / "stream_only_addon.py"),
            ],
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.flowbook_proxy",
                "--port",
                str(fbp),
                "--upstream",
                upstream,
            ],
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
        ),
        # The same with mitmproxy in a child process (fb.start(own_process=True), as
        # `flowbook capture` runs it): recording then never holds the proxy's loop back.
        subprocess.Popen(
            [sys.executable, "-m", "bench.flowbook_proxy", "--port", str(capp),
             "--upstream", upstream, "--own-process"],
            cwd=HERE.parent, stdout=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    bases = {
        "direct": upstream,
        "bare": f"http://127.0.0.1:{bare}",
        "flowbook": f"http://127.0.0.1:{fbp}",
        "capture": f"http://127.0.0.1:{capp}",
    }
    if baseline:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.flowbook_proxy", "--port", str(basep),
                 "--upstream", upstream],
                # Run from the baseline's directory: ``-m`` puts the working directory first on
                # sys.path, ahead of PYTHONPATH, so from this checkout it would import ours.
                cwd=baseline, stdout=subprocess.DEVNULL, env=baseline_env(baseline),
            )
        )  # fmt: skip
        bases["baseline"] = f"http://127.0.0.1:{basep}"
    for base in bases.values():
        wait_port(int(base.rsplit(":", 1)[1]), 60)
    return procs, bases


BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}


def one_json(client: httpx.Client, base: str) -> float:
    t0 = time.perf_counter()
    r = client.post(f"{base}/json/v1/chat/completions", json=BODY)
    r.read()
    dt = time.perf_counter() - t0
    assert r.status_code == 200
    return dt * 1000


def one_sse(client: httpx.Client, base: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    ttft = None
    body = b""
    with client.stream(
        "POST", f"{base}/sse/v1/chat/completions", json={**BODY, "stream": True}
    ) as r:
        for chunk in r.iter_raw():
            if ttft is None and b"data:" in chunk:
                ttft = (time.perf_counter() - t0) * 1000
            body += chunk
    assert ttft is not None
    return ttft, body


def run(
    json_rounds: int = 400, sse_rounds: int = 60, ttft: float = 0.05, baseline: str | None = None
) -> dict[str, Any]:
    load_before = load_average()
    procs, bases = start_all(ttft, baseline)
    names = list(bases)
    lat: dict[str, list[float]] = {n: [] for n in names}
    ttfts: dict[str, list[float]] = {n: [] for n in names}
    bodies: dict[str, set[bytes]] = {n: set() for n in names}
    try:
        clients = {n: httpx.Client(timeout=30) for n in names}
        # Warm up connections and code paths: the first calls pay one-time costs (genai-prices
        # loads its price data, regexes compile, the file store opens its segment) that are not
        # the steady-state overhead P1 is about.
        for n in names:
            for _ in range(200):
                one_json(clients[n], bases[n])
            for _ in range(5):
                one_sse(clients[n], bases[n])
        rng = random.Random(7)
        for _ in range(json_rounds):
            order = names[:]
            rng.shuffle(order)
            for n in order:
                lat[n].append(one_json(clients[n], bases[n]))
        for _ in range(sse_rounds):
            order = names[:]
            rng.shuffle(order)
            for n in order:
                t, body = one_sse(clients[n], bases[n])
                ttfts[n].append(t)
                bodies[n].add(body)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    res: dict[str, Any] = {"load_avg_after": load_average()}
    for n in names:
        res[n] = {
            "json_p50_ms": pct(lat[n], 50),
            "json_p99_ms": pct(lat[n], 99),
            "sse_ttft_p50_ms": pct(ttfts[n], 50),
            "sse_ttft_p95_ms": pct(ttfts[n], 95),
        }
    d = res["direct"]
    fbs = [n for n in names if n in ("flowbook", "capture", "baseline")]
    added = {
        k: {n: res[n][f"json_{k}_ms"] - d[f"json_{k}_ms"] for n in ["bare", *fbs]}
        for k in ("p50", "p99")
    }
    res["P1_added_ms"] = added
    for suffix, n in (("", "flowbook"), ("_capture", "capture"), ("_baseline", "baseline")):
        if n not in names:
            continue
        fn = res[n]
        res["P1_ratio_p50" + suffix] = added["p50"][n] / added["p50"]["bare"]
        res["P1_ratio_p99" + suffix] = added["p99"][n] / added["p99"]["bare"]
        res["P2_ttft_ratio" + suffix] = fn["sse_ttft_p50_ms"] / d["sse_ttft_p50_ms"]
        res["P2_ttft_delta_ms" + suffix] = fn["sse_ttft_p50_ms"] - d["sse_ttft_p50_ms"]
    res["P2_target_ms"] = 1.05 * d["sse_ttft_p50_ms"] + 1.0
    res["P2_body_identical"] = (
        bodies["flowbook"] == bodies["direct"] == bodies["capture"] and len(bodies["direct"]) == 1
    )
    res["load_avg_before"] = load_before
    res["rounds"] = {"json": json_rounds, "sse": sse_rounds, "upstream_ttft_ms": ttft * 1000}
    res["spread_ms"] = {n: statistics.pstdev(lat[n]) for n in names}
    return res


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--json-rounds", type=int, default=400)
    ap.add_argument("--sse-rounds", type=int, default=60)
    ap.add_argument("--baseline", help="also measure the flowbook package in this directory")
    a = ap.parse_args()
    print(json.dumps(run(a.json_rounds, a.sse_rounds, baseline=a.baseline), indent=2))

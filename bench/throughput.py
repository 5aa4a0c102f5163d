"""P3: saturated throughput, ``flowbook capture`` vs bare mitmdump, and flows lost.

One loopback upstream (``bench.upstream`` with no think time, so the proxies are the
bottleneck), two proxies in their own processes, both in reverse mode in front of it:

* bare: mitmdump with the streaming-only addon (``bench/stream_only_addon.py``)
* flowbook: ``flowbook capture --mode reverse:…`` (full capture, writing to a temp data dir)

``concurrency`` clients (asyncio, one keep-alive connection each, a minimal HTTP/1.1 client so
the load generator costs little CPU) send back-to-back requests for ``seconds``, alternating a
plain JSON call and a streamed SSE call (half the calls are streamed). The two proxies are
measured in interleaved windows (bare, flowbook, bare, flowbook, …) so drift hits both alike.

P3 ratio = flowbook's completed calls per second / bare mitmdump's. Loss: after the capture
stops (SIGINT, as a user would), the flows in its data dir are counted against the calls that
completed through it; every one must be there, in state ``completed``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.proxy_latency import HERE, VENV_BIN, free_port, wait_port

PLAIN = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}
).encode()
STREAMED = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}], "stream": True}
).encode()


def _request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


REQ_PLAIN = _request("/json/v1/chat/completions", PLAIN)
REQ_STREAMED = _request("/sse/v1/chat/completions", STREAMED)


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (content-length or chunked); returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = None, False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _client(port: int, stop_at: float, first_streamed: bool, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    streamed = first_streamed
    try:
        while time.monotonic() < stop_at:
            writer.write(REQ_STREAMED if streamed else REQ_PLAIN)
            status = await _read_response(reader)
            key = "streamed" if streamed else "plain"
            counts[key if status == 200 else "failed"] += 1
            streamed = not streamed
    finally:
        writer.close()


async def _window(port: int, concurrency: int, seconds: float) -> dict[str, Any]:
    counts = {"plain": 0, "streamed": 0, "failed": 0}
    t0 = time.monotonic()
    stop_at = t0 + seconds
    await asyncio.gather(*(_client(port, stop_at, i % 2 == 0, counts) for i in range(concurrency)))
    elapsed = time.monotonic() - t0
    ok = counts["plain"] + counts["streamed"]
    return {**counts, "ok": ok, "elapsed_s": elapsed, "rps": ok / elapsed}


def _start(upstream_port: int, bare: int, fbp: int, data_dir: str) -> list[subprocess.Popen[bytes]]:
    upstream = f"http://127.0.0.1:{upstream_port}"
    env = {**os.environ, "FLOWBOOK_DATA_DIR": data_dir}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.upstream", "--port", str(upstream_port),
             "--ttft", "0", "--gap", "0", "--events", "20"],
            cwd=HERE.parent,
        ),
        subprocess.Popen(
            [str(VENV_BIN / "mitmdump"), "-q", "--mode", f"reverse:{upstream}", "-p", str(bare),
             "--set", "connection_strategy=lazy", "-s", str(HERE / "stream_only_addon.py")],
            cwd=HERE.parent, stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-c", "from flowbook.cli import main; main()", "capture",
             "--port", str(fbp), "--mode", f"reverse:{upstream}", "--data-dir", data_dir],
            cwd=HERE.parent, stdout=subprocess.DEVNULL, env=env,
        ),
    ]  # fmt: skip
    for p in (upstream_port, bare, fbp):
        wait_port(p)
    return procs


def _stored(data_dir: str) -> dict[str, int]:
    """Flows the stopped capture left in its data dir, by state."""
    from flowbook.store.facade import Store

    store = Store(Path(data_dir))
    try:
        df = store.frame(include_history=True)
        return {str(k): int(v) for k, v in df["state"].value_counts().items()}
    finally:
        store.close()


def run(
    concurrency: int = 32, seconds: float = 8.0, windows: int = 3, warmup_s: float = 2.0
) -> dict[str, Any]:
    """Measure P3; see the module docstring."""
    up, bare, fbp = free_port(), free_port(), free_port()
    data_dir = tempfile.mkdtemp(prefix="flowbook-p3-")
    procs = _start(up, bare, fbp, data_dir)
    ports = {"bare": bare, "flowbook": fbp}
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "flowbook": []}
    load = [os.getloadavg()]
    sent_through_flowbook = 0
    try:
        for name, port in ports.items():  # warm both: code paths, price data, the store
            r = asyncio.run(_window(port, concurrency, warmup_s))
            if name == "flowbook":
                sent_through_flowbook += r["ok"] + r["failed"]
        for i in range(windows):
            order = ["bare", "flowbook"] if i % 2 == 0 else ["flowbook", "bare"]
            for name in order:
                r = asyncio.run(_window(ports[name], concurrency, seconds))
                results[name].append(r)
                if name == "flowbook":
                    sent_through_flowbook += r["ok"] + r["failed"]
            load.append(os.getloadavg())
    finally:
        capture = procs[2]
        capture.send_signal(signal.SIGINT)  # a clean stop: the capture flushes its store
        try:
            capture.wait(120)
        except subprocess.TimeoutExpired:
            capture.kill()
        for p in procs[:2]:
            p.terminate()
        for p in procs[:2]:
            p.wait(10)
    stored = _stored(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    total_stored = sum(stored.values())

    def agg(name: str) -> dict[str, Any]:
        rs = results[name]
        ok = sum(r["ok"] for r in rs)
        el = sum(r["elapsed_s"] for r in rs)
        return {
            "rps": ok / el,
            "rps_per_window": [round(r["rps"], 1) for r in rs],
            "calls": ok,
            "streamed": sum(r["streamed"] for r in rs),
            "failed": sum(r["failed"] for r in rs),
        }

    b, f = agg("bare"), agg("flowbook")
    return {
        "concurrency": concurrency,
        "window_s": seconds,
        "windows": windows,
        "bare": b,
        "flowbook": f,
        "P3_ratio": f["rps"] / b["rps"],
        "calls_through_flowbook": sent_through_flowbook,
        "flows_stored": total_stored,
        "flows_stored_by_state": stored,
        "flows_lost": sent_through_flowbook - total_stored,
        "load_avg": [[round(x, 2) for x in la] for la in load],
    }


def rows_for_table(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The P3 rows of RESULTS.md."""
    ok = r["flows_lost"] == 0 and r["flows_stored_by_state"].get("completed") == r["flows_stored"]
    return [
        (f"P3 saturated throughput, {r['concurrency']} clients, half streamed: flowbook / bare",
         f"{r['flowbook']['rps']:.0f} / {r['bare']['rps']:.0f} calls/s = {r['P3_ratio']:.2f}x",
         "≥ 0.90x", "yes" if r["P3_ratio"] >= 0.9 else "NO"),
        ("P3 flows lost (all stored flows completed)",
         f"{r['flows_lost']} of {r['calls_through_flowbook']:,} "
         f"({r['flows_stored_by_state']})", "0", "yes" if ok else "NO"),
    ]  # fmt: skip


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--windows", type=int, default=3)
    a = ap.parse_args()
    print(json.dumps(run(a.concurrency, a.seconds, a.windows), indent=2))

"""P8 (data dir size against raw bytes), P9 (opening a big history) and ingest throughput.

* P8 agent: a 150-turn Anthropic agent conversation through the real proxy (reverse mode to
  flowbook's fake upstream, the official ``anthropic`` SDK streaming), an 8 KB system prompt and
  20 tools resent every turn, the history growing each turn. Raw bytes = every request body plus
  every response body as stored (what went over the wire, content-decoded); data dir = every file
  under ``<data_dir>/flows`` after the store is closed.
* P8 corpus: N synthetic non-repeating flows (``bench.synthetic``) appended to a FileStore:
  ingest throughput (flows/s through ``append_many``), data dir / raw bytes, text search times.
* P9: ``fb.flows(include_history=True)`` in a fresh process over the corpus (cold: first call
  in the process; warm: the next call).

Run ``python -m bench.storage_scale --n 100000 --out bench/results/storage-after.json``. The
script only uses ``FileStore`` and ``fb`` public calls, so the same file measures the previous
store (run it with the old tree first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOOLS = [
    {
        "name": f"tool_{i:02d}",
        "description": f"Tool number {i}: reads, edits or searches files in the workspace. " * 3,
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "A path relative to the repository root"},
                "pattern": {"type": "string", "description": f"What tool {i} looks for"},
                "limit": {"type": "integer", "description": "How many results at most"},
            },
            "required": ["path"],
        },
    }
    for i in range(20)
]
SYSTEM = (
    "You are a coding agent working in a git repository. Read files before editing them, keep "
    "changes small, run the tests after each change and explain what you did. "
) * 48  # ~8 KB


def du(path: Path) -> int:
    """Bytes of every regular file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _user_turn(i: int) -> str:
    # A tool output of the kind agents feed back: a file listing or a file's lines (new text).
    lines = [
        f"src/module_{i}_{k}.py:{k * 7 + i}: def handler_{i}_{k}(request): return {k}"
        for k in range(12)
    ]
    return f"Turn {i}: here is what the search returned, continue the task.\n" + "\n".join(lines)


def agent_session(turns: int = 150) -> dict[str, Any]:
    """Run the agent conversation through the proxy; return sizes."""
    import anthropic

    import flowbook as fb
    from flowbook.fake_upstream import FakeUpstream

    data_dir = Path(tempfile.mkdtemp(prefix="fb-p8-"))
    try:
        with FakeUpstream() as up:
            mon = fb.start(port=0, mode=f"reverse:{up.url}", data_dir=data_dir)
            client = anthropic.Anthropic(
                base_url=mon.proxy_url, api_key="sk-ant-bench", max_retries=0
            )
            history: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            for i in range(turns):
                history.append({"role": "user", "content": _user_turn(i)})
                with client.messages.stream(
                    model="claude-sonnet-4-5",
                    max_tokens=1024,
                    system=SYSTEM,
                    tools=TOOLS,  # type: ignore[arg-type]
                    messages=history,  # type: ignore[arg-type]
                ) as stream:
                    msg = stream.get_final_message()
                history.append(
                    {"role": "assistant", "content": [b.model_dump() for b in msg.content]}
                )
            took = time.perf_counter() - t0
            fb.wait_idle(60)
            store = fb.flow_store()
            frame = fb.flows(include_history=True)
            raw = 0
            for fid in frame["id"]:
                flow = fb.get_flow(fid)
                raw += len(flow.request.body or b"") + len(flow.response.body or b"")
            fb.stop()
        from flowbook.workspace import existing

        ws = existing()
        if ws is not None and hasattr(ws, "close"):
            ws.close()
        else:
            store.close()
        size = du(data_dir / "flows")
        return {
            "files_kb": {
                str(p.relative_to(data_dir / "flows")): round(p.stat().st_size / 1024, 1)
                for p in sorted((data_dir / "flows").rglob("*"))
                if p.is_file()
            },
            "data_dir": str(data_dir),
            "turns": turns,
            "flows": len(frame),
            "raw_bytes": raw,
            "data_dir_bytes": size,
            "ratio": size / raw,
            "session_s": took,
        }
    finally:
        if not os.environ.get("FLOWBOOK_BENCH_KEEP"):
            shutil.rmtree(data_dir, ignore_errors=True)


def corpus(n: int, path: Path, batch: int = 2000) -> dict[str, Any]:
    """Build a FileStore of ``n`` synthetic flows; ingest throughput and sizes."""
    from bench.synthetic import llm_flow, specs
    from flowbook.store.file_store import FileStore

    shutil.rmtree(path, ignore_errors=True)
    raw = 0
    spent = 0.0
    with FileStore(path) as store:
        pending = []
        for s in specs(n, 1):
            flow = llm_flow(s)
            raw += len(flow.request.body or b"") + len(flow.response.body or b"")
            pending.append(flow)
            if len(pending) == batch:
                t0 = time.perf_counter()
                store.append_many(pending)
                spent += time.perf_counter() - t0
                pending = []
        t0 = time.perf_counter()
        store.append_many(pending)
        spent += time.perf_counter() - t0
    size = du(path / "flows")
    return {
        "tables_mb": tables_mb(path / "flows"),
        "n": n,
        "ingest_flows_per_s": n / spent,
        "ingest_s": spent,
        "raw_bytes": raw,
        "data_dir_bytes": size,
        "ratio": size / raw,
        "files_mb": {
            str(p.relative_to(path / "flows")): round(p.stat().st_size / 2**20, 2)
            for p in sorted((path / "flows").glob("*"))
            if p.is_file()
        },
    }


def tables_mb(root: Path) -> dict[str, dict[str, float]]:
    """Where the bytes go: MB per table and index of each SQLite file (``dbstat``)."""
    import sqlite3

    out = {}
    for p in sorted(root.glob("*.sqlite")):
        conn = sqlite3.connect(p)
        try:
            rows = conn.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page = conn.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.OperationalError:  # no dbstat compiled in
            continue
        finally:
            conn.close()
        out[p.name] = {name: round(b / 2**20, 2) for name, b in rows if b >= 2**16}
        out[p.name]["(free pages)"] = round(free * page / 2**20, 2)
    return out


SEARCHES = [("content", "refund policy"), ("request", "invoice"), ("response", "zzqqxx-none")]


def search_times(path: Path) -> dict[str, Any]:
    from flowbook.store.file_store import FileStore

    out = {}
    with FileStore(path) as store:
        for scope, text in SEARCHES:
            times = []
            cpu = []
            hits = 0
            for _ in range(5):
                t0, c0 = time.perf_counter(), time.process_time()
                hits = len(store.ids_matching_text(scope, text))
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            out[f"{scope}:{text}"] = {
                "ms": statistics.median(times),
                "cpu_ms": statistics.median(cpu),
                "hits": hits,
            }
    return out


OPEN = """
import os, sys, time, json
t0 = time.perf_counter()
import flowbook as fb
t1 = time.perf_counter()
df = fb.flows(include_history=True, page=None)
t2 = time.perf_counter()
df = fb.flows(include_history=True, page=None)
t3 = time.perf_counter()
warm = []
for _ in range(5):
    a = time.perf_counter()
    fb.flows(include_history=True, page=None)
    warm.append(time.perf_counter() - a)
warm.sort()
print(json.dumps({"rows": len(df), "import_s": t1 - t0, "cold_s": t2 - t1, "second_s": t3 - t2,
                  "warm_median_s": warm[2]}))
"""


def open_times(path: Path) -> dict[str, Any]:
    # Synthetic flows are older than the retention period: cleanup would delete them.
    env = dict(os.environ, FLOWBOOK_DATA_DIR=str(path), FLOWBOOK_AUTO_CLEANUP="false")
    # First open (may migrate / build the snapshot), then a second process: the steady state.
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", OPEN], env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"first_process": runs[0], "later_processes": runs[1:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--turns", type=int, default=150)
    ap.add_argument("--dir", default="/tmp/flowbook-scale")
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-agent", action="store_true")
    ap.add_argument("--skip-corpus", action="store_true")
    a = ap.parse_args()
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_avg_at_start": os.getloadavg(),
        "cores": os.cpu_count(),
    }
    if not a.skip_agent:
        res["P8_agent"] = agent_session(a.turns)
        print(json.dumps(res["P8_agent"]), file=sys.stderr, flush=True)
    if not a.skip_corpus:
        path = Path(a.dir) / f"corpus-{a.n}"
        res["corpus"] = corpus(a.n, path)
        print(json.dumps(res["corpus"]), file=sys.stderr, flush=True)
        res["search"] = search_times(path)
        res["P9_open"] = open_times(path)
        res["load_avg_at_end"] = os.getloadavg()
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""P9 cold, before and after, interleaved: the first ``fb.flows(include_history=True)`` of a fresh
process over the same million-row data dir, with each tree's flowbook in turn.

The data dir is made as in ``bench.p9_open`` (a built corpus whose summary rows are replicated
in the index up to N); the first open (by the last tree given) builds the snapshot, then every
round opens it once per tree. Each open reports wall and CPU seconds of its first call, of the
import, and whether mitmproxy was loaded. Byte-compile both trees first (``python -m compileall
-q <tree>/flowbook``): an installed package has its bytecode, and this machine's
PYTHONDONTWRITEBYTECODE would otherwise make every run compile flowbook from source (~0.2 s).

    python -m bench.p9_cold --corpus /tmp/corpus-20000 --dest /tmp/p9 --n 1000000 \\
        --rounds 5 before=/tmp/main-dd1d284 after=$PWD
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench.p9_open import replicate

OPEN = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import flowbook as fb
t1, c1 = time.perf_counter(), time.process_time()
df = fb.flows(include_history=True, page=None)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"rows": len(df), "import_s": t1 - t0, "cold_s": t2 - t1, "cold_cpu_s": c2 - c1,
                  "total_s": t2 - t0, "mitmproxy": "mitmproxy" in sys.modules,
                  "modules": len(sys.modules)}))
"""


def open_once(tree: str, data_dir: Path) -> dict:
    env = dict(
        os.environ, FLOWBOOK_DATA_DIR=str(data_dir), FLOWBOOK_AUTO_CLEANUP="false", PYTHONPATH=tree
    )
    out = subprocess.run(
        [sys.executable, "-c", OPEN], env=env, cwd=tree, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--dest", default="/tmp/flowbook-p9-cold")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("trees", nargs="+", help="label=path of a flowbook tree")
    a = ap.parse_args()
    trees = dict(t.split("=", 1) for t in a.trees)
    dest = Path(a.dest)
    rows = replicate(Path(a.corpus), dest, a.n)
    print(f"# {rows} rows; load {os.getloadavg()[0]:.1f}", flush=True)
    first = open_once(list(trees.values())[-1], dest)  # builds the snapshot
    print("# first open (builds the snapshot):", json.dumps(first), flush=True)
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    for _ in range(a.rounds):
        for label, tree in trees.items():
            r = open_once(tree, dest)
            runs[label].append(r)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
            print(label, json.dumps(shown), f"load {os.getloadavg()[0]:.1f}", flush=True)
    for label, rs in runs.items():
        med = {k: round(statistics.median(r[k] for r in rs), 3) for k in ("cold_s", "cold_cpu_s")}
        loaded = rs[0]["mitmproxy"]
        print(
            f"# {label}: median cold {med['cold_s']} s, cpu {med['cold_cpu_s']} s, "
            f"mitmproxy {loaded}"
        )
    base = next(iter(runs))
    for label in list(runs)[1:]:
        for k in ("cold_s", "cold_cpu_s"):
            ratio = statistics.median(r[k] for r in runs[label]) / statistics.median(
                r[k] for r in runs[base]
            )
            print(f"# {label}/{base} {k}: {ratio:.2f}")
    shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()

"""P9 at a million flows: ``fb.flows(include_history=True)`` in a fresh process (cold) and again
in the same process (warm).

P9 reads only the summary (the columnar snapshot plus the index rows after it), never the
content. So the million-row history is made from a built corpus (``bench.storage_scale``,
e.g. 50k synthetic flows) by copying its data dir and replicating its summary rows in the index
(``INSERT ... SELECT`` with new ids) up to N rows: the rows are real summary rows, only their
content is not replicated (building 1M flows through the store takes ~40 min on this machine).

    python -m bench.p9_open --corpus /tmp/fb-scale-after/corpus-50000 --n 1000000 --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.storage_scale import OPEN


def replicate(corpus: Path, dest: Path, n: int) -> int:
    """Copy the corpus data dir and grow its index to ``n`` summary rows; return the rows."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(corpus, dest)
    for p in (dest / "flows").glob("summary*.arrow"):
        p.unlink()
    conn = sqlite3.connect(dest / "flows" / "index.sqlite", isolation_level=None)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(flows)") if r[1] not in ("fid", "id")]
    base = conn.execute("SELECT count(*) FROM flows").fetchone()[0]
    names = ", ".join(f'"{c}"' for c in cols)
    copy = 1
    total = base
    conn.execute("BEGIN")
    while total < n:
        take = min(base, n - total)
        conn.execute(
            f"INSERT INTO flows(id, {names}) SELECT id || '-r{copy}', {names} FROM flows "
            f"WHERE fid <= ? ORDER BY fid LIMIT ?",
            (base, take),
        )
        total += take
        copy += 1
    conn.execute("COMMIT")
    conn.close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dest", default="/tmp/flowbook-p9")
    ap.add_argument("--out", required=True)
    ap.add_argument("--processes", type=int, default=4)
    a = ap.parse_args()
    dest = Path(a.dest)
    t0 = time.perf_counter()
    rows = replicate(Path(a.corpus), dest, a.n)
    res: dict[str, Any] = {
        "rows": rows,
        "replicate_s": time.perf_counter() - t0,
        "load_avg_at_start": os.getloadavg(),
        "runs": [],
    }
    env = dict(os.environ, FLOWBOOK_DATA_DIR=str(dest), FLOWBOOK_AUTO_CLEANUP="false")
    for _ in range(a.processes):  # the first builds the snapshot; the others open it cold
        out = subprocess.run([sys.executable, "-c", OPEN], env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        res["runs"].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(res["runs"][-1], file=sys.stderr, flush=True)
    snaps = sorted((dest / "flows").glob("summary*.arrow"))
    res["snapshot_mb"] = round(sum(p.stat().st_size for p in snaps) / 2**20, 1)
    res["load_avg_at_end"] = os.getloadavg()
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Text search over an existing data dir: ``FileStore.ids_matching_text`` times, one JSON line.

Build the corpora once (``bench.storage_scale`` with each tree on ``PYTHONPATH``, kept under
/tmp), then run this script for each tree in turn, interleaved, so load hits all alike:

    PYTHONPATH=<tree> python -m bench.storage_search <data dir> <label>

Each search runs 5 times; medians of wall and CPU time (the machine is shared: CPU time is the
steadier figure), and the first run's wall time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from flowbook.store.file_store import FileStore

SEARCHES = [
    ("content", "refund policy"),
    ("request", "invoice"),
    ("request", "python summary"),
    ("response", "zzqqxx-none"),
    ("content", "zebra"),
]


def main(path: str, label: str) -> None:
    out = {}
    with FileStore(path) as fs:
        for scope, text in SEARCHES:
            wall, cpu = [], []
            n = 0
            for _ in range(5):
                t, c = time.perf_counter(), time.process_time()
                n = len(fs.ids_matching_text(scope, text))
                cpu.append((time.process_time() - c) * 1e3)
                wall.append((time.perf_counter() - t) * 1e3)
            out[f"{scope}:{text}"] = {
                "hits": n,
                "wall_ms_median": round(statistics.median(wall), 1),
                "cpu_ms_median": round(statistics.median(cpu), 1),
                "first_wall_ms": round(wall[0], 1),
            }
    print(label, json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""CPU of the content store alone: ``ContentStore.put_many`` and ``get`` over synthetic lines.

The content store is one part of ingest (``bench/storage_ingest.py`` times all of it, and on a
shared machine its spread hides a few percent). This times only the content writes (6,000 lines,
2,000 per ``put_many``, fresh store) and reads (every third line, after a reopen: nothing
cached), CPU time, min of 3. Run it with each tree on ``PYTHONPATH``, interleaved:
``python -m bench.storage_content <label>``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import llm_flow, specs
from flowbook.store import content
from flowbook.store.records import flow_line


def main(label: str, n: int = 6000, batch: int = 2000) -> None:
    lines = [flow_line(llm_flow(s)) for s in specs(n, 1)]
    best_w = best_r = float("inf")
    reads = 0
    for _ in range(3):
        d = Path(tempfile.mkdtemp(prefix="fb-content-"))
        try:
            store = content.ContentStore(d)
            c = time.process_time()
            rhs: list[bytes] = []
            for i in range(0, n, batch):
                rhs += store.put_many(lines[i : i + batch])
            w = time.process_time() - c
            store.close()
            store = content.ContentStore(d)
            c = time.process_time()
            for rh in rhs[::3]:
                store.get(rh)
            r = time.process_time() - c
            reads = len(rhs[::3])
            store.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)
        best_w, best_r = min(best_w, w), min(best_r, r)
    print(
        label,
        "put_many",
        round(best_w / n * 1e6, 1),
        "us/line, get",
        round(best_r / reads * 1e6, 1),
        "us/line (CPU, min of 3)",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "store")

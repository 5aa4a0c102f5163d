"""Ingest throughput: the same synthetic flows into a fresh ``FileStore``, 2,000 at a time.

Run it with the old tree on ``PYTHONPATH`` and the new one, interleaved, so both see the same
machine load: ``python -m bench.storage_ingest <label>`` prints ``<label> <flows/s> flows/s``
twice, each followed by the flows per second of this process's CPU time (``cpu <n> flows/cpu-s``:
less sensitive to what else the machine runs; the index's background fsync thread is included).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time

from bench.synthetic import llm_flow, specs
from flowbook.store.file_store import FileStore


def main(label: str, n: int = 6000, batch: int = 2000) -> None:
    flows = [llm_flow(s) for s in specs(n, 1)]
    for _ in range(2):
        d = tempfile.mkdtemp(prefix="fb-ingest-")
        try:
            with FileStore(d) as fs:
                t = time.perf_counter()
                c = time.process_time()
                for i in range(0, n, batch):
                    fs.append_many(flows[i : i + batch])
                dt = time.perf_counter() - t
                dc = time.process_time() - c
            print(label, round(n / dt), "flows/s", "cpu", round(n / dc), "flows/cpu-s", flush=True)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "store")

"""Run flowbook's proxy as its own process for the benchmarks (like mitmdump for the baseline)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--own-process", action="store_true", help="mitmproxy in a child process")
    a = ap.parse_args()
    import flowbook as fb

    fb.start(
        port=a.port,
        mode=f"reverse:{a.upstream}",
        data_dir=tempfile.mkdtemp(),
        own_process=a.own_process,
    )
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    fb.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()

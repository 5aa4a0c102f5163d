"""A script that ends without ``fb.stop()`` exits quietly (issue 11 §5).

The proxy thread is a daemon: without a stop its event loop was left with live tasks (open
connections, a paused flow) at interpreter exit, which asyncio reports as "Task was destroyed
but it is pending!". The proxy now stops itself at exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from flowbook.fake_upstream import FakeUpstream

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import httpx
    import flowbook as fb

    upstream_url, data_dir = sys.argv[1], sys.argv[2]
    mon = fb.start(port=0, mode=f"reverse:{upstream_url}", data_dir=data_dir)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    client = httpx.Client(base_url=mon.proxy_url, timeout=30)  # left open: keep-alive
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    fb.intercept.enable()
    threading.Thread(  # a call paused at exit
        target=lambda: httpx.post(mon.proxy_url + "/v1/chat/completions", json=body, timeout=30),
        daemon=True,
    ).start()
    deadline = time.monotonic() + 10
    while not fb.intercept.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("paused:", len(fb.intercept.pending()), flush=True)
    """
)


def test_a_script_without_stop_exits_quietly(upstream: FakeUpstream, tmp_path: Path) -> None:
    script = tmp_path / "no_stop.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), upstream.url, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "paused: 1"
    assert "Task was destroyed" not in out.stderr
    assert "Traceback" not in out.stderr and "Exception" not in out.stderr, out.stderr

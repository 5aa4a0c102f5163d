"""mitmproxy in a child process of its own (``own_process=True``; ``flowbook capture`` runs it so).

Real parts: the child is the real ``flowbook.capture.worker`` process, the clients the official
openai SDK and raw httpx, the upstream flowbook's fake server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

import flowbook as fb
from flowbook.capture.link import Link
from flowbook.capture.proxy_process import ProxyProcess
from flowbook.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "What is the weather?"}]


def _proxy(mon: fb.Monitor) -> ProxyProcess:
    proxy = mon._proxy
    assert isinstance(proxy, ProxyProcess)
    return proxy


def test_the_proxy_runs_in_a_child_and_every_call_is_there_when_it_returns(
    upstream: FakeUpstream, data_dir: Path
) -> None:
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir, own_process=True)
    proc = _proxy(mon)._proc
    assert proc is not None and proc.pid != os.getpid() and proc.poll() is None
    # The listening socket belongs to the child: this process has no listener on the port.
    assert f"{mon.port:04X}" not in _listening_ports(os.getpid())
    assert f"{mon.port:04X}" in _listening_ports(proc.pid)
    client = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test", max_retries=0)

    def one(i: int) -> str:
        if i % 2:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        else:
            got = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"n{i}"}]
            )
            text = got.choices[0].message.content or ""
        # Right after the call returned, its flow is in the store, complete (a reader syncs
        # with the proxy process first).
        df = fb.flows(f'content:"n{i}"')
        assert len(df) == 1 and df.iloc[0]["state"] == "completed", (i, df)
        return text

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(48)))
    assert all(a.startswith("Echo: n") for a in answers)
    df = fb.flows(page_size=100)
    assert len(df) == 48 and set(df["state"]) == {"completed"}
    assert df["stream"].sum() == 24
    fb.stop()
    assert proc.poll() is not None, "the proxy process ends with the capture"


def test_a_proxy_process_that_dies_is_noticed_and_its_flows_stay(
    upstream: FakeUpstream, data_dir: Path
) -> None:
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir, own_process=True)
    r = httpx.post(
        mon.proxy_url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": MSG},
        headers={"authorization": "Bearer sk-test"},
    )
    assert r.status_code == 200
    # (A SIGKILLed proxy process takes with it the events it had not sent yet, at most its
    # last 2 ms; a reader's sync makes sure this call's are across.)
    assert list(fb.flows()["state"]) == ["completed"]
    proc = _proxy(mon)._proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while mon.running:
        assert time.monotonic() < deadline, "the monitor still says running"
        time.sleep(0.05)
    assert fb.status()["running"] is False
    assert list(fb.flows()["state"]) == ["completed"]
    fb.stop()  # stopping a dead proxy is quiet


def test_flowbook_capture_exits_when_its_proxy_process_dies(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    cmd = [sys.executable, "-m", "flowbook.cli", "capture", "--port", "0", "--mode"]
    cmd += [f"reverse:{upstream.url}", "--data-dir", str(data_dir)]
    cap = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "capture.json").exists():
            assert cap.poll() is None and time.monotonic() < deadline, cap.stderr
            time.sleep(0.05)
        children = _children(cap.pid)
        assert len(children) == 1, children
        os.kill(children[0], signal.SIGKILL)
        _out, err = cap.communicate(timeout=60)
    finally:
        if cap.poll() is None:
            cap.kill()
    assert "the proxy process exited unexpectedly" in err
    assert cap.returncode == 0


def test_link_batches_survive_any_split_of_the_byte_stream() -> None:
    a, b = socket.socketpair()
    send, recv = Link(a), Link(b)
    big = os.urandom(3 << 20)  # bigger than one read
    batches = [[("C", "f1", 1.0, b"x")], [("B", big)], [("S", "f2", 2.0)] * 1000, [("bye",)]]
    got: list[list[tuple[object, ...]]] = []
    reader = threading.Thread(target=lambda: got.extend(recv.batches()))
    reader.start()
    for batch in batches:
        send.send(batch)
    send.close()
    reader.join(10)
    assert got == batches


def _children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _listening_ports(pid: int) -> set[str]:
    """Hex ports of the TCP sockets ``pid`` listens on (from /proc, no extra tools)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(cols[1].rsplit(":", 1)[1])
    return ports


def test_a_killed_capture_process_takes_its_proxy_process_with_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    cmd = [sys.executable, "-m", "flowbook.cli", "capture", "--port", "0", "--mode"]
    cmd += [f"reverse:{upstream.url}", "--data-dir", str(data_dir)]
    cap = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "capture.json").exists():
            assert cap.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        (child,) = _children(cap.pid)
        cap.kill()
        cap.wait(10)
        deadline = time.monotonic() + 30
        while _running(child):
            assert time.monotonic() < deadline, "the proxy process outlived its capture"
            time.sleep(0.05)
    finally:
        if cap.poll() is None:
            cap.kill()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's wait is missing

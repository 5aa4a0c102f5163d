"""A capture in its own process (``flowbook capture``) and kernels attached to it.

Real parts only: the capture is the ``flowbook capture`` command in a subprocess (reverse proxy
to flowbook's fake upstream), the kernel is this pytest process (``fb.attach``) and, where a
second kernel or one that goes away is needed, a Python subprocess. The official openai SDK is
the client.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import flowbook as fb
from flowbook.attached import find_capture
from flowbook.capture.discovery import _pid_alive
from flowbook.fake_upstream import FakeUpstream
from flowbook.intercept import EditError
from flowbook.store.changes import StoreChange
from flowbook.store.remote import ControlClient, RemoteStore

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "What is the weather?"}]
LONG = " ".join(f"word{i}" for i in range(24))


def wait_for(pred: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def first_row(filter: str | None = None) -> dict[str, Any] | None:
    df = fb.flows(filter)
    return df.iloc[0].to_dict() if len(df) else None


class Capture:
    """A ``flowbook capture`` subprocess for one data dir."""

    def __init__(self, data_dir: Path, upstream: FakeUpstream, lease: float = 2.0) -> None:
        self.data_dir = data_dir
        cmd = [sys.executable, "-m", "flowbook.cli", "capture", "--port", "0"]
        cmd += ["--mode", f"reverse:{upstream.url}", "--data-dir", str(data_dir)]
        cmd += ["--lease", str(lease)]
        self.log = data_dir.parent / "capture.out"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        live = wait_for(lambda: self._live(), "the capture to announce its control channel")
        self.pid, self.port, self.proxy_url = live.pid, live.control_port, live.proxy_url

    def _live(self) -> Any:
        assert self.proc.poll() is None, self.log.read_text()
        return find_capture(self.data_dir)

    def token(self) -> str:
        return (self.data_dir / "capture.token").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


@pytest.fixture
def capture(tmp_path: Path, upstream: FakeUpstream, data_dir: Path) -> Iterator[Capture]:
    cap = Capture(data_dir, upstream)
    yield cap
    fb.api._reset_for_tests()  # detach before the capture goes
    cap.stop()


def table_rows(table: Any) -> list[tuple[str, str]]:
    """(id, state) of the rows the table widget would send to the browser now."""
    import pyarrow as pa

    _head, data = table.page(0, 50)
    t = pa.ipc.open_stream(data).read_all().to_pydict()
    return list(zip(t["id"], t["state"], strict=True))


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0, timeout=120)


def kernel(script: str, data_dir: Path) -> subprocess.Popen[str]:
    """Another kernel: a Python process running ``script`` (flowbook imported as fb)."""
    code = "import json, sys, time\nimport flowbook as fb\n" + textwrap.dedent(script)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FLOWBOOK_DATA_DIR": str(data_dir)},
    )


def test_live_streaming_state_and_changes_through_attach(
    capture: Capture, upstream: FakeUpstream
) -> None:
    mon = fb.attach(capture.data_dir)
    assert mon.pid == capture.pid and mon.proxy_url == capture.proxy_url
    changes: list[StoreChange] = []
    fb.flow_store().changed.connect(changes.append)
    table = fb.table()  # the live table widget, unchanged, on the remote store
    client = sdk(capture.proxy_url)

    def stream() -> str:
        s = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": LONG}],
            stream=True,
            extra_headers={"x-fake-delay": "0.4"},
        )
        return "".join(c.choices[0].delta.content or "" for c in s if c.choices)

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(stream)
        first = wait_for(lambda: first_row("state:streaming"), "a streaming row")
        fid, tokens0 = first["id"], int(first["output_tokens"])
        later = wait_for(
            lambda: (r := first_row("state:streaming")) and r["output_tokens"] > tokens0 and r,
            "the streaming row's tokens to grow",
        )
        assert later["id"] == fid
        # The table pushes the streaming row (its fresh row came with the capture's change).
        wait_for(lambda: table_rows(table)[:1] == [(fid, "streaming")], "the table's live row")
        text = call.result(timeout=120)
    wait_for(lambda: table_rows(table) == [(fid, "completed")], "the table's completed row")
    assert text == f"Echo: {LONG}"
    # The client can read [DONE] before mitmproxy's response hook has run: wait for the end.
    wait_for(lambda: (r := first_row()) and r["state"] == "completed", "the completed flow")
    assert str(fb.flows().dtypes["state"]).startswith("string")
    assert fb.get_flow(fid).response is not None
    assert fb.get_flow(fid).response.text == text
    wait_for(lambda: any(fid in c.added for c in changes), "an added change")
    wait_for(lambda: any(fid in c.updated for c in changes), "an updated change")
    assert fb.status()["attached"] is True


def test_intercept_from_an_attached_kernel_edits_the_upstream_request(
    capture: Capture, upstream: FakeUpstream
) -> None:
    fb.attach(capture.data_dir)
    heard: list[str] = []
    fb.intercept.get_controller().notice.connect(lambda kind, fid, msg: heard.append(kind))
    client = sdk(capture.proxy_url)
    fb.intercept.enable("model:gpt-4o-mini", timeout=60)
    assert fb.intercept.status()["enabled"] is True
    panel = fb.intercept_panel()  # the approval widget, unchanged, on the remote controller
    assert panel.pending == [] and panel.status["enabled"] is True
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(
            lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        )
        (p,) = wait_for(fb.intercept.pending, "a paused flow")
        # The capture's change log reaches the panel through the controller's changed signal.
        wait_for(lambda: [q["id"] for q in panel.pending] == [p.id], "the panel to show it")
        assert p.stage == "request" and p.editable["messages"] == MSG and p.remaining_s > 0
        assert list(fb.flows("state:intercepted")["id"]) == [p.id]
        with pytest.raises(EditError):
            fb.intercept.resume(p.id, request_body={"model": "gpt-4o-mini", "messages": "x"})
        assert [q.id for q in fb.intercept.pending()] == [p.id], "a bad edit leaves it paused"
        edited = {**p.editable, "messages": [{"role": "user", "content": "edited remotely"}]}
        fb.intercept.resume(p.id, request_body=edited)
        answer = call.result(timeout=60)
    assert answer.choices[0].message.content == "Echo: edited remotely"
    sent = [json.loads(r.body) for r in upstream.requests if r.path.endswith("/completions")]
    assert sent[-1]["messages"] == edited["messages"]
    wait_for(lambda: "paused" in heard, "the paused notice")
    fb.intercept.disable()
    # Rules: a mock rule answers without the upstream; listed and removed remotely.
    rid = fb.intercept.add_rule("model:gpt-4o-mini", "mock", text="canned")
    assert [r.id for r in fb.intercept.rules()] == [rid]
    got = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert got.choices[0].message.content == "canned"
    fb.intercept.remove_rule(rid)
    assert fb.intercept.rules() == []
    # Drop: the client gets an error; the flow ends cancelled.
    fb.intercept.enable(timeout=60)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(
            lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        )
        (p,) = wait_for(fb.intercept.pending, "a paused flow")
        fb.intercept.drop(p.id)
        with pytest.raises(openai.APIStatusError):
            call.result(timeout=60)
    fb.intercept.disable()
    assert wait_for(lambda: fb.get_flow(p.id).state.value == "cancelled", "the dropped flow")


SECOND_KERNEL = """
mon = fb.attach()
seen = []
fb.flow_store().changed.connect(lambda c: seen.extend(sorted(c.added)))
print(json.dumps({"pid": mon.pid}), flush=True)
sys.stdin.readline()  # the first kernel made its call
deadline = time.monotonic() + 60
while not seen and time.monotonic() < deadline:
    time.sleep(0.05)
df = fb.flows()
print(json.dumps({"seen": seen, "ids": list(df["id"]), "models": list(df["model"]),
                  "kernels": fb.status()["attached_kernels"]}), flush=True)
"""


def test_a_second_kernel_attaches_and_sees_the_same_flows(capture: Capture, data_dir: Path) -> None:
    fb.attach(capture.data_dir)
    proc = kernel(SECOND_KERNEL, data_dir)
    assert proc.stdout is not None and proc.stdin is not None
    hello = json.loads(proc.stdout.readline())
    assert hello["pid"] == capture.pid
    sdk(capture.proxy_url).chat.completions.create(model="gpt-4o", messages=MSG)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = json.loads(proc.stdout.readline())
    proc.wait(timeout=30)
    mine = fb.flows()
    assert out["ids"] == list(mine["id"]) and out["models"] == ["gpt-4o"]
    assert out["seen"] == out["ids"], "the second kernel's changed signal saw the flow"
    assert out["kernels"] >= 2


def test_token_is_enforced(capture: Capture) -> None:
    path = capture.data_dir / "capture.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    url = f"http://127.0.0.1:{capture.port}"
    body = {"method": "len", "args": {}}
    with httpx.Client(trust_env=False) as h:
        assert h.post(url + "/v1/call", json=body).status_code == 401
        bad = {"Authorization": "Bearer " + "x" * 43}
        assert h.post(url + "/v1/call", json=body, headers=bad).status_code == 401
        assert h.get(url + "/v1/changes?since=0", headers=bad).status_code == 401
        good = {"Authorization": "Bearer " + capture.token()}
        r = h.post(url + "/v1/call", json=body, headers=good)
        assert r.status_code == 200 and r.json() == {"result": 0}
        page = {**good, "Origin": "http://evil.example"}
        assert h.post(url + "/v1/call", json=body, headers=page).status_code == 403
    with pytest.raises(PermissionError, match="token"):
        ControlClient(capture.port, "wrong").call("len")


def test_replay_after_reconnect_from_a_sequence_number(capture: Capture) -> None:
    fb.attach(capture.data_dir)
    client = ControlClient.for_data_dir(capture.data_dir, capture.port)
    hello = client.call("hello")
    seq0, instance = hello["seq"], hello["instance"]
    api = sdk(capture.proxy_url)
    api.chat.completions.create(model="gpt-4o", messages=MSG)
    first = wait_for(lambda: (r := first_row()) and r["id"], "flow 1")
    mid = wait_for(lambda: (s := client.call("hello")["seq"]) > seq0 and s, "a change")
    api.chat.completions.create(model="o3-mini", messages=MSG)
    second = wait_for(lambda: (r := first_row("model:o3-mini")) and r["id"], "flow 2")
    wait_for(
        lambda: any(second in c.get("added", []) for c in client.changes(mid, 0)["changes"]),
        "flow 2's change",
    )
    # A kernel that saw everything up to `mid` gets exactly what followed, numbered.
    rest = client.changes(mid, 0)
    assert rest["reset"] is False and rest["instance"] == instance
    seqs = [c["seq"] for c in rest["changes"]]
    assert seqs == list(range(mid + 1, rest["seq"] + 1))
    ids = {i for c in rest["changes"] for i in c.get("added", []) + c.get("updated", [])}
    assert second in ids and first not in {i for c in rest["changes"] for i in c.get("added", [])}
    # A store that reconnects from seq0 replays both flows into its changed signal.
    replayed: list[StoreChange] = []
    again = ControlClient.for_data_dir(capture.data_dir, capture.port)
    store = RemoteStore(capture.data_dir, again, instance=instance, seq=seq0)
    store.changed.connect(replayed.append)
    try:
        wait_for(
            lambda: {first, second} <= {i for c in replayed for i in c.added},
            "the replayed additions",
        )
        assert store.last_seq >= rest["seq"]
    finally:
        store.close()
    # A number the capture never gave out (another capture's) means: start over.
    assert client.changes(10**9, 0)["reset"] is True


HOLDING_KERNEL = """
fb.attach()
fb.intercept.enable(timeout=2, timeout_action="continue")
deadline = time.monotonic() + 60
while not fb.intercept.pending() and time.monotonic() < deadline:
    time.sleep(0.05)
p = fb.intercept.pending()[0]
fb.intercept.hold(p.id)  # someone opened the editor ... and the kernel dies
print(p.id, flush=True)
time.sleep(600)
"""


def test_a_held_flow_is_released_by_its_timeout_when_its_kernel_goes_away(
    capture: Capture, data_dir: Path
) -> None:
    fb.attach(capture.data_dir)
    holder = kernel(HOLDING_KERNEL, data_dir)
    client = sdk(capture.proxy_url)
    try:
        wait_for(lambda: fb.intercept.status()["enabled"], "the other kernel's breakpoint")
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(lambda: client.chat.completions.create(model="gpt-4o", messages=MSG))
            assert holder.stdout is not None
            fid = holder.stdout.readline().strip()
            (p,) = fb.intercept.pending()
            assert p.id == fid and p.editing, "held: its countdown is frozen"
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            # Without the lease the flow would hang forever; it continues at its timeout.
            answer = call.result(timeout=60)
        assert answer.choices[0].message.content == "Echo: What is the weather?"
        flow = wait_for(lambda: (f := fb.get_flow(fid)).state.value == "completed" and f, "done")
        assert [e["outcome"] for e in flow.metadata.intercepted] == ["timeout_continue"]
    finally:
        if holder.poll() is None:
            holder.kill()
        fb.intercept.disable()


DETACHING_KERNEL = """
mon = fb.start(port=0, mode=sys.argv[1], detached=True)
print(json.dumps({"pid": mon.pid, "url": mon.proxy_url}), flush=True)
"""


def test_detached_start_outlives_its_kernel_is_found_again_and_stopped(
    upstream: FakeUpstream, data_dir: Path
) -> None:
    # Kernel 1 starts a detached capture and exits without stopping it (a restart).
    code = "import json, sys\nimport flowbook as fb\n" + textwrap.dedent(DETACHING_KERNEL)
    out = subprocess.run(
        [sys.executable, "-c", code, f"reverse:{upstream.url}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLOWBOOK_DATA_DIR": str(data_dir)},
    )
    assert out.returncode == 0, out.stderr
    started = json.loads(out.stdout.splitlines()[-1])
    assert _pid_alive(started["pid"]), "the capture outlived the kernel that started it"
    sdk(started["url"]).chat.completions.create(model="gpt-4o", messages=MSG)
    # Kernel 2 (this process) starts again: it finds the running capture instead.
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir, detached=True)
    assert mon.pid == started["pid"] and mon.proxy_url == started["url"]
    assert list(fb.flows()["model"]) == ["gpt-4o"]
    assert fb.status()["running"] is True
    fb.stop()
    from flowbook.attached import _reaped

    wait_for(lambda: not _pid_alive(started["pid"]) or _reaped(started["pid"]), "its exit")
    assert not (data_dir / "capture.json").exists() and not (data_dir / "capture.token").exists()
    assert fb.monitor() is None
    # The kernel reads the data dir's history locally now.
    assert list(fb.flows(include_history=True)["model"]) == ["gpt-4o"]
    with pytest.raises(RuntimeError, match="no capture process"):
        fb.attach(data_dir)


def test_attach_without_a_capture_says_how_to_start_one(data_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="flowbook capture --data-dir"):
        fb.attach(data_dir)


def test_detaching_ends_the_poller_and_leaves_the_capture_running(capture: Capture) -> None:
    ws_mon = fb.attach(capture.data_dir)
    store = fb.flow_store()
    assert isinstance(store, RemoteStore)
    poller = store.poller
    fb.api._reset_for_tests()
    wait_for(lambda: not poller._thread.is_alive(), "the poller thread to end")
    assert _pid_alive(ws_mon.pid), "detaching leaves the capture running"
    assert find_capture(capture.data_dir) is not None


def test_flowmon_start_detached_and_attach_from_a_cell(
    upstream: FakeUpstream, data_dir: Path
) -> None:
    # run_line is what %flowmon runs (IPython's global test shell starts once per process and
    # belongs to test_magics_cli).
    from flowbook.magics import MagicUsageError, run_line

    with pytest.raises(MagicUsageError, match="no capture process is running"):
        run_line(f"attach --data-dir {data_dir}")
    mon = run_line(f"start --detached --port 0 --mode reverse:{upstream.url} --data-dir {data_dir}")
    try:
        assert mon.pid != os.getpid() and "detached" in repr(mon)
        fb.api._reset_for_tests()  # a kernel restart: the capture keeps running
        again = run_line(f"attach --data-dir {data_dir}")
        assert again.pid == mon.pid and again.proxy_url == mon.proxy_url
        sdk(again.proxy_url).chat.completions.create(model="gpt-4o", messages=MSG)
        assert list(run_line("flows model:gpt-4o")["model"]) == ["gpt-4o"]
    finally:
        assert run_line("stop") == "flowbook stopped"
    assert find_capture(data_dir) is None and fb.monitor() is None
    log = (data_dir / "capture.log").read_text()
    # `flowbook capture` says where it writes and how to attach.
    assert f"writes flows to {data_dir}/flows" in log and "fb.attach(" in log
    assert "%flowmon attach --data-dir" in log and "capture.token" in log


def test_when_the_capture_ends_elsewhere_the_kernel_reads_the_data_dir(
    capture: Capture,
) -> None:
    fb.attach(capture.data_dir)
    sdk(capture.proxy_url).chat.completions.create(model="gpt-4o", messages=MSG)
    with pytest.raises(Exception, match="column"):
        fb.flows("model:(")  # a bad filter fails here, pointing at the column
    assert fb.wait_idle()
    capture.stop()  # Ctrl-C in its terminal
    assert fb.monitor() is None and fb.status()["running"] is False
    assert list(fb.flows(include_history=True)["model"]) == ["gpt-4o"]


def test_an_in_kernel_start_joins_the_capture_process_instead_of_a_second_proxy(
    capture: Capture, upstream: FakeUpstream
) -> None:
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=capture.data_dir)
    assert mon.pid == capture.pid and fb.status()["attached"] is True

"""A writer killed with SIGKILL loses no flow whose append returned a second before the kill.

Then the damage a killed kernel can leave is repaired on open: a torn last line is skipped and
reported, a missing or corrupt index is rebuilt from the segments.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from flowbook.model import (
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Usage,
)
from flowbook.store.file_store import FileStore
from flowbook.store.records import flow_line


def make_flow(i: int) -> LLMFlow:
    """A completed flow; the child process builds the same ones (source copied over)."""
    t = time.time()
    return LLMFlow(
        id=f"kill-{i:06d}",
        state=FlowState.COMPLETED,
        request=LLMRequest(
            host="api.anthropic.com",
            path="/v1/messages",
            model="claude-sonnet-4",
            messages=[Message("user", [Part("text", text=f"prompt number {i} " * 20)])],
        ),
        response=LLMResponse(
            status_code=200, text=f"answer {i}", usage=Usage(input=10, output=5, source="reported")
        ),
        metadata=FlowMetadata(provider="anthropic", api="messages"),
        timestamps=FlowTimestamps(created=t, completed=t + 0.5),
    )


CHILD = """
import sys, time
from flowbook.model import *
from flowbook.store.file_store import FileStore
from flowbook.store.records import flow_line
{make_flow}
store = FileStore(sys.argv[1])
i = 0
while True:
    store.append(make_flow(i))
    print(i, time.monotonic(), flush=True)
    i += 1
    time.sleep(0.002)
"""


def _kill_writer_mid_stream(data_dir: Path) -> tuple[list[int], float]:
    """Run the child until it has appended for a while; SIGKILL it. Return (acked ids, kill)."""
    script = CHILD.format(make_flow=textwrap.dedent(inspect.getsource(make_flow)))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[tuple[int, float]] = []
    assert proc.stdout is not None
    try:
        start = time.monotonic()
        while time.monotonic() - start < 60:
            line = proc.stdout.readline()
            if not line:
                break
            i, t = line.split()
            acked.append((int(i), float(t)))
            # Keep writing well past the point we check, so the kill lands mid-stream.
            if len(acked) >= 200 and acked[-1][1] - acked[0][1] > 1.5:
                break
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, stderr
    assert len(acked) >= 200, stderr
    safe = [i for i, t in acked if t < killed_at - 1.0]
    return safe, killed_at


def test_sigkill_keeps_flows_then_torn_line_and_bad_index_are_repaired(tmp_path: Path) -> None:
    safe, _ = _kill_writer_mid_stream(tmp_path)
    assert len(safe) > 50

    with FileStore(tmp_path) as store:
        ids = set(store.summary_frame()["id"])
        for i in safe:
            assert f"kill-{i:06d}" in ids
            got = store.get(f"kill-{i:06d}")
            assert got is not None and got.response is not None
            assert got.response.text == f"answer {i}"
        n_complete = len(store)
        index_path = store.index_path

    # A torn last line (the write a kill interrupts) plus a lost index.
    seg = max((tmp_path / "flows" / "segments").rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    data = seg.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn_id = json.loads(data[last_start:])["id"]
    seg.write_bytes(data[: last_start + (len(data) - last_start) // 2])
    index_path.unlink()
    with FileStore(tmp_path) as store:
        report = " ".join(store.recovery_report)
        assert "torn last line" in report and seg.name in report
        assert "Rebuilt the index" in report
        assert len(store) == n_complete - 1
        assert store.get(torn_id) is None
        assert all(
            store.get(f"kill-{i:06d}") is not None for i in safe if f"kill-{i:06d}" != torn_id
        )
        store.append(make_flow(999_999))  # a new segment; the torn one is never appended to

    # Reopening does not report the same torn line again.
    with FileStore(tmp_path) as store:
        assert store.recovery_report == []
        assert len(store) == n_complete

    # Garbage in the index file: moved aside and rebuilt.
    index_path.write_bytes(b"this is not an sqlite database" * 100)
    with FileStore(tmp_path) as store:
        report = " ".join(store.recovery_report)
        assert "unreadable" in report and "Rebuilt the index" in report
        assert len(store) == n_complete
        assert store.get("kill-999999") is not None
    assert list(index_path.parent.glob("index.sqlite.corrupt-*"))


AGENT_CHILD = """
import sys
from flowbook.store.file_store import FileStore
from flowbook.store.records import flow_line
from tests.unit.test_content_store import agent_flow
store = FileStore(sys.argv[1])
i = 0
while True:
    store.append(agent_flow(i % 25, session=f"k{i // 25}"))
    print(i, flush=True)
    i += 1
"""


def test_sigkill_during_content_writes_leaves_no_dangling_reference(tmp_path: Path) -> None:
    """Kill a writer of agent turns (deduplicated content, delta recipes) at several points."""
    from tests.unit.test_content_store import agent_flow

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    acked_total: list[int] = []
    for round_, stop_after in enumerate((7, 31, 58)):
        data_dir = tmp_path / f"run{round_}"
        proc = subprocess.Popen(
            [sys.executable, "-c", AGENT_CHILD, str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        acked: list[int] = []
        while len(acked) < stop_after:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)  # mid-write of the next flow, most likely
        proc.wait(timeout=10)
        assert len(acked) == stop_after, proc.stderr.read() if proc.stderr else ""
        acked_total += acked
        with FileStore(data_dir) as store:
            ids = store.ids()
            for i in acked:  # every acknowledged flow, byte for byte
                want = agent_flow(i % 25, session=f"k{i // 25}")
                got = store.get(want.id)
                assert got is not None and flow_line(got) == flow_line(want)
            for flow_id in ids:  # and nothing the index lists refers to missing content
                assert store.get(flow_id) is not None
            # The writer keeps going while the kill is on its way (one flow or more, as the
            # machine's load decides): what is stored is the acknowledged flows and then a
            # run of the next ones in order, with no gap.
            assert len(ids) >= stop_after
            assert set(ids) == {
                agent_flow(i % 25, session=f"k{i // 25}").id for i in range(len(ids))
            }
            store.append(agent_flow(24, session="after"))
        with FileStore(data_dir) as store:
            assert store.recovery_report == []
            assert store.get("after-turn-024") is not None
    assert len(acked_total) == 96

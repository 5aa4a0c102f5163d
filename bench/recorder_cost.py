"""Recorder-thread CPU per flow, and the session tracker's share of it (issue #11 §3).

The recorder thread shares the GIL with mitmproxy's loop, so what it spends per flow slows the
proxy. This feeds synthetic agent traffic (multi-turn OpenAI chat conversations of several
clients, half of them streamed) through a real ``Workspace``'s ``FlowRecorder`` the way the
addon does (ops queued, applied by the worker thread in batches of ``--concurrency`` flows in
flight), and measures on the worker thread:

* ``cpu``: CPU seconds per flow (``time.thread_time`` read by ops on the worker itself), with
  the session tracker wired as in a workspace and with it unhooked; the difference is the
  tracker's cost;
* ``profile``: cProfile of the worker: cumulative time under the tracker's entry points
  (``SessionTracker.on_put`` / ``end_batch``), calls of the file store's ``__contains__``;
* ``sql``: SQLite statements the tracker's connection runs per flow (its trace callback).

Before/after run interleaved, each variant in a fresh process with its own flowbook on
``PYTHONPATH``::

    git archive dd1d284 flowbook | tar -x -C /tmp/base
    PYTHONPATH=$PWD python -m bench.recorder_cost --baseline /tmp/base --flows 400 --rounds 3
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODES = ("cpu", "cpu-untracked", "profile")


# ---- the traffic -----------------------------------------------------------------------------


def _view(body: dict[str, Any], client: int) -> Any:
    from flowbook.providers.base import RequestView

    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer sk-proj-client{client:04d}KEYaaaa1111bbbb{client:04d}",
        "user-agent": f"agent-{client % 4}/1.0",
    }
    return RequestView(
        method="POST",
        url="http://127.0.0.1:8000/v1/chat/completions",
        host="127.0.0.1",
        path="/v1/chat/completions",
        headers=headers,
        body=json.dumps(body).encode(),
        port=8000,
    )


def _answer(conv: int, turn: int) -> str:
    return f"conversation {conv} answer {turn}: " + "lorem ipsum dolor sit amet " * 8


def flow_ops(fid: str, conv: int, turn: int, client: int, created: float) -> list[Any]:
    """The ops of one flow: turn ``turn`` of conversation ``conv`` (continuing its turns)."""
    from flowbook.capture.detection import CallDetector
    from flowbook.capture.ops import Begin, Chunk, RequestSent, ResponseEnd, ResponseHeaders

    messages: list[dict[str, str]] = [{"role": "system", "content": "You are an agent."}]
    for t in range(turn + 1):
        messages.append({"role": "user", "content": f"conversation {conv} question {t}"})
        if t < turn:
            messages.append({"role": "assistant", "content": _answer(conv, t)})
    stream = (conv + turn) % 2 == 0
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages}
    if stream:
        body["stream"] = True
    view = _view(body, client)
    found = CallDetector().detect(view)
    assert found is not None
    text = _answer(conv, turn)
    ops: list[Any] = [
        Begin(fid, view, found[0], found[1], created=created, client_address="10.0.0.5:5000"),
        RequestSent(fid, created + 0.01),
    ]
    if stream:
        ops.append(
            ResponseHeaders(
                fid, created + 0.1, 200, "OK", {"content-type": "text/event-stream"}, True
            )
        )
        words = text.split(" ")
        for i in range(0, len(words), 6):
            piece = " ".join(words[i : i + 6]) + " "
            delta = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            data = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini", **delta}
            ops.append(
                Chunk(fid, created + 0.2 + i / 100, f"data: {json.dumps(data)}\n\n".encode())
            )
        end = {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50 + turn * 40, "completion_tokens": 40},
        }
        ops.append(
            Chunk(fid, created + 0.9, f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        )
        ops.append(ResponseEnd(fid, created + 1.0, None))
    else:
        answer = {
            "id": "c",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 50 + turn * 40, "completion_tokens": 40},
        }
        ops.append(
            ResponseHeaders(
                fid, created + 0.1, 200, "OK", {"content-type": "application/json"}, False
            )
        )
        ops.append(ResponseEnd(fid, created + 0.5, json.dumps(answer).encode()))
    return ops


def schedule(
    n: int, concurrency: int, turns: int = 5, prefix: str = "f", first_conv: int = 0
) -> list[list[Any]]:
    """Ops in ticks: ``concurrency`` flows in flight, each advancing one op per tick (a tick is
    one recorder batch). A conversation's next turn starts once its previous turn is done."""
    t0 = time.time()
    pending = [(first_conv + i // turns, i % turns) for i in range(n)]  # (conversation, turn)
    by_conv: dict[int, list[int]] = {}
    for conv, turn in pending:
        by_conv.setdefault(conv, []).append(turn)
    convs = sorted(by_conv)
    ready = list(convs)
    flying: list[tuple[int, list[Any]]] = []  # (conversation, ops left)
    ticks: list[list[Any]] = []
    k = 0
    while ready or flying:
        while ready and len(flying) < concurrency:
            conv = ready.pop(0)
            turn = by_conv[conv].pop(0)
            ops = flow_ops(f"{prefix}{k:06d}", conv, turn, client=conv % 8, created=t0 + k * 0.01)
            k += 1
            flying.append((conv, ops))
        tick = []
        still = []
        for conv, ops in flying:
            tick.append(ops.pop(0))
            if ops:
                still.append((conv, ops))
            elif by_conv[conv]:
                ready.append(conv)
        flying = still
        ticks.append(tick)
    return ticks


# ---- one measurement (a child process) -------------------------------------------------------


def _drain(ws: Any) -> None:
    """Wait until the tracker has applied every put it noted, and the file store wrote all."""
    tracker = ws.sessions
    deadline = time.monotonic() + 30
    while getattr(tracker, "_queue", None) and time.monotonic() < deadline:
        time.sleep(0.005)
    with tracker.db.lock:
        pass  # an apply in progress holds it
    ws.store.wait_idle(30)


def child(mode: str, flows: int, concurrency: int) -> dict[str, Any]:
    from flowbook.capture.ops import Begin, Call
    from flowbook.workspace import Workspace

    out: dict[str, Any] = {"mode": mode, "flows": flows}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data")
        store, rec = ws.store, ws.runtime.recorder
        store.mark_capturing()
        store.disk  # noqa: B018  # open the file store before measuring (as fb.start does)
        if mode == "cpu-untracked":
            store.on_put.clear()
            getattr(store, "on_batch_end", []).clear()
        statements = [0]
        if mode == "cpu":
            conn = ws.sessions.db._conn

            def trace(_sql: str) -> None:
                statements[0] += 1

            conn.set_trace_callback(trace)
        ticks = schedule(flows, concurrency)
        # Warm up (imports, compiled patterns, prepared statements) on other conversations.
        for tick in schedule(20, concurrency, prefix="w", first_conv=10**5):
            for op in tick:
                rec.submit(op)
            rec.wait_idle(30)
        # A probe flow whose Call ops run on the worker: they read its CPU clock (and start and
        # stop the profiler there: cProfile profiles the thread that enables it).
        probe = flow_ops("probe", 10**6, 0, client=99, created=time.time())
        for op in probe[:2]:
            rec.submit(op)
        prof = cProfile.Profile()
        marks: dict[str, float] = {}

        def start(_flow: Any) -> None:
            if mode == "profile":
                prof.enable()
            marks["start"] = time.thread_time()

        def stop(_flow: Any) -> None:
            marks["stop"] = time.thread_time()
            if mode == "profile":
                prof.disable()

        rec.submit(Call("probe", start))
        rec.wait_idle(30)
        _drain(ws)
        statements[0] = 0
        p0 = time.process_time()
        for tick in ticks:
            for op in tick:
                rec.submit(op)
            rec.wait_idle(30)  # the tick's ops make one batch
        rec.submit(Call("probe", stop))
        assert rec.wait_idle(60)
        _drain(ws)
        out["process_cpu_ms_per_flow"] = (time.process_time() - p0) * 1000 / flows
        sql = statements[0]
        assert isinstance(probe[0], Begin)
        out["batches"] = len(ticks)
        out["cpu_ms_per_flow"] = (marks["stop"] - marks["start"]) * 1000 / flows
        if mode == "cpu":
            out["sql_per_flow"] = sql / flows
            out["tracker_errors"] = len(ws.sessions.errors) + len(store.hook_errors)
            df = ws.flows(include_history=False, page_size=1)
            out["stored"] = int(df.attrs.get("total", len(df)))
            frame = store.frame()
            sess = frame["session"].dropna()
            out["flows_with_session"] = len(sess)
            out["sessions"] = int(sess.nunique())
            out["threaded"] = int((frame["turn"].fillna(1) > 1).sum())
        if mode == "profile":
            st = pstats.Stats(prof)
            if os.environ.get("RECORDER_COST_DUMP"):
                st.dump_stats(os.environ["RECORDER_COST_DUMP"])
            tracker = 0.0
            contains = 0
            total = 0.0
            for (path, _line, name), (_cc, nc, _tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
                if path.endswith(os.path.join("grouping", "tracker.py")) and name in (
                    "on_put",
                    "end_batch",
                ):
                    tracker += ct
                if path.endswith("file_store.py") and name == "__contains__":
                    contains += nc
                if name == "stop":
                    continue
            total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
            out["profiled_ms_per_flow"] = total * 1000 / flows
            out["tracker_ms_per_flow"] = tracker * 1000 / flows
            out["disk_id_lookups_per_flow"] = contains / flows
        ws.close()
    return out


# ---- the interleaved comparison --------------------------------------------------------------


def run_child(root: Path, mode: str, flows: int, concurrency: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{REPO}")
    cmd = [sys.executable, "-m", "bench.recorder_cost", "--child", mode]
    cmd += ["--flows", str(flows), "--concurrency", str(concurrency)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="a dir holding the 'before' flowbook package")
    ap.add_argument("--label", default="dd1d284", help="what the baseline is")
    ap.add_argument("--flows", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8, help="flows in flight per batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "recorder-cost.txt")
    ap.add_argument("--child", choices=MODES)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.flows, a.concurrency)))
        return
    variants = [("after", REPO)]
    if a.baseline is not None:
        variants.insert(0, (f"before ({a.label})", a.baseline))
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(a.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for mode in MODES:
            for label, root in order:
                res = run_child(root, mode, a.flows, a.concurrency)
                got.setdefault((label, mode), []).append(res)
                print(f"round {r + 1} {label:>18} {mode:>14}: {res}", file=sys.stderr)

    def med(label: str, mode: str, key: str) -> float:
        return statistics.median(float(x[key]) for x in got[(label, mode)])

    lines = [
        f"bench.recorder_cost: {a.flows} flows, {a.concurrency} in flight per recorder batch, "
        f"{a.rounds} rounds interleaved, medians; load {os.getloadavg()[0]:.1f} at the end",
        f"python -m bench.recorder_cost --baseline DIR --flows {a.flows} "
        f"--concurrency {a.concurrency} --rounds {a.rounds}",
        "",
        f"{'':>18} {'worker ms':>10} {'untracked':>10} {'tracker':>9} {'process ms':>11} "
        f"{'untracked':>10} {'tracker':>9} {'cProfile':>9} {'sql/flow':>9} {'disk ids':>9}",
    ]
    table: dict[str, dict[str, float]] = {}
    for label, _root in variants:
        cpu = med(label, "cpu", "cpu_ms_per_flow")
        base = med(label, "cpu-untracked", "cpu_ms_per_flow")
        pcpu = med(label, "cpu", "process_cpu_ms_per_flow")
        pbase = med(label, "cpu-untracked", "process_cpu_ms_per_flow")
        row = {
            "cpu": cpu,
            "untracked": base,
            "tracker": cpu - base,
            "process": pcpu,
            "process_untracked": pbase,
            "process_tracker": pcpu - pbase,
            "profiled": med(label, "profile", "tracker_ms_per_flow"),
            "sql": med(label, "cpu", "sql_per_flow"),
            "disk": med(label, "profile", "disk_id_lookups_per_flow"),
        }
        table[label] = row
        lines.append(
            f"{label:>18} {row['cpu']:10.3f} {row['untracked']:10.3f} {row['tracker']:9.3f} "
            f"{row['process']:11.3f} {row['process_untracked']:10.3f} "
            f"{row['process_tracker']:9.3f} {row['profiled']:9.3f} {row['sql']:9.1f} "
            f"{row['disk']:9.2f}"
        )
    checks = {
        label: {
            k: got[(label, "cpu")][-1][k]
            for k in ("stored", "flows_with_session", "sessions", "threaded", "tracker_errors")
        }
        for label, _ in variants
    }
    lines.append("")
    lines.append("what users see (last cpu run): " + json.dumps(checks))
    if len(variants) == 2:
        b, n = table[variants[0][0]], table[variants[1][0]]
        lines.append("")
        for key, what in (
            ("cpu", "recorder-thread CPU per flow, tracker on"),
            ("tracker", "tracker CPU per flow on the recorder thread (on - off)"),
            ("process_tracker", "tracker CPU per flow, whole process (on - off)"),
            ("profiled", "tracker time per flow on the recorder thread under cProfile"),
            ("sql", "SQLite statements per flow"),
        ):
            ratio = f"{b[key] / n[key]:.2f}x" if n[key] > 0.001 else "n/a (after ~0)"
            lines.append(f"{what}: before {b[key]:.3f}, after {n[key]:.3f}, before/after {ratio}")
    lines.append(
        "columns: worker = recorder-thread CPU ms per flow with the tracker; untracked = the "
        "same with the tracker unhooked; tracker = the difference; process = the same three "
        "for the whole process (all threads: recorder, tracker, file store writer), from the "
        "first op until the tracker and the writer are done; cProfile = cumulative ms under "
        "SessionTracker.on_put/end_batch on the recorder thread (profiler overhead and GIL "
        "waits included); sql = statements on sessions.sqlite; disk ids = "
        "FileStore.__contains__ calls per flow on the recorder thread"
    )
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == "__main__":
    main()

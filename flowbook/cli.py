"""The ``flowbook`` command: headless capture, queries, exports, the demo and JupyterLab."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", default=None, help="data dir (default: $FLOWBOOK_DATA_DIR or ~/.flowbook)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    cap = sub.add_parser(
        "capture", help="run the proxy, writing flows to the data dir, until Ctrl-C"
    )
    cap.add_argument("--port", type=int, default=8080)
    cap.add_argument("--host", default="127.0.0.1")
    cap.add_argument(
        "--mode",
        action="append",
        default=None,
        help="mitmproxy mode spec; repeat for several (default: regular)",
    )
    cap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a mitmproxy option (VALUE as JSON, else a string), e.g. --set ssl_insecure=true",
    )
    cap.add_argument(
        "--lease",
        type=float,
        default=None,
        help="seconds an attached kernel may be silent before its holds on paused flows are "
        "released (default 15)",
    )
    _add_data_dir(cap)

    run = sub.add_parser(
        "run",
        help="run a program with its LLM calls captured, then summarise them",
        usage="flowbook run [--data-dir DIR] [--port N] [--ssl-insecure] [--reverse] "
        "-- CMD [ARGS ...]",
        description="Start a capture (or join the one running for the data dir), run CMD with "
        "the proxy variables and flowbook's CA (or, with --reverse, provider base URLs), "
        "print a summary and exit with CMD's exit code.",
    )
    run.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument(
        "--ssl-insecure",
        action="store_true",
        help="accept upstream servers' self-signed or invalid certificates (mitmproxy option)",
    )
    run.add_argument(
        "--reverse",
        action="store_true",
        help="base-URL mode: one reverse listener per provider and OPENAI_BASE_URL, "
        "ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL set, for programs that ignore proxies",
    )
    _add_data_dir(run)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the program and its arguments")

    fl = sub.add_parser("flows", help="print stored flows")
    fl.add_argument("filter", nargs="?", default=None)
    fl.add_argument("--limit", type=int, default=50)
    fl.add_argument(
        "--columns",
        default="id,timestamp,provider,model,state,status_code,"
        "input_tokens,output_tokens,cost_usd,latency_ms,ttft_ms",
    )
    _add_data_dir(fl)

    st = sub.add_parser("stats", help="print usage statistics")
    st.add_argument("--by", default="model")
    st.add_argument("--filter", default=None)
    _add_data_dir(st)

    ex = sub.add_parser("export", help="export stored flows (HAR, Markdown, JSON, CSV, …)")
    ex.add_argument("format", help="har | markdown | json | jsonl | csv | parquet | mitmproxy")
    ex.add_argument("path", help="file to write (a directory for parquet)")
    ex.add_argument("--filter", default=None, help="filter expression, e.g. 'model:gpt-4o'")
    ex.add_argument("--no-redact", action="store_true", help="keep secrets (warns)")
    _add_data_dir(ex)

    demo = sub.add_parser("demo", help="offline demo: fake upstream + real SDKs through the proxy")
    demo.add_argument(
        "--data-dir", default=None, help="keep the demo's flows here (default: a temporary dir)"
    )

    lab = sub.add_parser("lab", help="JupyterLab on the quickstart notebook")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("lab_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "capture":
            code = _capture(args)
            if argv is None:  # as for run: leave without the final GC that may crash
                _exit_now(code)
            return code
        if args.command == "run":
            code = _run(args)
            if argv is None:  # the flowbook command itself, not a caller in Python
                _exit_now(code)
            return code
        if args.command == "flows":
            return _flows(args)
        if args.command == "stats":
            return _stats(args)
        if args.command == "export":
            return _export(args)
        if args.command == "demo":
            from flowbook.demo import run_demo

            return run_demo(data_dir=args.data_dir)
        if args.command == "lab":
            return _lab(args)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"flowbook: {exc}", file=sys.stderr)
        return 2
    return 1


def _mitm_options(pairs: list[str]) -> dict[str, object]:
    import json

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, e.g. --set ssl_insecure=true; got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _capture(args: argparse.Namespace) -> int:
    import shlex
    import signal
    import threading

    from flowbook import api as fb
    from flowbook.capture import discovery
    from flowbook.capture.control import DEFAULT_LEASE_S, ControlServer, write_token
    from flowbook.workspace import current

    ws = current(args.data_dir)
    mon = ws.start(
        args.port, args.host, args.mode or "regular", own_process=True, **_mitm_options(args.set)
    )
    _yield_cpu_to_the_proxy()
    server = ControlServer(
        ws, write_token(ws.data_dir), lease_s=args.lease or DEFAULT_LEASE_S
    ).start()
    discovery.announce(mon, control_port=server.port)
    stop = server.shutdown_requested
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    d = shlex.quote(str(ws.data_dir))
    print(repr(mon), flush=True)
    print(
        f"  writes flows to {ws.data_dir}/flows; announces itself in {ws.data_dir}/capture.json\n"
        f"  control channel 127.0.0.1:{server.port} (token in {ws.data_dir}/capture.token)\n"
        f"  attach a notebook:  fb.attach({str(ws.data_dir)!r})  or  %flowmon attach "
        f"--data-dir {d}\n"
        f"  from a terminal:    flowbook flows --data-dir {d}",
        flush=True,
    )
    last = ""
    try:
        while not stop.wait(0.5):
            if not mon.running:
                print("\nthe proxy process exited unexpectedly; stopping", file=sys.stderr)
                break
            s = fb.status()
            line = (
                f"\r{s['flows_in_session']} flows captured, {s['in_progress']} in progress, "
                f"{len(server.clients())} kernels attached  (Ctrl-C to stop)"
            )
            if line != last and sys.stdout.isatty():
                print(line, end="", flush=True)
            last = line
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        fb.stop()
        print(f"\nstopped; flows are in {mon.data_dir}", flush=True)
    return 0


#: The niceness of the capture process's threads (its proxy process keeps the default, 0).
#: 19, not 10: measured in one interleaved P3 run, 0.94x bare at 19, 0.89x at 10, 0.83-0.89x
#: without; after 20 s of saturation the recording still caught up within a second.
CAPTURE_NICE = 19


def _yield_cpu_to_the_proxy() -> None:
    """Lower this process's threads to ``CAPTURE_NICE``, once the proxy process runs.

    Everything here (parsing, pricing, storing, sessions, the control channel) happens after
    the bytes have gone to the client; the proxy process forwards them. When the machine's cores
    are all busy, the proxy should get them first and the recording catch up a moment later.
    Linux keeps a nice value per thread and new threads inherit their creator's, so every
    thread that exists now is lowered; threads started later (by these) inherit it. Elsewhere,
    or where the system refuses, nothing changes.
    """
    import contextlib
    import threading

    task_dir = Path("/proc/self/task")
    if not task_dir.is_dir():
        return
    # The thread that reads the proxy process's batches keeps its priority: if it fell behind,
    # the proxy process would wait for room in the socket to send more.
    keep = {t.native_id for t in threading.enumerate() if t.name == "flowbook-proxy-link"}
    for tid in task_dir.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if int(tid.name) not in keep:
                os.setpriority(os.PRIO_PROCESS, int(tid.name), CAPTURE_NICE)


def _exit_now(code: int) -> None:
    """Close the store and leave without the interpreter's final garbage collection.

    mitmproxy_rs's UDP listener (opened for ``reverse:https`` modes, which --reverse uses)
    crashes that collection now and then (SIGSEGV in about one exit in ten here), which would
    replace the program's exit code with 139. By now every flow is stored and closed.
    """
    from flowbook import api

    api._reset_for_tests()  # closes the runtime: writer flushed, file store closed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    from flowbook.capture.runner import run_command

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("flowbook run: give the program to run after --, e.g. flowbook run -- python app.py")
        return 2
    return run_command(
        cmd,
        data_dir=args.data_dir,
        port=args.port,
        host=args.host,
        ssl_insecure=args.ssl_insecure,
        reverse=args.reverse,
    )


def _flows(args: argparse.Namespace) -> int:
    import pandas as pd

    import flowbook as fb
    from flowbook.workspace import current

    current(args.data_dir)
    df = fb.flows(args.filter, include_history=True, page=1, page_size=args.limit)
    cols = [c for c in args.columns.split(",") if c in df.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[cols].to_string(index=False) if len(df) else "no flows")
    print(f"{len(df)} of {df.attrs.get('total', len(df))} flows")
    return 0


def _stats(args: argparse.Namespace) -> int:
    import pandas as pd

    from flowbook import api
    from flowbook.analysis.stats import stats
    from flowbook.workspace import current

    current(args.data_dir)
    df = api.flows(args.filter, include_history=True)
    by = [b for b in args.by.split(",") if b] or None
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(stats(df, by=by).to_string())
    return 0


def _export(args: argparse.Namespace) -> int:
    from flowbook import api
    from flowbook.workspace import current

    current(args.data_dir)
    path = api.export(args.filter, args.format, args.path, include_history=True,
                      redact_sensitive=not args.no_redact)  # fmt: skip
    print(f"exported to {path!s}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    nb = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        str(nb),
        f"--port={args.port}",
        "--ServerApp.ip=127.0.0.1",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    cmd += [a for a in args.lab_args if a != "--"]
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(main())

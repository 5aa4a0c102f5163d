"""Run a program with its LLM calls captured: ``flowbook run -- CMD``, ``mon.run(cmd)``,
``%flowmon run CMD``.

The program gets the environment of :mod:`flowbook.capture.client_env` (proxy variables and
flowbook's CA, or base URLs with ``--reverse``), its output is passed through as it comes, and
a one-screen summary of the calls it made follows. The exit code is the program's.
"""

from __future__ import annotations

import codecs
import datetime
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_MODELS = 8  # rows of the per-model table; the summary fits one screen
SETTLE_TIMEOUT = 6.0  # seconds to wait for another process's capture to store the last flows
SETTLE_QUIET = 1.5  # ... once no new flow has appeared for this long


@dataclass
class RunResult:
    """What ``mon.run(...)`` returns: the exit code, the flows captured while the program ran,
    and the summary text (also the repr)."""

    args: list[str]
    returncode: int
    flows: pd.DataFrame = field(repr=False)
    summary: str = ""

    def __repr__(self) -> str:
        return self.summary

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary)


def command_list(cmd: str | Sequence[str]) -> list[str]:
    """A command as an argv list (a string is split like a POSIX shell would)."""
    args = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    if not args:
        raise ValueError(
            "no command to run: give the program and its arguments, e.g. 'python x.py'"
        )
    return args


def returncode_of(status: int) -> int:
    """A shell's exit code for a child's status: a signal N becomes 128+N."""
    return 128 - status if status < 0 else status


def spawn(
    args: list[str],
    env: Mapping[str, str],
    *,
    relay_to: TextIO | None = None,
    **popen_kwargs: Any,
) -> int:
    """Run ``args`` to completion and return its (shell-style) exit code.

    ``relay_to`` None: the child shares our terminal (stdin, stdout, stderr), so interactive
    agents behave as if run directly. Otherwise its stdout and stderr are read as they come and
    written to ``relay_to`` (a notebook cell's output), partial lines included.
    """
    if relay_to is not None and "stdout" not in popen_kwargs:
        popen_kwargs["stdout"] = subprocess.PIPE
        popen_kwargs.setdefault("stderr", subprocess.STDOUT)
    else:
        relay_to = None
    try:
        proc = subprocess.Popen(args, env=dict(env), **popen_kwargs)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"command not found: {args[0]!r} (is it installed and on PATH?)"
        ) from None
    # Ctrl-C goes to the whole foreground process group: the child decides what it means, we
    # wait for it and still print the summary. SIGTERM to us is passed on to the child.
    handlers = _forward_signals(proc)
    try:
        if relay_to is not None and proc.stdout is not None:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            fd = proc.stdout.fileno()
            while chunk := os.read(fd, 65536):
                relay_to.write(decoder.decode(chunk))
                relay_to.flush()
            relay_to.write(decoder.decode(b"", final=True))
        return returncode_of(proc.wait())
    finally:
        _restore_signals(handlers)
        if proc.stdout is not None:
            proc.stdout.close()


def _forward_signals(proc: subprocess.Popen[Any]) -> dict[int, Any]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    saved: dict[int, Any] = {}

    def ignore_int(signum: int, frame: Any) -> None:
        pass  # the child got the same Ctrl-C from the terminal

    def forward(signum: int, frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    saved[signal.SIGINT] = signal.signal(signal.SIGINT, ignore_int)
    if hasattr(signal, "SIGTERM"):
        saved[signal.SIGTERM] = signal.signal(signal.SIGTERM, forward)
    return saved


def _restore_signals(saved: dict[int, Any]) -> None:
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def flows_since(started: datetime.datetime, *, settle: bool) -> pd.DataFrame:
    """Flows of the current data dir whose request started at or after ``started``.

    ``settle``: the capture runs in another process, which stores each flow a moment after it
    completes; read until two reads agree (at most ``SETTLE_TIMEOUT`` seconds).
    """
    import pandas as pd

    from flowbook import api

    def read() -> pd.DataFrame:
        df = api.flows(include_history=True, sort_by="timestamp", sort_order="asc")
        return df[df["timestamp"] >= pd.Timestamp(started)].reset_index(drop=True)

    api.wait_idle()
    df = read()
    if not settle:
        return df
    # Another process parses and stores each flow shortly after it completes, and there is no
    # channel to ask it when it is done: read until the count has held still for a moment.
    start = time.monotonic()
    stable_since = start
    while time.monotonic() - start < SETTLE_TIMEOUT:
        time.sleep(0.25)
        again = read()
        if len(again) != len(df):
            stable_since = time.monotonic()
        df = again
        if time.monotonic() - stable_since >= SETTLE_QUIET:
            break
    return df


def summarize(df: pd.DataFrame, args: Sequence[str], returncode: int, seconds: float) -> str:
    """The closing note: calls, errors, tokens, cost, the slowest call and a per-model table."""
    import pandas as pd

    cmd = " ".join(shlex.join(args).split())  # one line, even for `node -e '<script>'`
    if len(cmd) > 60:
        cmd = cmd[:57] + "..."
    lines = [f"── flowbook: {cmd} exited {returncode} after {seconds:.1f} s ──"]
    if len(df) == 0:
        lines.append(
            "no LLM calls captured. If the program made some, it did not use the proxy: see "
            "docs/capture-any-program.md (or try --reverse)."
        )
        return "\n".join(lines)
    status = pd.to_numeric(df["status_code"], errors="coerce")
    errors = int(((df["state"] == "error") | (status >= 400)).sum())
    tin = int(df["input_tokens"].fillna(0).sum())
    tout = int(df["output_tokens"].fillna(0).sum())
    cost = float(df["cost_usd"].fillna(0).sum())
    calls = f"{len(df)} call{'s' if len(df) != 1 else ''}"
    lines.append(
        f"{calls} · {errors} error{'s' if errors != 1 else ''} · "
        f"{tin:,} tokens in / {tout:,} out · ${cost:.4f}"
    )
    lat = pd.to_numeric(df["latency_ms"], errors="coerce")
    if lat.notna().any():
        row = df.loc[lat.idxmax()]
        preview = str(row.get("preview") or "")[:40]
        lines.append(
            f"slowest: {float(lat.max()) / 1000:.2f} s  {row['model'] or '?'} "
            f"({row['provider'] or '?'})  {row['id']}  {preview!r}"
        )
    by = df.assign(
        model=df["model"].fillna("?"),
        tokens=df["input_tokens"].fillna(0) + df["output_tokens"].fillna(0),
        cost=df["cost_usd"].fillna(0),
    ).groupby("model", sort=False)
    table = by.agg(calls=("id", "size"), tokens=("tokens", "sum"), cost=("cost", "sum"))
    table = table.sort_values("calls", ascending=False)
    width = max(len(str(m)) for m in table.index[:SUMMARY_MODELS])
    for model, r in table.head(SUMMARY_MODELS).iterrows():
        lines.append(
            f"  {model!s:<{width}}  {int(r['calls']):>4} call(s)  {int(r['tokens']):>9,} tokens"
            f"  ${float(r['cost']):.4f}"
        )
    if len(table) > SUMMARY_MODELS:
        lines.append(f"  … {len(table) - SUMMARY_MODELS} more models")
    return "\n".join(lines)


def run_with_env(
    args: list[str],
    env_for: Callable[[Mapping[str, str]], dict[str, str]],
    *,
    settle: bool,
    relay_to: TextIO | None,
    **popen_kwargs: Any,
) -> RunResult:
    """Run ``args`` with ``env_for(base_env)`` overlaid on its environment; collect its flows."""
    base = dict(popen_kwargs.pop("env", None) or os.environ)
    env = {**base, **env_for(base)}
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    code = spawn(args, env, relay_to=relay_to, **popen_kwargs)
    seconds = time.monotonic() - t0
    df = flows_since(started, settle=settle)
    return RunResult(args, code, df, summarize(df, args, code, seconds))


def data_dir_hint(data_dir: Any) -> str:
    """How to look at the flows afterwards."""
    return f"flows in {data_dir}: flowbook flows --data-dir {shlex.quote(str(data_dir))}"


def stderr_note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_command(
    args: list[str],
    *,
    data_dir: str | None,
    port: int,
    host: str,
    ssl_insecure: bool,
    reverse: bool,
) -> int:
    """``flowbook run``: join the capture running for the data dir, or start one for the
    duration of the program; run it; print the summary on stderr; return its exit code."""
    from flowbook import api
    from flowbook.capture import client_env, discovery
    from flowbook.capture.proxy import ProxyStartError
    from flowbook.settings import resolve_data_dir
    from flowbook.workspace import current

    d = resolve_data_dir(data_dir)
    live = discovery.read_live(d)
    if live is not None:
        kinds = {m.kind for m in live.modes}
        if reverse and "reverse" not in kinds:
            stderr_note(
                f"flowbook run: the capture running for {d} (pid {live.pid}) has no reverse "
                "listeners, which --reverse needs. Run without --reverse to use it, stop it, "
                "or pick another --data-dir."
            )
            return 2
        stderr_note(
            f"flowbook: joining the capture running for {d} (pid {live.pid}, "
            f"{live.proxy_url}); its own options apply."
        )
        modes, confdir = live.modes, live.confdir
        current(d)  # read this data dir's flows afterwards

        def env_for(base: Mapping[str, str]) -> dict[str, str]:
            return client_env.build_env(modes, confdir, base)

        try:
            result = run_with_env(args, env_for, settle=True, relay_to=None)
        except FileNotFoundError as exc:
            stderr_note(f"flowbook run: {exc}")
            return 127
    else:
        modes_spec = client_env.reverse_modes() if reverse else ["regular"]
        opts = {"ssl_insecure": True} if ssl_insecure else {}
        try:
            mon = api.start(port=port, host=host, mode=modes_spec, data_dir=d, **opts)
        except ProxyStartError as exc:
            stderr_note(f"flowbook run: the proxy did not start: {exc}")
            return 2
        try:
            urls = ", ".join(m.url for m in mon.modes)
            shown = " ".join(shlex.join(args).split())[:60]
            stderr_note(f"flowbook: capturing {shown} through {urls}")
            result = run_with_env(args, mon.client_env, settle=False, relay_to=None)
        except FileNotFoundError as exc:
            stderr_note(f"flowbook run: {exc}")
            return 127
        finally:
            api.stop()
    stderr_note(result.summary)
    stderr_note(data_dir_hint(d))
    return result.returncode

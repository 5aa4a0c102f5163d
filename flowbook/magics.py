"""``%flowmon``: the notebook's short way to drive flowbook.

%flowmon start [--port N] [--host H] [--mode SPEC]... [--data-dir DIR] [--detached | --own-process]
                                   --detached: the proxy in its own process, outliving the kernel
                                   --own-process: mitmproxy in a child process, recording here
%flowmon attach [--data-dir DIR]   watch (and intercept) a capture running in another process
%flowmon stop | status             stop ends an attached capture too
%flowmon flows [FILTER]            the flows DataFrame (filtered)
%flowmon table [FILTER]            the live flow table widget
%flowmon show ID                   one flow in the detail widget
%flowmon export FORMAT PATH [--filter EXPR] [--history] [--no-redact]
                                   har | markdown | json | jsonl | csv | parquet | mitmproxy
%flowmon intercept on [FILTER] [--response | --both] [--timeout S] [--drop]
%flowmon intercept off | status
%flowmon run CMD [ARGS]...         run a program with its LLM calls captured (starts a capture
                                   on a free port if none runs), its output here, then a summary
%flowmon session NAME              new flows go into session NAME (until %flowmon session off)
%flowmon session off | list        stop putting flows into sessions | list the sessions
%flowmon                           the dashboard: live table, detail, charts, intercept
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

USAGE = __doc__ or ""


class MagicUsageError(ValueError):
    """A %flowmon line that cannot be understood; the message says how to fix it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit() inside the kernel
        raise MagicUsageError(f"%flowmon {self.prog.split()[-1]}: {message}\n{USAGE}")


def _start_parser() -> _Parser:
    p = _Parser(prog="%flowmon start", add_help=False)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mode", action="append", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--detached", action="store_true")
    p.add_argument("--own-process", action="store_true")
    return p


def _attach_parser() -> _Parser:
    p = _Parser(prog="%flowmon attach", add_help=False)
    p.add_argument("--data-dir", default=None)
    return p


def _export_parser() -> _Parser:
    p = _Parser(prog="%flowmon export", add_help=False)
    p.add_argument("format")
    p.add_argument("path")
    p.add_argument("--filter", default=None)
    p.add_argument("--history", action="store_true")
    p.add_argument("--no-redact", action="store_true")
    return p


def run_line(line: str) -> Any:
    """Execute one ``%flowmon`` line and return what the cell should display."""
    from flowbook import api as fb

    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise MagicUsageError(f"%flowmon: cannot split the line: {exc}") from None
    if not argv:
        return _overview()
    cmd, rest = argv[0], argv[1:]
    if cmd == "start":
        a = _start_parser().parse_args(rest)
        return fb.start(
            port=a.port,
            host=a.host,
            mode=a.mode or "regular",
            data_dir=a.data_dir,
            detached=a.detached,
            own_process=a.own_process,
        )
    if cmd == "attach":
        a = _attach_parser().parse_args(rest)
        try:
            return fb.attach(a.data_dir)
        except RuntimeError as exc:  # nothing to attach to: say how to start one
            raise MagicUsageError(f"%flowmon attach: {exc}") from None
    if cmd == "stop":
        fb.stop()
        return "flowbook stopped"
    if cmd == "status":
        return fb.status()
    if cmd == "flows":
        return fb.flows(" ".join(rest) or None)
    if cmd == "table":
        return fb.table(" ".join(rest) or None)
    if cmd == "show":
        if len(rest) != 1:
            raise MagicUsageError("%flowmon show takes one flow id, e.g. %flowmon show 3f2a9c01")
        try:
            return fb.show(rest[0])
        except KeyError as exc:
            raise MagicUsageError(str(exc.args[0] if exc.args else exc)) from None
    if cmd == "run":
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            raise MagicUsageError("%flowmon run needs a command, e.g. %flowmon run python agent.py")
        mon = fb.monitor() or fb.start(port=0)
        return mon.run(rest)
    if cmd == "export":
        a = _export_parser().parse_args(rest)
        try:
            path = fb.export(a.filter, a.format, a.path, include_history=a.history,
                             redact_sensitive=not a.no_redact)  # fmt: skip
        except (ValueError, KeyError) as exc:
            raise MagicUsageError(f"%flowmon export: {exc}") from None
        return f"exported to {path!s}"
    if cmd == "session":
        return _session(rest)
    if cmd == "intercept":
        from flowbook.intercept.magic import intercept_magic

        try:
            return intercept_magic(shlex.join(rest))
        except ValueError as exc:
            raise MagicUsageError(str(exc)) from None
    raise MagicUsageError(f"%flowmon: unknown command {cmd!r}.\n{USAGE}")


def _session(rest: list[str]) -> Any:
    from flowbook import api as fb

    sessions = fb._sessions()
    if len(rest) != 1:
        raise MagicUsageError(
            "%flowmon session takes one name (or off, or list), e.g. %flowmon session refactor"
        )
    word = rest[0]
    if word == "list":
        return sessions.list()
    closed = sessions.close()  # one open session at a time from the magic
    if word == "off":
        return f"flows no longer go into {', '.join(closed)}" if closed else "no session was open"
    try:
        sessions.open(word)
    except ValueError as exc:
        raise MagicUsageError(f"%flowmon session: {exc}") from None
    return f"new flows go into session {word!r} (%flowmon session off to stop)"


def _overview() -> Any:
    from flowbook import api as fb

    try:
        return fb.dashboard()
    except ImportError:  # no widget stack: status and the latest flows instead
        from IPython.display import display

        display(fb.status())
        return fb.flows(page=1, page_size=20)


def register(ipython: Any) -> None:
    """Register ``%flowmon`` with an IPython shell."""

    def flowmon(line: str) -> Any:
        try:
            result = run_line(line)
        except MagicUsageError as exc:
            print(exc)
            return None
        if isinstance(result, str):
            print(result)  # a message, not a value: show it without quotes
            return None
        return result

    flowmon.__doc__ = USAGE
    ipython.register_magic_function(flowmon, "line", "flowmon")

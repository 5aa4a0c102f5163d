"""``%flowmon intercept on [EXPR] [--response|--both] [--timeout S] [--drop] | off | status``.

The lead's ``magics.py`` passes the rest of the line here and prints the returned message.
"""

from __future__ import annotations

import argparse
import shlex


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%flowmon intercept", add_help=False, exit_on_error=False)
    p.add_argument("switch", choices=["on", "off", "status"])
    p.add_argument("expr", nargs="*", help="filter expression (all LLM flows when omitted)")
    stage = p.add_mutually_exclusive_group()
    stage.add_argument("--response", action="store_true", help="pause at the response")
    stage.add_argument("--both", action="store_true", help="pause at request and response")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before auto-release")
    p.add_argument("--drop", action="store_true", help="drop (not continue) at the timeout")
    return p


def intercept_magic(line: str) -> str:
    """Run one ``%flowmon intercept …`` line; returns what to show. ValueError on bad input."""
    from flowbook import intercept

    try:
        args = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ValueError(
            "usage: %flowmon intercept on [EXPR] [--response|--both] [--timeout S] [--drop]"
            f" | off | status ({exc})"
        ) from None
    if args.switch == "off":
        intercept.disable()
        return "Interception off; paused flows were released."
    if args.switch == "status":
        return str(intercept.status())
    on = "response" if args.response else "both" if args.both else "request"
    expr = " ".join(args.expr) or None
    action = "drop" if args.drop else "continue"
    intercept.enable(expr, on=on, timeout=args.timeout, timeout_action=action)
    what = f"flows matching {expr!r}" if expr else "every LLM flow"
    return (
        f"Intercepting {what} at the {on} (auto-{action} after {args.timeout:g}s). "
        "Use fb.intercept_panel() or fb.intercept.pending()."
    )

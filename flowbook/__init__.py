"""flowbook: a notebook-first monitor for LLM API traffic, built on mitmproxy.

``import flowbook as fb``; ``fb.start()`` runs the proxy in a background thread and every LLM
call through it becomes an :class:`~flowbook.model.LLMFlow` in ``fb.flows()``.
The public API lives in :mod:`flowbook.api`; it is imported lazily so that the proxy side
(mitmproxy addon, parsers) never pays for pandas or widgets.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    # capture
    "start", "stop", "status", "monitor", "wait_idle", "Monitor",
    # flows and history
    "flows", "get_flow", "load", "stats", "bookmark", "tag", "comment", "quick_filters",
    "export_parquet", "flow_store", "config", "export", "generate_code", "redaction",
    # comparing and charting
    "diff", "charts",
    # interception
    "intercept", "intercept_panel",
    # live table and dashboard
    "table", "dashboard",
    # widgets
    "show",
    # sessions, correlation, cost and latency analysis, alerts
    "sessions", "session", "related", "slowest", "cost", "projection", "rate", "alerts",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _API:
        from flowbook import api

        return getattr(api, name)
    raise AttributeError(f"module 'flowbook' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flowbook`` registers the ``%flowmon`` magic."""
    from flowbook.magics import register

    register(ipython)


def __dir__() -> list[str]:
    return sorted([*_API, "load_ipython_extension", "__version__"])


def _register_in_running_ipython() -> None:
    # ``import flowbook`` inside IPython registers %flowmon too (only if IPython is loaded
    # already: importing it here would slow down plain scripts and the proxy's child processes).
    import sys

    ipy = sys.modules.get("IPython")
    if ipy is None:
        return
    shell = ipy.get_ipython()
    if shell is not None and "flowmon" not in shell.magics_manager.magics.get("line", {}):
        load_ipython_extension(shell)


_register_in_running_ipython()

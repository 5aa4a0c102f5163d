"""flowbook's public API: ``import flowbook as fb`` exposes these names.

Each one is a thin wrapper over the current workspace (``flowbook.workspace.current()``): its
store, settings, capture runtime and intercept controller. See docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.model import LLMFlow

if TYPE_CHECKING:
    import pandas as pd

    from flowbook.capture.monitor import Monitor
    from flowbook.store.facade import Store
    from flowbook.workspace import Workspace

__all__ = [
    "attach",
    "bookmark",
    "comment",
    "flows",
    "get_flow",
    "load",
    "monitor",
    "start",
    "status",
    "stop",
    "tag",
]


def _ws(data_dir: str | Path | None = None) -> Workspace:
    """The current workspace (``flowbook.workspace.current``)."""
    from flowbook.workspace import current

    return current(data_dir)


def start(
    port: int | None = None,
    host: str | None = None,
    mode: str | list[str] = "regular",
    data_dir: str | Path | None = None,
    *,
    detached: bool = False,
    **options: Any,
) -> Monitor:
    """Start capturing: mitmproxy in a background thread, flows into the store.

    ``mode`` is any mitmproxy mode spec or a list of them (``"regular"``,
    ``"reverse:https://api.openai.com"``, ``"upstream:http://corp:3128"``). ``port`` and
    ``host`` default to the ``listen_port`` (8080) and ``listen_host`` (127.0.0.1) settings;
    ``port=0`` picks a free port. Extra keyword options go to mitmproxy (e.g.
    ``ssl_insecure=True``). Idempotent: a second call returns the running monitor.

    When a capture process (``flowbook capture``) already runs for the data dir, this kernel
    attaches to it instead of starting a second proxy on the same files.

    ``detached=True`` runs the proxy in its own process (``flowbook capture``, output in
    ``<data_dir>/capture.log``) that outlives this kernel, and attaches to it (see
    :func:`attach`); a capture already running for the data dir is attached to instead.
    """
    from flowbook.workspace import running_elsewhere, start_detached

    if detached:
        mon = start_detached(data_dir, port, host, mode, options).monitor
        assert mon is not None
        return mon
    if running_elsewhere(data_dir):
        # A capture process already writes this data dir: a second proxy would write the same
        # files. Watch that one instead (as a second start returns the running monitor).
        return attach(data_dir)
    return _ws(data_dir).start(port, host, mode, **options)


def attach(data_dir: str | Path | None = None) -> Monitor:
    """Watch a capture running in another process (``flowbook capture``, or
    ``fb.start(detached=True)`` from any kernel) for ``data_dir`` (default: the current one).

    Afterwards ``fb.flows()`` (live states included), ``fb.get_flow()``, the widgets and
    ``fb.intercept`` act on that capture, as if it ran here. Several kernels may attach at
    once; a kernel restart leaves the capture running (attach again). ``fb.stop()`` ends it.
    """
    from flowbook.workspace import attach as _attach

    mon = _attach(data_dir).monitor
    assert mon is not None
    return mon


def stop() -> None:
    """Stop the proxy (flows stay in the store and on disk); in a kernel attached to a capture
    process (:func:`attach`), end that process."""
    from flowbook.workspace import existing, forget

    ws = existing()
    if ws is not None:
        ws.stop()
        if getattr(ws, "attached", False):
            forget(ws)


def monitor() -> Monitor | None:
    """The running Monitor, or None."""
    from flowbook.workspace import existing

    ws = existing()
    return None if ws is None else ws.monitor


def status() -> dict[str, Any]:
    """Running state, addresses, counts, data dir and recovery notes, as a dict."""
    return _ws().status()


def flows(
    filter: str | None = None,
    *,
    sort_by: str = "timestamp",
    sort_order: str = "desc",
    page: int | None = None,
    page_size: int = 50,
    include_history: bool = False,
) -> pd.DataFrame:
    """Captured flows as a DataFrame, one row per flow (columns: ``flowbook.schema.COLUMNS``).

    ``filter`` is a filter expression (``model:gpt-4 AND tokens:>1000``, ``~d api.openai.com``).
    ``page`` counts from 1 (None: every matching row); ``df.attrs["total"]`` holds the number of
    matching rows before paging. ``include_history=True`` adds every flow stored in the data dir;
    in a process that has captured nothing yet, history is what you get.
    """
    return _ws().flows(
        filter,
        sort_by=sort_by,
        sort_order=sort_order,
        page=page,
        page_size=page_size,
        include_history=include_history,
    )


def get_flow(flow_id: str) -> LLMFlow:
    """The full flow (read back from disk when it was evicted from memory)."""
    flow = _ws().get_flow(flow_id)
    if flow is None:
        raise KeyError(f"no flow with id {flow_id!r} (fb.flows() lists the ids)")
    return flow


def bookmark(flow_id: str, on: bool = True) -> None:
    """Bookmark (or un-bookmark) a flow; persisted, filterable with ``is:bookmarked``."""
    _ws().store.annotate(flow_id, bookmarked=on)


def tag(flow_id: str, *tags: str) -> None:
    """Add tags to a flow; persisted, filterable with ``tag:x``."""
    _ws().store.annotate(flow_id, add_tags=list(tags))


def comment(flow_id: str, text: str) -> None:
    """Set a flow's comment; persisted, searchable with ``~comment``."""
    _ws().store.annotate(flow_id, comment=text)


def load(path: str | Path) -> list[str]:
    """Import flows from a flowbook JSONL file; returns the ids added."""
    return _ws().store.load(Path(path))


def wait_idle(timeout: float = 10.0) -> bool:
    """Wait until every captured byte has been parsed and stored (handy in scripts and tests)."""
    from flowbook.workspace import existing

    ws = existing()
    return True if ws is None else ws.wait_idle(timeout)


def flow_store() -> Store:
    """The store of the current data dir (advanced use: ``changed`` signal, ``iter_flows``,
    ``in_memory``)."""
    return _ws().store


def stats(
    by: str | list[str] | None = "model",
    filter: str | None = None,
    *,
    include_history: bool = False,
) -> pd.DataFrame:
    """One row per group (``by`` a column name, a list of them, or None for one overall row):
    count, success/error rate, latency and TTFT percentiles, tokens, cost, estimated share."""
    from flowbook.analysis.stats import stats as _stats

    return _stats(flows(filter, include_history=include_history), by=by)


def quick_filters() -> Any:
    """Preset and saved filters of the current data dir (``.list()``, ``.save(name, expr)``,
    ``.delete(name)``, ``.export_json()``, ``.import_json(text)``)."""
    from flowbook.filters.quick import QuickFilters

    return QuickFilters(_ws().data_dir)


def export_parquet(
    path: str | Path,
    filter: str | None = None,
    *,
    include_bodies: bool = False,
) -> Path:
    """Write the summary of every stored flow (matching ``filter``) as Parquet, partitioned by
    day (``date=YYYY-MM-DD/``), for DuckDB, Spark or Dask. ``include_bodies`` adds request and
    response text."""
    from flowbook.export.parquet import export_parquet as _export

    df = flows(filter, include_history=True)
    return _export(
        df, Path(path), flows=get_flow if include_bodies else None, include_bodies=include_bodies
    )


def intercept_panel() -> Any:
    """The approval panel widget: paused flows, countdowns, edit, resume, drop, mock."""
    from flowbook.ui.intercept_panel import InterceptPanel

    return InterceptPanel()


def __getattr__(name: str) -> Any:
    # Lazily built attributes: fb.config (the live configuration of the current data dir) and
    # fb.intercept (breakpoints and rules).
    if name == "config":
        return _ws().config
    if name == "Monitor":
        from flowbook.capture.monitor import Monitor

        return Monitor
    if name == "intercept":
        import importlib

        return importlib.import_module("flowbook.intercept")
    raise AttributeError(f"module 'flowbook.api' has no attribute {name!r}")


def _reset_for_tests() -> None:
    """Stop everything and forget the workspace (tests use a fresh data dir each)."""
    from flowbook.workspace import reset

    reset()

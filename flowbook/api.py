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

    from flowbook.analysis.diff import FlowDiff
    from flowbook.capture.monitor import Monitor
    from flowbook.store.facade import Store
    from flowbook.workspace import Workspace

__all__ = [
    "alerts",
    "attach",
    "bookmark",
    "comment",
    "cost",
    "dashboard",
    "diff",
    "export",
    "flows",
    "generate_code",
    "get_flow",
    "load",
    "monitor",
    "projection",
    "rate",
    "related",
    "session",
    "show",
    "slowest",
    "start",
    "status",
    "stop",
    "table",
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
    own_process: bool = False,
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

    ``own_process=True`` runs mitmproxy in a child process of this kernel while parsing and
    storing stay here: a cell that computes for a long time then never holds the proxy back.
    The proxy still ends with the kernel (``detached=True`` is for a capture that outlives it).
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
    return _ws(data_dir).start(port, host, mode, own_process=own_process, **options)


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
    """Import flows from a HAR file (browser DevTools, other tools, flowbook's own), a mitmproxy
    flow file (``mitmdump -w``), or a flowbook JSONL/JSON export; returns the ids added.

    Every LLM call in the file is detected and rebuilt like live traffic (streams included);
    other requests are skipped; flows already stored are not added twice. A session file
    (``fb.sessions.export``) also brings its sessions and grouping back."""
    from flowbook.grouping.exchange import is_session_file

    if is_session_file(Path(path)):
        before = set(_ws().store.frame(include_history=True)["id"])
        name = _sessions().load(path)
        return [i for i in _sessions().flow_ids(name) if i not in before]
    from flowbook.io.importer import load as _load

    return _load(path)


def export(
    selection: Any = None,
    format: str = "har",
    path: str | Path | None = None,
    *,
    include_request_body: bool = True,
    include_response_body: bool = True,
    redact_sensitive: bool = True,
    include_history: bool = False,
) -> str | bytes | Path:
    """Export flows as ``har`` (HAR 1.2 with an ``_llm`` extension; DevTools imports it),
    ``markdown`` (a report to paste into an issue), ``json``/``jsonl`` (lossless, ``fb.load``
    reads them back), ``csv`` (the ``fb.flows()`` columns), ``parquet`` (a directory, path
    required) or ``mitmproxy`` (a flow file mitmweb opens).

    ``selection``: None (every flow of the session; the stored history too with
    ``include_history=True``), a filter string, a list of flow ids, or a DataFrame from
    ``fb.flows()``. Returns the text (bytes for mitmproxy), or writes ``path`` (large selections
    stream to disk with a progress bar) and returns it as a Path. Secrets are masked with
    ``fb.redaction``'s rules unless ``redact_sensitive=False`` (which warns).
    """
    from flowbook.io.exporter import export as _export

    return _export(
        selection,
        format,
        path,
        include_request_body=include_request_body,
        include_response_body=include_response_body,
        redact_sensitive=redact_sensitive,
        include_history=include_history,
    )


def generate_code(
    flow_id: str | LLMFlow,
    format: str = "curl",
    *,
    include_comments: bool = True,
    sdk: bool = False,
) -> str:
    """Code that repeats a flow's request: ``curl``, ``python`` (httpx; ``sdk=True`` for the
    official OpenAI/Anthropic/Gemini SDK), ``typescript`` (fetch), ``go`` (net/http) or ``rust``
    (reqwest). Secrets become environment variables (``OPENAI_API_KEY`` …), never literals; a
    streamed call streams and prints the text as it arrives."""
    from flowbook.io.codegen import generate

    return generate(flow_id, format, include_comments=include_comments, sdk=sdk)


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
    """One row per group (``by`` a column name, a list of them, ``"hour"``/``"day"``, or None
    for one overall row): count, success/error rate, latency and TTFT percentiles, tokens, cost,
    estimated share, queueing vs generation time, throughput, errors by type, request rates
    (``flowbook.analysis.stats``). ``by="session"`` counts a flow in each of its sessions."""
    from flowbook.analysis.stats import stats as _stats

    return _stats(flows(filter, include_history=include_history), by=by)


def session(name: str) -> Any:
    """``with fb.session("name"):`` puts every flow captured inside the block (by this process's
    proxy or by another process capturing into the same data dir) into session ``name``,
    created if needed. Sessions can nest; a flow joins every open one."""
    return _sessions().capture_into(name)


def _sessions() -> Any:
    from flowbook.grouping.manage import Sessions

    def parts() -> Any:
        ws = _ws()
        # Let the recorder apply what was captured up to the call, as fb.flows() does.
        ws.runtime.settle(5.0)
        return ws.store, ws.sessions

    return Sessions(parts)


def related(flow_id: str) -> pd.DataFrame:
    """Flows related to one flow, with a ``relation`` column: ``thread`` (the same
    conversation), ``tool_chain`` (tool results answering tool calls), ``retry`` (the same
    request repeated after a failure), ``same_prompt`` (the same conversation to another model);
    ``detail`` says how."""
    from flowbook.grouping.related import related as _related

    ws = _ws()
    ws.runtime.settle(5.0)
    return _related(ws.store, ws.sessions, flow_id)


def slowest(n: int = 10, filter: str | None = None, *, include_history: bool = False) -> Any:
    """The ``n`` slowest flows (matching ``filter``) with what made each slow (``cause``: long
    TTFT, long generation or big prompt; ``detail``) and ``outlier`` against the model's own
    latency distribution."""
    from flowbook.analysis.latency import slowest as _slowest

    return _slowest(flows(filter, include_history=include_history), n)


def cost(
    by: str | list[str] | None = "session",
    filter: str | None = None,
    *,
    include_history: bool = False,
) -> pd.DataFrame:
    """Cost per ``session`` (a flow counts in each of its sessions), ``thread_id``, ``day``,
    ``hour``, ``model`` or any column: cost, tokens, what prompt caching saved (cache reads at
    the input rate minus their real price) and what cache writes cost. Price overrides apply."""
    from flowbook.analysis.cost import cost_by

    return cost_by(flows(filter, include_history=include_history), by)


def projection(filter: str | None = None, *, include_history: bool = False) -> pd.Series:
    """Cost, requests and tokens per hour, day and 30-day month at the rate of
    ``fb.stats(by="hour")`` over the observed span."""
    from flowbook.analysis.cost import projection as _projection

    return _projection(stats(by="hour", filter=filter, include_history=include_history))


def rate(
    window: str = "60s",
    by: str | None = None,
    filter: str | None = None,
    *,
    include_history: bool = False,
) -> pd.DataFrame:
    """Requests per minute over a sliding ``window`` (e.g. ``"60s"``, ``"5min"``), at each
    request, optionally per ``by`` column."""
    from flowbook.analysis.stats import request_rate

    return request_rate(flows(filter, include_history=include_history), window, by)


def alerts(filter: str | None = None, *, include_history: bool = False) -> pd.DataFrame:
    """Flows a threshold marked (``has:alert``; the ``alert`` column says which: latency,
    tokens, cost, error). Thresholds: ``fb.config.alert_latency_s``, ``alert_tokens``,
    ``alert_cost_usd``, ``alert_on_error``."""
    expr = "has:alert" if not filter else f"has:alert AND ({filter})"
    return flows(expr, include_history=include_history)


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
    from flowbook.io.parquet import export_parquet as _export

    df = flows(filter, include_history=True)
    return _export(
        df, Path(path), flows=get_flow if include_bodies else None, include_bodies=include_bodies
    )


def intercept_panel() -> Any:
    """The approval panel widget: paused flows, countdowns, edit, resume, drop, mock."""
    from flowbook.ui.intercept_panel import InterceptPanel

    return InterceptPanel()


def diff(
    a: str | LLMFlow, b: str | LLMFlow, *, ignore: tuple[str, ...] = ("ids", "timestamps")
) -> FlowDiff:
    """Compare two flows (ids or LLMFlow objects): parameters, tools, system prompt, messages
    aligned by content, response text word by word. Returns a FlowDiff (``.changes``,
    ``.to_markdown()``; shows side by side in a notebook). ``ignore`` may also name "usage"."""
    from flowbook.analysis.diff import diff_flows

    fa = a if isinstance(a, LLMFlow) else get_flow(a)
    fb_ = b if isinstance(b, LLMFlow) else get_flow(b)
    return diff_flows(fa, fb_, ignore=ignore)


def show(flow_id: str | LLMFlow, *, height: int = 620) -> Any:
    """The detail widget of one flow: overview (timing, tokens, cost, context window),
    conversation, response, stream events, raw headers and bodies, and editable notes."""
    from flowbook.ui.detail import show as _show

    return _show(flow_id, height=height)


def table(filter: str | None = None, *, include_history: bool = False) -> Any:
    """The live flow table widget: new flows appear as they are captured, sorting and filtering
    run in the kernel, a clicked row opens its detail. ``.selected`` holds the selected ids,
    ``.df`` the selected rows; ``include_history`` adds flows stored by earlier sessions."""
    from flowbook.ui.table import FlowTable

    return FlowTable(filter, include_history=include_history)


def dashboard(filter: str | None = None, *, include_history: bool = False) -> Any:
    """The flow table with its detail pane, live charts and the intercept panel in one view."""
    from flowbook.ui.dashboard import Dashboard

    return Dashboard(filter, include_history=include_history)


def __getattr__(name: str) -> Any:
    # Lazily built attributes: fb.config (the live configuration of the current data dir) and
    # fb.intercept (breakpoints and rules).
    if name == "config":
        return _ws().config
    if name == "Monitor":
        from flowbook.capture.monitor import Monitor

        return Monitor
    if name == "redaction":
        import importlib

        return importlib.import_module("flowbook.redaction")
    if name == "intercept":
        import importlib

        return importlib.import_module("flowbook.intercept")
    if name == "charts":  # fb.charts.latency(), .ttft_vs_tokens(), .usage_over_time(), .errors()
        import importlib

        return importlib.import_module("flowbook.ui.charts")
    if name == "sessions":
        return _sessions()
    raise AttributeError(f"module 'flowbook.api' has no attribute {name!r}")


def _reset_for_tests() -> None:
    """Stop everything and forget the workspace (tests use a fresh data dir each)."""
    from flowbook.workspace import reset

    reset()

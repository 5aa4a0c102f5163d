"""Live Plotly charts: ``fb.charts.latency()``, ``ttft_vs_tokens()``, ``usage_over_time()``,
``errors()``.

Each returns a :class:`LiveChart`, a plotly ``FigureWidget`` (an anywidget since plotly 6) that
redraws itself from aggregates computed in the kernel (:mod:`flowbook.ui.chart_data`) whenever
the store says flows changed — at most :data:`MIN_INTERVAL_S` apart, from a timer thread, so it
moves while another cell runs. ``layout.uirevision`` keeps the user's zoom across redraws. Where
widgets do not render, the output falls back to the static figure (plotly's own mimetype) and an
HTML table of the same numbers.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from flowbook.ui import chart_data as cd

# At most this often a chart redraws (the store's own signal is coalesced to ~4/s already).
MIN_INTERVAL_S = 0.3
# Plotly draws its own colours; these rules make its text and grid follow JupyterLab's theme.
THEME_CSS = """
.fb-chart .main-svg .gtitle, .fb-chart .main-svg .xtick text, .fb-chart .main-svg .ytick text,
.fb-chart .main-svg .g-xtitle text, .fb-chart .main-svg .g-ytitle text,
.fb-chart .main-svg .legendtext, .fb-chart .main-svg .legendtitletext,
.fb-chart .main-svg .annotation-text {
  fill: var(--jp-ui-font-color1, #1f2328) !important;
}
.fb-chart .main-svg .gridlayer path, .fb-chart .main-svg .zerolinelayer path {
  stroke: var(--jp-border-color2, #d0d7de) !important;
}
.fb-chart .modebar-btn path { fill: var(--jp-ui-font-color2, #57606a) !important; }
"""
BASE_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "height": 360,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "legend": {"bgcolor": "rgba(0,0,0,0)"},
    "uirevision": "flowbook",
}

_QUERY_LOCK = threading.Lock()

Build = Callable[[pd.DataFrame], tuple[list[dict[str, Any]], dict[str, Any], pd.DataFrame]]


# ---- the one place charts reach the store ---------------------------------------------------


def _store_source() -> tuple[Callable[[str | None], pd.DataFrame], Any]:
    """(frame of the flows matching a filter, the store's change signal).

    The only function in this module that touches the store (the current workspace's façade).
    The signal calls its listeners with one ``StoreChange``, which charts ignore: they redraw.
    """
    from flowbook.workspace import current

    store = current().store

    def frame(filter_expr: str | None) -> pd.DataFrame:
        # One chart query at a time: charts redraw from timer threads of their own.
        with _QUERY_LOCK:
            return store.query(
                filter_expr,
                sort_by="timestamp",
                sort_order="asc",
                page=None,
                page_size=50,
                include_history=False,
            )

    return frame, store.changed


# ---- coalescing ----------------------------------------------------------------------------------


class Throttle:
    """Calls ``fn`` at most once per ``interval`` seconds however often it is poked; a poke
    during the wait is folded into the pending call, a poke after it schedules the next one."""

    def __init__(self, fn: Callable[[], None], interval: float | None = None) -> None:
        self._fn = fn
        self._interval = MIN_INTERVAL_S if interval is None else interval
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = float("-inf")
        self.pokes = 0
        self.calls = 0

    def poke(self, *_args: Any) -> None:
        with self._lock:
            self.pokes += 1
            if self._timer is not None:
                return
            delay = max(0.0, self._last + self._interval - time.monotonic())
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
            self.calls += 1
        try:
            self._fn()
        except Exception:  # a failed redraw must not kill the timer thread silently
            import logging

            logging.getLogger(__name__).exception("chart refresh failed")

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


# ---- the live figure -----------------------------------------------------------------------------


class LiveChart(go.FigureWidget):  # type: ignore[misc]  # plotly ships no type hints
    """A plotly FigureWidget that redraws from kernel-side aggregates as flows arrive.

    ``.data_frame`` holds the aggregate last drawn, ``.refresh()`` redraws now, ``.stop()`` ends
    the live updates. ``.updates`` counts redraws.
    """

    _css = THEME_CSS

    def __init__(self, build: Build, filter: str | None = None, *, live: bool = True) -> None:
        super().__init__()
        self.add_class("fb-chart")
        self._fb_build = build
        self._fb_filter = filter
        self._fb_lock = threading.Lock()
        self._fb_updates = 0
        self._fb_frame = pd.DataFrame()
        frame, signal = _store_source()
        self._fb_source = frame
        self._fb_signal: Any = None
        self._fb_throttle = Throttle(self.refresh)
        # Base layout once: a caller's own height or width survives the live redraws.
        self.update_layout(BASE_LAYOUT)
        self.refresh()
        if live:
            self._fb_signal = signal
            self._fb_listener = _weak_listener(self)
            signal.connect(self._fb_listener)

    @property
    def updates(self) -> int:
        return self._fb_updates

    @property
    def data_frame(self) -> pd.DataFrame:
        """The aggregate behind the figure as last drawn."""
        return self._fb_frame

    @property
    def throttle(self) -> Throttle:
        return self._fb_throttle

    def refresh(self) -> None:
        """Recompute the aggregate and redraw (in place when the traces are the same)."""
        with self._fb_lock:
            df = self._fb_source(self._fb_filter)
            traces, layout, table = self._fb_build(df)
            self._fb_frame = table
            fig: Any = self  # plotly has no type hints; its properties are dynamic
            with fig.batch_update():
                same = len(fig.data) == len(traces) and all(
                    t.type == n["type"] and t.name == n.get("name")
                    for t, n in zip(fig.data, traces, strict=True)
                )
                if same:
                    for t, n in zip(fig.data, traces, strict=True):
                        t.update({k: v for k, v in n.items() if k != "type"})
                else:
                    fig.data = []
                    fig.add_traces([_trace(n) for n in traces])
                notes = layout.pop("annotations", [])
                fig.update_layout(layout)
                # Assigned, not updated: an update with fewer annotations keeps the old ones.
                fig.layout.annotations = notes
            self._fb_updates += 1

    def stop(self) -> None:
        """Stop following the store (the figure keeps what it shows)."""
        self._fb_throttle.cancel()
        if self._fb_signal is not None:
            self._fb_signal.disconnect(self._fb_listener)
            self._fb_signal = None

    def close(self) -> None:
        """Close the widget and stop following the store."""
        self.stop()
        super().close()

    def static(self) -> go.Figure:
        """A plain ``go.Figure`` copy (for files, nbconvert, or where widgets do not run)."""
        return go.Figure(self.to_dict())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
        bundle = {
            "application/vnd.plotly.v1+json": self.static().to_plotly_json(),
            "text/html": _table_html(self._fb_frame, self.layout.title.text or "flowbook chart"),
            "text/plain": f"<LiveChart {self.layout.title.text!r}>",
        }
        bundle.update(super()._repr_mimebundle_(include=include, exclude=exclude, **kwargs))
        return bundle


def _weak_listener(chart: LiveChart) -> Callable[..., None]:
    """A store listener that holds the chart weakly and unsubscribes once it is gone."""
    ref = weakref.ref(chart)
    signal = chart._fb_signal if chart._fb_signal is not None else None

    def listener(*_args: Any) -> None:
        c = ref()
        if c is None:
            if signal is not None:
                signal.disconnect(listener)
            return
        c._fb_throttle.poke()

    return listener


def _trace(spec: dict[str, Any]) -> Any:
    kind = spec["type"]
    rest = {k: v for k, v in spec.items() if k != "type"}
    return {"box": go.Box, "scatter": go.Scatter, "bar": go.Bar}[kind](**rest)


def _table_html(df: pd.DataFrame, title: str) -> str:
    head = f"<p><strong>{html.escape(title)}</strong> (static view: widgets are not running)</p>"
    if df.empty:
        return head + "<p>No flows yet.</p>"
    # to_html escapes cell text; cap the rows so a long series stays a short fallback.
    return head + df.tail(50).to_html(float_format=lambda v: f"{v:,.4g}", na_rep="—")


# ---- the four charts -----------------------------------------------------------------------------


def _empty_note(n: int) -> list[dict[str, Any]]:
    if n:
        return []
    return [
        {
            "text": "No flows yet: the chart fills in as calls arrive",
            "showarrow": False,
            "xref": "paper",
            "yref": "paper",
            "x": 0.5,
            "y": 0.5,
        }
    ]


def latency(by: str = "model", filter: str | None = None) -> LiveChart:
    """Latency distribution per group (box: min, quartiles, max; the mean dashed), live."""

    def build(df: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any], pd.DataFrame]:
        st = cd.latency_stats(df, by)
        traces = [
            {
                "type": "box",
                "name": str(g),
                "x": [str(g)],
                "q1": [r["q1"]],
                "median": [r["median"]],
                "q3": [r["q3"]],
                "lowerfence": [r["min"]],
                "upperfence": [r["max"]],
                "mean": [r["mean"]],
                "boxmean": True,
                "hovertext": [f"{int(r['count'])} flows"],
            }
            for g, r in st.iterrows()
        ]
        layout = {
            "title": {"text": f"Latency by {by}"},
            "yaxis": {"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
            "xaxis": {"title": {"text": by}},
            "showlegend": False,
            "annotations": _empty_note(len(st)),
        }
        return traces, layout, st

    return LiveChart(build, filter)


def ttft_vs_tokens(filter: str | None = None, *, tokens: str = "output") -> LiveChart:
    """Time to first token against tokens (output by default), one point per flow (the most
    recent 5,000), coloured by model, live."""

    def build(df: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any], pd.DataFrame]:
        pts = cd.ttft_points(df, tokens)
        traces = [
            {
                "type": "scatter",
                "mode": "markers",
                "name": str(g),
                "x": grp["tokens"].tolist(),
                "y": grp["ttft_ms"].tolist(),
                "customdata": grp["id"].tolist(),
                "hovertemplate": "%{customdata}<br>%{x} tokens · TTFT %{y:.0f} ms<extra>"
                + html.escape(str(g))
                + "</extra>",
            }
            for g, grp in pts.groupby("model", sort=True)
        ]
        layout = {
            "title": {"text": f"TTFT vs {tokens} tokens"},
            "xaxis": {"title": {"text": f"{tokens} tokens"}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": "TTFT (ms)"}, "rangemode": "tozero"},
            "annotations": _empty_note(len(pts)),
        }
        return traces, layout, pts

    return LiveChart(build, filter)


def usage_over_time(
    metric: str = "tokens", by: str = "model", freq: str = "1min", filter: str | None = None
) -> LiveChart:
    """Tokens (or cost in USD) per time bucket, stacked by group, live. Buckets whose cost is
    unknown stay empty (NaN), never $0."""

    def build(df: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any], pd.DataFrame]:
        table = cd.usage_series(df, metric, by, freq)
        traces = [
            {
                "type": "bar",
                "name": str(col),
                "x": list(table.index),
                "y": [None if pd.isna(v) else float(v) for v in table[col]],
            }
            for col in table.columns
        ]
        unit = "tokens" if metric == "tokens" else "cost (USD)"
        layout = {
            "title": {"text": f"{'Tokens' if metric == 'tokens' else 'Cost'} per {freq} by {by}"},
            "barmode": "stack",
            "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
            "xaxis": {"title": {"text": "time (UTC)"}, "type": "date"},
            "annotations": _empty_note(len(table)),
        }
        return traces, layout, table

    return LiveChart(build, filter)


def errors(by: str = "provider", filter: str | None = None) -> LiveChart:
    """Errors per group, stacked by error type (groups without errors show 0), live."""

    def build(df: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any], pd.DataFrame]:
        table = cd.error_counts(df, by)
        kinds = [c for c in table.columns if c not in ("flows", "error_rate")]
        groups = [str(g) for g in table.index]
        traces = [
            {
                "type": "bar",
                "name": str(k),
                "x": groups,
                "y": table[k].astype(int).tolist(),
                "customdata": table["flows"].astype(int).tolist(),
                "hovertemplate": "%{y} of %{customdata} flows<extra>"
                + html.escape(str(k))
                + "</extra>",
            }
            for k in kinds
        ]
        layout = {
            "title": {"text": f"Errors by {by}"},
            "barmode": "stack",
            "yaxis": {"title": {"text": "errors"}, "rangemode": "tozero"},
            "xaxis": {"title": {"text": by}, "type": "category"},
            "annotations": _empty_note(len(table))
            or ([] if kinds else [{**_empty_note(0)[0], "text": "No errors"}]),
        }
        return traces, layout, table

    return LiveChart(build, filter)

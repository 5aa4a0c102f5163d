"""The dashboard (``fb.dashboard()``, bare ``%flowmon``): the live flow table with its detail
pane, live charts and the intercept approval panel in one layout.

Plain ipywidgets containers around flowbook's widgets: the table on top (it carries its own
split-pane detail and the diff output below it), then tabs for charts and interception, so the
table keeps the width it needs and the rest is one click away.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import ipywidgets

from flowbook.ui.table import FlowTable

log = logging.getLogger(__name__)

# (title, builder name in flowbook.ui.charts, keyword arguments)
CHARTS = [
    ("Latency by model", "latency", {"by": "model"}),
    ("TTFT vs output tokens", "ttft_vs_tokens", {}),
    ("Tokens over time", "usage_over_time", {"metric": "tokens", "by": "model"}),
    ("Errors by provider", "errors", {"by": "provider"}),
]


def _charts(filter_expr: str | None) -> tuple[list[Any], str]:
    """The live charts (empty with a note when the charts module is not available)."""
    try:
        charts = importlib.import_module("flowbook.ui.charts")
    except ImportError as exc:
        return [], f"Charts are not available: {exc}"
    figs = []
    for title, name, kwargs in CHARTS:
        build = getattr(charts, name, None)
        if build is None:
            continue
        try:
            fig = build(filter=filter_expr, **kwargs)
        except (ValueError, RuntimeError) as exc:  # a bad filter says so instead of a chart
            return [], f"{title}: {exc}"
        fig.layout.height = 300
        fig.layout.width = None  # follow the grid cell
        fig.layout.autosize = True
        figs.append(fig)
    return figs, ""


class Dashboard(ipywidgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Table (with detail and diff), charts and the intercept panel.

    ``.table`` is the FlowTable, ``.charts`` the list of chart widgets, ``.intercept`` the
    approval panel.
    """

    def __init__(self, filter: str | None = None, *, include_history: bool = False) -> None:
        self.table = FlowTable(filter, include_history=include_history)
        self.charts, note = _charts(filter)
        chart_items: list[Any] = []
        if note:
            chart_items.append(ipywidgets.HTML(f"<i>{_escape(note)}</i>"))
        if self.charts:
            # Two charts a row, each as wide as half the output (plotly autosizes to its cell).
            chart_items.append(
                ipywidgets.GridBox(
                    self.charts,
                    layout=ipywidgets.Layout(
                        width="100%", grid_template_columns="repeat(2, minmax(0, 1fr))"
                    ),
                )
            )
        from flowbook.ui.intercept_panel import InterceptPanel

        self.intercept = InterceptPanel()
        tabs = ipywidgets.Tab(children=[ipywidgets.VBox(chart_items), self.intercept])
        tabs.set_title(0, "Charts")
        tabs.set_title(1, "Intercept")
        self.tabs = tabs
        super().__init__(
            [self.table, self.table.diff_output, tabs],
            layout=ipywidgets.Layout(width="100%"),
        )
        self.add_class("fb-dashboard")

    def close(self) -> None:
        for chart in self.charts:
            stop = getattr(chart, "stop", None)
            if stop is not None:
                stop()
        self.table.close()
        super().close()


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def dashboard(filter: str | None = None, *, include_history: bool = False) -> Dashboard:
    """The dashboard widget (``fb.dashboard()``)."""
    return Dashboard(filter, include_history=include_history)


__all__ = ["CHARTS", "Dashboard", "dashboard"]

"""The live flow table (``fb.table()``, ``%flowmon table``).

Traits hold only small state that rebuilds the view (filter, sort, row count, version,
selection); rows never travel as traits. The browser asks for pages (``{"type": "page", req,
version, offset, limit}``) and gets Arrow IPC buffers back; each reply carries the view version,
so the browser drops stale ones. Live: the store's change signal (its own thread) merges changes
into the view and *pushes* the visible window, which reaches the browser even while another
cell runs (browser-to-kernel messages wait until the kernel is idle; kernel-to-browser messages
do not). Pushes are coalesced to at most ``MAX_PUSHES_PER_S``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import traitlets

from flowbook.filters import FilterError
from flowbook.schema import COLUMNS
from flowbook.ui import static_file
from flowbook.ui.source import StoreSource
from flowbook.ui.static_table import render_page
from flowbook.ui.table_actions import TableActions
from flowbook.ui.views import TableView, ipc_bytes

if TYPE_CHECKING:
    import pandas as pd

MAX_PUSHES_PER_S = 4.0
MAX_PAGE = 500  # rows a single page request may ask for


def filter_error_dict(exc: FilterError, expression: str) -> dict[str, Any]:
    """A FilterError as the table shows it inline: message, 0-based column, hint."""
    return {
        "message": exc.message,
        "position": exc.position,
        "hint": exc.hint or "",
        "expression": exc.expression if exc.expression is not None else expression,
        "text": str(exc.with_expression(expression)),
    }


class FlowTable(TableActions, anywidget.AnyWidget):
    """Every captured flow, live, virtualised; click a row for its detail."""

    _esm = static_file("table.js")
    _css = static_file("table.css")

    filter_expr = traitlets.Unicode("").tag(sync=True)
    filter_error = traitlets.Dict().tag(sync=True)
    sort_by = traitlets.Unicode("timestamp").tag(sync=True)
    sort_order = traitlets.Unicode("desc").tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)
    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    quick_filters = traitlets.List(traitlets.Dict()).tag(sync=True)
    column_widths = traitlets.Dict().tag(sync=True)
    height = traitlets.Int(460).tag(sync=True)
    can_diff = traitlets.Bool(False).tag(sync=True)
    capturing = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        filter: str | None = None,
        *,
        include_history: bool = False,
        source: StoreSource | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._source = source or StoreSource()
        self._include_history = include_history
        self._lock = threading.RLock()
        self._window = (0, 100)
        self._anchor = 0  # the first row the browser shows (kept in place as rows arrive)
        self._pending: set[str] = set()
        self._removed: set[str] = set()
        self._timer: threading.Timer | None = None
        self._last_push = 0.0
        self.pushes = 0  # live pushes sent (tests check the coalescing)
        self.diff_output = ipywidgets.Output()
        # Ids merged while a new view is being built; the new view takes them in too, or it
        # would miss changes that landed between its snapshot and the swap.
        self._build_log: set[str] | None = set()
        self._unwatch = self._source.watch(self, "_on_store_change")
        self._install(self._new_view(""))
        self.quick_filters = self._quick_filters()
        self.can_diff = _diff_available()
        self._sync_counts()
        if filter:
            self.filter_expr = filter
        self.observe(self._query_changed, names=["filter_expr", "sort_by", "sort_order"])
        if filter:
            self._query_changed(None)
        self.on_msg(self._on_custom)

    # ---- the view ----------------------------------------------------------------------------

    @property
    def view(self) -> TableView:
        return self._view

    def _sync_counts(self) -> None:
        with self.hold_sync():
            self.total = len(self._view)
            self.version += 1
            self.capturing = self._source.capturing()

    def _query_changed(self, _change: Any) -> None:
        expr = self.filter_expr.strip()
        if self.sort_by not in COLUMNS:
            self.sort_by = "timestamp"
            return
        try:
            view = self._new_view(expr)
        except FilterError as exc:
            self.filter_error = filter_error_dict(exc, expr)
            return
        self._install(view)
        self.filter_error = {}
        self._sync_counts()

    def _new_view(self, expr: str) -> TableView:
        """Build a view (O(N), outside the lock); ``_install`` then swaps it in."""
        with self._lock:
            self._build_log = set()
        try:
            return TableView(
                self._source, expr, self.sort_by, self.sort_order, self._include_history
            )
        except BaseException:
            with self._lock:
                self._build_log = None
            raise

    def _install(self, view: TableView) -> None:
        # Under the lock: catch up with what changed since the view's snapshot, then swap, so
        # no change falls between the old view and the new one.
        with self._lock:
            missed, self._build_log = self._build_log or set(), None
            if missed:
                view.apply(frozenset(missed))
            self._view = view
            self._window = (0, self._window[1])

    def _quick_filters(self) -> list[dict[str, Any]]:
        from flowbook.filters.quick import QuickFilters

        try:
            items = QuickFilters(self._source.data_dir).list()
        except (OSError, ValueError):
            return []
        return [{"name": q.name, "expression": q.expression, "preset": q.preset} for q in items]

    def refresh_quick_filters(self) -> None:
        """Re-read the saved filters (after ``fb.quick_filters().save(...)``)."""
        self.quick_filters = self._quick_filters()

    def page(self, offset: int, limit: int) -> tuple[dict[str, Any], bytes]:
        """One page as (header, Arrow IPC bytes); also what the browser's requests get."""
        limit = max(0, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        with self._lock:
            self._window = (offset, limit)
            table = self._view.page(offset, limit)
            head = {"version": self.version, "offset": offset, "total": len(self._view)}
        return head, ipc_bytes(table)

    # ---- messages from the browser -----------------------------------------------------------

    def _on_custom(self, _w: Any, content: Any, _buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind, req = content.get("type"), content.get("req")
        if kind == "page":
            with self._lock:
                self._anchor = max(0, int(content.get("anchor", 0) or 0))
            head, data = self.page(content.get("offset", 0), content.get("limit", 100))
            self.send({"type": "page", "req": req, **head}, buffers=[data])
            return
        try:
            reply = self.handle_action(kind, content)
            self.send({"type": "reply", "req": req, "ok": True, **reply})
        except (KeyError, ValueError, RuntimeError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self.send({"type": "reply", "req": req, "ok": False, "error": str(msg)})

    # ---- live updates ------------------------------------------------------------------------

    def _on_store_change(
        self, added: frozenset[str], updated: frozenset[str], removed: frozenset[str]
    ) -> None:
        with self._lock:
            self._pending |= added | updated
            self._removed |= removed
            if self._timer is not None:
                return
            wait = self._last_push + 1.0 / MAX_PUSHES_PER_S - time.monotonic()
            if wait > 0:  # coalesce: one push for everything until the next slot
                self._timer = threading.Timer(wait, self.flush_changes)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush_changes()

    def flush_changes(self) -> None:
        """Merge pending store changes into the view and push the visible window."""
        with self._lock:
            self._timer = None
            changed, removed = frozenset(self._pending), frozenset(self._removed)
            self._pending, self._removed = set(), set()
            if not changed and not removed:
                return
            self._last_push = time.monotonic()
            if self._build_log is not None:
                self._build_log |= changed
            if not hasattr(self, "_view"):
                return
            view = self._view
            # A reader scrolled down keeps the same rows in view while new ones arrive above:
            # find where the first row they see went, and move the window by as much.
            anchor_id = view.ids(self._anchor, 1) if self._anchor > 0 else []
            if not view.apply(changed, removed):
                return
            shift = 0
            if anchor_id:
                pos = view.position(anchor_id[0])
                if pos is not None:
                    shift = pos - self._anchor
                    self._anchor = pos
            self._sync_counts()
            offset, limit = self._window
            head, data = self.page(max(0, offset + shift), limit)
            self.pushes += 1
        self.send(
            {"type": "page", "push": True, "req": None, "shift": shift, **head}, buffers=[data]
        )

    def close(self) -> None:
        self._unwatch()
        super().close()

    # ---- Python side -------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """The selected rows (``table.selected``) as a DataFrame with fb.flows()' columns."""
        from flowbook.schema import frame_from_rows

        ids = list(self.selected)
        rows = {r["id"]: r for r in self._source.rows(ids)}
        missing = [i for i in ids if i not in rows]
        df = frame_from_rows([rows[i] for i in ids if i in rows])
        if missing:  # history rows (on disk only): from the view's snapshot
            import pandas as pd

            base = self._view.frame
            old = base[base["id"].isin(missing)]
            df = pd.concat([df, old], ignore_index=True) if len(df) else old.reset_index(drop=True)
            order = {fid: i for i, fid in enumerate(ids)}
            df = df.sort_values("id", key=lambda s: s.map(order)).reset_index(drop=True)
        return df

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # The widget with its diff output below it, plus a static HTML table for front ends
        # that cannot render widgets (nbconvert, GitHub).
        box = ipywidgets.VBox([self, self.diff_output])
        bundle = box._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/html"] = self._repr_html_()
        return bundle

    def _repr_html_(self) -> str:
        with self._lock:
            return render_page(self._view.page(0, 50), len(self._view))


def _diff_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("flowbook.ui.diff") is not None


def table(filter: str | None = None, *, include_history: bool = False) -> FlowTable:
    """A live table of the flows (``fb.table()``); ``filter`` is a filter expression."""
    return FlowTable(filter, include_history=include_history)


__all__ = ["FlowTable", "filter_error_dict", "table"]

"""The one adapter between flowbook's widgets (table, detail, dashboard) and the store.

Everything the widgets need from the store goes through :class:`StoreSource`, a thin view of
the current :class:`~flowbook.workspace.Workspace`'s store façade (docs/architecture.md).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from flowbook.model import LLMFlow
    from flowbook.store.changes import StoreChange
    from flowbook.workspace import Workspace

# (added, updated, removed) ids, as the store's change feed reports them.
ChangeCallback = Callable[[frozenset[str], frozenset[str], frozenset[str]], None]


class StoreSource:
    """Read, annotate and watch the flows of the current data dir."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        if workspace is None:
            from flowbook.workspace import current

            workspace = current()
        self._ws = workspace

    @property
    def data_dir(self) -> Path:
        return Path(self._ws.data_dir)

    def capturing(self) -> bool:
        """Whether a proxy is feeding this store right now."""
        return self._ws.monitor is not None

    def frame(self, include_history: bool) -> pd.DataFrame:
        """The summary DataFrame of every flow (columns: flowbook.schema)."""
        return self._ws.store.frame(include_history)

    def rows(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Fresh summary rows (``timestamp`` in epoch seconds) of the ids held in memory; ids the
        memory store does not hold (history on disk, removed) are left out. O(len(ids))."""
        memory = self._ws.store.memory
        out = []
        for fid in ids:
            row = memory.row(fid)
            if row is not None:
                out.append(row)
        return out

    def memory_flows(self, ids: Iterable[str]) -> dict[str, LLMFlow]:
        """The full flows of those ids that are in memory (never reads the disk)."""
        memory = self._ws.store.memory
        out = {}
        for fid in ids:
            if memory.in_memory(fid):
                flow = memory.get(fid)
                if flow is not None:
                    out[fid] = flow
        return out

    def get_flow(self, flow_id: str) -> LLMFlow | None:
        return self._ws.store.get(flow_id)

    def set_bookmark(self, flow_id: str, on: bool) -> None:
        self._ws.store.annotate(flow_id, bookmarked=on)

    def annotate(self, flow_id: str, *, bookmarked: bool, tags: list[str], comment: str) -> None:
        """Set a flow's bookmark, tags (exactly these) and comment, persisted."""
        store = self._ws.store
        flow = store.get(flow_id)
        if flow is None:
            raise KeyError(f"no flow with id {flow_id!r}")
        current = list(flow.annotations.tags)
        store.annotate(
            flow_id,
            bookmarked=bookmarked,
            add_tags=[t for t in tags if t not in current],
            remove_tags=[t for t in current if t not in tags],
            comment=comment,
        )

    def flow_source(self, include_history: bool) -> Any:
        """What the filter language asks for terms the summary cannot answer."""
        return self._ws.store

    def watch(self, owner: object, method: str) -> Callable[[], None]:
        """Call ``getattr(owner, method)(added, updated, removed)`` on every coalesced store change
        (on the store's dispatcher thread, at most a few times a second). The owner is held
        weakly: once it is garbage, the subscription ends. Returns a function that unsubscribes."""
        signal = self._ws.store.changed
        ref = weakref.ref(owner)
        lock = threading.Lock()
        state = {"on": True}

        def listener(change: StoreChange) -> None:
            target = ref()
            if target is None or not state["on"]:
                unsubscribe()
                return
            getattr(target, method)(change.added, change.updated, change.removed)

        def unsubscribe() -> None:
            with lock:
                if state["on"]:
                    state["on"] = False
                    signal.disconnect(listener)

        signal.connect(listener)
        return unsubscribe


__all__ = ["ChangeCallback", "StoreSource"]

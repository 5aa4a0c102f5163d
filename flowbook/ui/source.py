"""The one adapter between flowbook's widgets (table, dashboard) and the store.

Everything the table needs from the store goes through :class:`StoreSource`, so repointing the
UI at another store (the ``flowbook.workspace`` façade) is a change to this file only. Today it
wraps ``flowbook.api._rt()`` (a ``Runtime``: memory store + file store).
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
    from flowbook.runtime import Runtime

# (added, updated, removed) ids. The current store cannot tell added from updated, so it reports
# every changed id as updated; receivers treat an unknown "updated" id as new.
ChangeCallback = Callable[[frozenset[str], frozenset[str], frozenset[str]], None]


class StoreSource:
    """Read, annotate and watch the flows of the current data dir."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        if runtime is None:
            from flowbook.api import _rt

            runtime = _rt()
        self._rt = runtime

    @property
    def data_dir(self) -> Path:
        return Path(self._rt.data_dir)

    def capturing(self) -> bool:
        """Whether a proxy is feeding this store right now."""
        mon = self._rt.monitor
        return mon is not None and bool(mon.running)

    def frame(self, include_history: bool) -> pd.DataFrame:
        """The summary DataFrame of every flow (DESIGN §3 columns)."""
        return self._rt.frame(include_history)

    def rows(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Fresh summary rows (``timestamp`` in epoch seconds) of the ids held in memory; ids the
        memory store does not hold (history on disk, removed) are left out. O(len(ids))."""
        store = self._rt.store
        out = []
        for fid in ids:
            row = store.row(fid)
            if row is not None:
                out.append(row)
        return out

    def memory_flows(self, ids: Iterable[str]) -> dict[str, LLMFlow]:
        """The full flows of those ids that are in memory (never reads the disk)."""
        store = self._rt.store
        out = {}
        for fid in ids:
            if store.in_memory(fid):
                flow = store.get(fid)
                if flow is not None:
                    out[fid] = flow
        return out

    def get_flow(self, flow_id: str) -> LLMFlow | None:
        return self._rt.get_flow(flow_id)

    def set_bookmark(self, flow_id: str, on: bool) -> None:
        self._rt.annotate(flow_id, bookmarked=on)

    def annotate(self, flow_id: str, *, bookmarked: bool, tags: list[str], comment: str) -> None:
        """Set a flow's bookmark, tags (exactly these) and comment, persisted."""
        import inspect

        rt = self._rt
        flow = rt.get_flow(flow_id)
        if flow is None:
            raise KeyError(f"no flow with id {flow_id!r}")
        current = list(flow.annotations.tags)
        add = [t for t in tags if t not in current]
        remove = [t for t in current if t not in tags]
        if remove and "remove_tags" in inspect.signature(rt.annotate).parameters:
            rt.annotate(flow_id, bookmarked=bookmarked, add_tags=add, remove_tags=remove,
                        comment=comment)  # type: ignore[call-arg]  # fmt: skip
            return
        rt.annotate(flow_id, bookmarked=bookmarked, add_tags=add, comment=comment)
        if remove:  # this store's annotate only adds tags: write the reduced set
            from flowbook.model import FlowAnnotations

            flow = rt.get_flow(flow_id)
            assert flow is not None
            ann = FlowAnnotations(**flow.annotations.to_dict())
            ann.tags = [t for t in ann.tags if t not in remove]
            flow.annotations = ann
            if flow_id in rt.store:
                rt.store.set_annotations(flow_id, ann)
            rt.file_store.set_annotations(flow_id, ann)

    def flow_source(self, include_history: bool) -> Any:
        """What the filter language asks for terms the summary cannot answer."""
        return self._rt.flow_source(include_history)

    def watch(self, owner: object, method: str) -> Callable[[], None]:
        """Call ``getattr(owner, method)(added, updated, removed)`` on every coalesced store change
        (on the store's dispatcher thread, at most a few times a second). The owner is held
        weakly: once it is garbage, the subscription ends. Returns a function that unsubscribes."""
        signal = self._rt.store.changed
        ref = weakref.ref(owner)
        lock = threading.Lock()
        state = {"on": True}

        def listener(ids: set[str]) -> None:
            target = ref()
            if target is None or not state["on"]:
                unsubscribe()
                return
            getattr(target, method)(frozenset(), frozenset(ids), frozenset())

        def unsubscribe() -> None:
            with lock:
                if state["on"]:
                    state["on"] = False
                    signal.disconnect(listener)

        signal.connect(listener)
        return unsubscribe


__all__ = ["ChangeCallback", "StoreSource"]

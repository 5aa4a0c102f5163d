"""The in-memory flow store: full flows in an LRU, a summary row for every flow, a change signal.

Thread-safe: the recorder thread writes, the kernel thread reads. Readers get the typed summary
DataFrame built lazily once per revision; widgets subscribe to a coalesced change signal instead
of reacting per update.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.store.summary import COLUMNS, frame_from_tuples, row_tuple, summary_row

_POS = {name: i for i, name in enumerate(COLUMNS)}

Listener = Callable[[set[str]], None]


class ChangeSignal:
    """Coalesces many store updates into at most ``max_rate`` callbacks per second.

    Listeners run on a small dispatcher thread, never on the proxy or recorder thread, and get the
    set of flow ids that changed since their last call.
    """

    def __init__(self, max_rate: float = 4.0) -> None:
        self._interval = 1.0 / max_rate
        self._listeners: list[Listener] = []
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def connect(self, listener: Listener) -> Listener:
        with self._cond:
            self._listeners.append(listener)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flowbook-change-signal", daemon=True
                )
                self._thread.start()
        return listener

    def disconnect(self, listener: Listener) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def emit(self, flow_id: str) -> None:
        if not self._listeners:
            return  # nobody listens: keep nothing (the pending set would only grow)
        with self._cond:
            self._pending.add(flow_id)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._pending = self._pending, set()
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(batch)
                except Exception:  # a broken widget must not stop the others
                    import logging

                    logging.getLogger(__name__).exception("change listener failed")
            time.sleep(self._interval)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class FlowStore:
    """Flows of this process: full flows LRU-bounded, summary rows for all of them."""

    def __init__(self, max_flows_in_memory: int = 1000) -> None:
        self.max_flows_in_memory = max_flows_in_memory
        self._lock = threading.RLock()
        self._flows: OrderedDict[str, LLMFlow] = OrderedDict()
        # One tuple per flow in COLUMNS order (a dict per row would cost ~1.5 KB a flow).
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._revision = 0
        self._frame: pd.DataFrame | None = None
        self._frame_rev = -1
        # Rows changed since the cached frame was built; frame() rebuilds only those.
        self._dirty: set[str] = set()
        self._full_rebuild = True
        self.changed = ChangeSignal()
        # Set by the API when a file store backs this store: reads evicted flows back.
        self.loader: Callable[[str], LLMFlow | None] | None = None

    @property
    def revision(self) -> int:
        return self._revision

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._rows

    def put(self, flow: LLMFlow) -> None:
        """Insert or update a flow (and its summary row)."""
        row = row_tuple(summary_row(flow))
        with self._lock:
            self._flows[flow.id] = flow
            self._flows.move_to_end(flow.id)
            self._rows[flow.id] = row
            self._revision += 1
            self._dirty.add(flow.id)
            self._evict()
        self.changed.emit(flow.id)

    def touch(self, flow: LLMFlow) -> None:
        """Refresh the summary row of a flow already in the store (cheap; for live updates)."""
        row = row_tuple(summary_row(flow))
        with self._lock:
            self._rows[flow.id] = row
            self._revision += 1
            self._dirty.add(flow.id)
        self.changed.emit(flow.id)

    def _evict(self) -> None:
        # Never evict a flow still in progress: its recorder holds it and would lose updates.
        excess = len(self._flows) - self.max_flows_in_memory
        if excess <= 0:
            return
        victims = []
        for fid, flow in self._flows.items():  # oldest first; usually the first one goes
            if flow.state.is_final:
                victims.append(fid)
                if len(victims) == excess:
                    break
        for fid in victims:
            del self._flows[fid]

    def get(self, flow_id: str) -> LLMFlow | None:
        with self._lock:
            flow = self._flows.get(flow_id)
            if flow is not None:
                self._flows.move_to_end(flow_id)
                return flow
        if self.loader is not None:
            return self.loader(flow_id)
        return None

    def in_memory(self, flow_id: str) -> bool:
        with self._lock:
            return flow_id in self._flows

    def flows(self) -> list[LLMFlow]:
        with self._lock:
            return list(self._flows.values())

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    def set_annotations(self, flow_id: str, annotations: FlowAnnotations) -> None:
        with self._lock:
            flow = self._flows.get(flow_id)
            if flow is not None:
                flow.annotations = annotations
            if flow_id in self._rows:
                self._set_cells(
                    flow_id, bookmarked=annotations.bookmarked, tags=",".join(annotations.tags)
                )
            self._revision += 1
            self._dirty.add(flow_id)
        self.changed.emit(flow_id)

    def update_row(self, flow_id: str, **values: Any) -> None:
        with self._lock:
            if flow_id not in self._rows:
                return
            self._set_cells(flow_id, **values)
            self._revision += 1
            self._dirty.add(flow_id)
        self.changed.emit(flow_id)

    def _set_cells(self, flow_id: str, **values: Any) -> None:
        cells = list(self._rows[flow_id])
        for name, value in values.items():
            cells[_POS[name]] = value
        self._rows[flow_id] = tuple(cells)

    def row(self, flow_id: str) -> dict[str, Any] | None:
        """One flow's summary row as a dict."""
        with self._lock:
            cells = self._rows.get(flow_id)
        return None if cells is None else dict(zip(COLUMNS, cells, strict=True))

    def frame(self) -> pd.DataFrame:
        """The typed summary DataFrame of every flow in this store (cached per revision).

        Only rows that changed since the last call are rebuilt, so a store of a million flows
        with a few live ones costs a small concat, not a rebuild from a million dicts.
        """
        with self._lock:
            if self._frame is not None and self._frame_rev == self._revision:
                return self._frame
            rev = self._revision
            full = self._full_rebuild or self._frame is None
            if full:
                rows = list(self._rows.values())
                dirty: set[str] = set()
            else:
                dirty = self._dirty
                rows = [self._rows[i] for i in dirty if i in self._rows]
            self._dirty = set()
            self._full_rebuild = False
            cached = self._frame
        fresh = frame_from_tuples(rows)
        if full or cached is None:
            frame = fresh
        else:
            keep = cached[~cached["id"].isin(list(dirty))] if dirty else cached
            frame = pd.concat([keep, fresh], ignore_index=True) if len(fresh) else keep
            if not len(keep):
                frame = fresh
        with self._lock:
            self._frame, self._frame_rev = frame, rev
        return frame

    def remove(self, ids: Iterable[str]) -> None:
        with self._lock:
            for fid in ids:
                self._flows.pop(fid, None)
                self._rows.pop(fid, None)
            self._revision += 1
            self._full_rebuild = True

    def clear(self) -> None:
        with self._lock:
            self._flows.clear()
            self._rows.clear()
            self._revision += 1
            self._full_rebuild = True

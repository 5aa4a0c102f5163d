"""The in-memory flow store: full flows in an LRU, a summary row for every flow, a change signal.

Thread-safe: the recorder thread writes, the kernel thread reads. Readers get the typed summary
DataFrame built lazily once per revision; widgets subscribe to the coalesced ``changed`` signal
(``flowbook.store.changes``) instead of reacting per update. The disk and in-progress flows are
the façade's business (``flowbook.store.facade.Store``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import pandas as pd

from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.schema import COLUMNS, frame_from_tuples, row_tuple, summary_row
from flowbook.store.changes import ADDED, REMOVED, UPDATED, ChangeFeed

_POS = {name: i for i, name in enumerate(COLUMNS)}


class FlowStore:
    """Flows of this process: full flows LRU-bounded, summary rows for all of them."""

    def __init__(self, max_flows_in_memory: int = 1000) -> None:
        self.max_flows_in_memory = max_flows_in_memory
        self._lock = threading.RLock()
        self._frame_build_lock = threading.Lock()
        self._flows: OrderedDict[str, LLMFlow] = OrderedDict()
        # One tuple per flow in COLUMNS order (a dict per row would cost ~1.5 KB a flow).
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._revision = 0
        self._frame: pd.DataFrame | None = None
        self._frame_rev = -1
        # Rows changed since the cached frame was built; frame() rebuilds only those.
        self._dirty: set[str] = set()
        self._full_rebuild = True
        self.changed = ChangeFeed()

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
            kind = UPDATED if flow.id in self._rows else ADDED
            self._flows[flow.id] = flow
            self._flows.move_to_end(flow.id)
            self._rows[flow.id] = row
            self._revision += 1
            self._dirty.add(flow.id)
            self._evict()
        self.changed.record(kind, flow.id)

    def touch(self, flow: LLMFlow) -> None:
        """Refresh the summary row of a flow already in the store (cheap; for live updates)."""
        row = row_tuple(summary_row(flow))
        with self._lock:
            kind = UPDATED if flow.id in self._rows else ADDED
            self._rows[flow.id] = row
            self._revision += 1
            self._dirty.add(flow.id)
        self.changed.record(kind, flow.id)

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
        """The full flow if it is still in memory (the LRU), else None."""
        with self._lock:
            flow = self._flows.get(flow_id)
            if flow is not None:
                self._flows.move_to_end(flow_id)
            return flow

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
        self.changed.record(UPDATED, flow_id)

    def update_row(self, flow_id: str, **values: Any) -> None:
        with self._lock:
            if flow_id not in self._rows:
                return
            self._set_cells(flow_id, **values)
            self._revision += 1
            self._dirty.add(flow_id)
        self.changed.record(UPDATED, flow_id)

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
        # One build at a time: two readers building from the same dirty set could otherwise
        # store an older frame after a newer one, losing rows until the next full rebuild.
        with self._frame_build_lock:
            return self._build_frame()

    def _build_frame(self) -> pd.DataFrame:
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

    def remove(self, ids: Iterable[str]) -> set[str]:
        """Forget these flows (full flow and summary row); returns the ids that were here."""
        gone: set[str] = set()
        with self._lock:
            for fid in ids:
                self._flows.pop(fid, None)
                if self._rows.pop(fid, None) is not None:
                    gone.add(fid)
            self._revision += 1
            self._full_rebuild = True
        if gone:
            self.changed.record(REMOVED, gone)
        return gone

    def clear(self) -> set[str]:
        """Forget every flow; returns the ids that were here."""
        with self._lock:
            gone = set(self._rows)
            self._flows.clear()
            self._rows.clear()
            self._revision += 1
            self._full_rebuild = True
        if gone:
            self.changed.record(REMOVED, gone)
        return gone

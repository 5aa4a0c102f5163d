"""The store façade: every flow of one data dir — in progress, in memory, on disk — behind one API.

``Store`` is what the rest of flowbook reads and writes:

- the recorder writes through exactly two methods, ``put(flow)`` and ``touch(flow)`` (its
  ``FlowSink``); a ``put`` that takes a flow from in progress to a final state is its completion,
  and the completed flow is queued for the file store;
- readers use ``query``, ``frame``, ``get``, ``iter_flows`` and ``annotate``, and subscribe to
  ``changed`` (a psygnal signal emitting one ``StoreChange`` a few times a second at most);
- the filters' evaluator uses it as its ``FlowSource`` (``ids_matching``, ``get_flows``).

Reads never wait for writes: a completed flow not yet on disk is served from the writer's queue,
and text search checks the flows that are not on disk one by one. ``wait_idle`` is there for the
caller who wants everything on disk.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from flowbook.filters import parse
from flowbook.filters.ast import FlowTerm
from flowbook.filters.per_flow import flow_term_matches
from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.store.changes import ADDED, REMOVED, UPDATED, ChangeFeed
from flowbook.store.file_store import FileStore
from flowbook.store.memory import FlowStore
from flowbook.store.query import check_query_args, sort_and_page
from flowbook.store.writer import FlowWriter

MiB = 1 << 20


class Store:
    """Flows of one data dir: the session's (memory, LRU-bounded) and the stored history (disk).

    The file store opens on first use (a process that only captures opens it at ``fb.start``).
    ``retention_days`` (None: no automatic cleanup) is applied when it opens.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        max_flows_in_memory: int = 1000,
        persist: bool = True,
        segment_max_bytes: int = 64 * MiB,
        retention_days: float | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.memory = FlowStore(max_flows_in_memory)
        self.persist = persist
        self.segment_max_bytes = segment_max_bytes
        self.retention_days = retention_days
        self._disk: FileStore | None = None
        self._writer: FlowWriter | None = None
        self._active: set[str] = set()
        self._lock = threading.RLock()
        self._capturing = False
        # Hooks (the session tracker): ``on_put(flow, first, completed)`` for every put, on the
        # putting thread, before the flow is visible; ``on_batch_end(batched)`` once per batch
        # of puts (see ``batch``), and after every put outside a batch (``batched`` False:
        # before the flow is visible); ``enrichers`` add derived columns to every summary
        # frame. A failing hook is recorded in ``hook_errors``, never raised.
        self.on_put: list[Callable[[LLMFlow, bool, bool], None]] = []
        self.on_batch_end: list[Callable[[bool], None]] = []
        self._batch = threading.local()  # .depth: this thread's open batches
        self.enrichers: list[Callable[[pd.DataFrame], pd.DataFrame]] = []
        self.hook_errors: list[str] = []

    @property
    def changed(self) -> ChangeFeed:
        """psygnal signal: one ``StoreChange(added, updated, removed)`` per interval (≤ 4/s),
        emitted on a dispatcher thread, never on the proxy or recorder thread."""
        return self.memory.changed

    # ---- the recorder's side (FlowSink) -----------------------------------------------------

    def put(self, flow: LLMFlow) -> None:
        """Insert or replace a flow. When it reaches a final state, it is persisted."""
        final = flow.state.is_final
        with self._lock:
            first = flow.id not in self._active and flow.id not in self.memory
            completed = final and (flow.id in self._active or flow.id not in self.memory)
            if final:
                self._active.discard(flow.id)
            else:
                self._active.add(flow.id)
        self._run_hooks(flow, first, completed)
        if getattr(self._batch, "depth", 0) == 0:
            self._end_hooks(False)
        self.memory.put(flow)
        if completed and self.persist:
            self._open()[1].put(flow)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group this thread's puts: the ``on_batch_end`` hooks run once, at the end (the
        recorder applies its ops in batches; an import is one batch). Batches nest."""
        state = self._batch
        depth = getattr(state, "depth", 0)
        state.depth = depth + 1
        try:
            yield
        finally:
            state.depth = depth
            if depth == 0:
                self._end_hooks(True)

    def _run_hooks(self, flow: LLMFlow, first: bool, completed: bool) -> None:
        for hook in list(self.on_put):
            try:
                hook(flow, first, completed)
            except Exception:
                self.hook_errors.append(traceback.format_exc())

    def _end_hooks(self, batched: bool) -> None:
        for hook in list(self.on_batch_end):
            try:
                hook(batched)
            except Exception:
                self.hook_errors.append(traceback.format_exc())

    def touch(self, flow: LLMFlow) -> None:
        """Refresh the summary row of a flow already stored (cheap; for live updates)."""
        if not flow.state.is_final:
            with self._lock:
                self._active.add(flow.id)
        self.memory.touch(flow)

    def mark_capturing(self) -> None:
        """A proxy started in this process: from now on, ``include_history=False`` means this
        session's flows even while there are none yet."""
        self._capturing = True

    # ---- disk --------------------------------------------------------------------------------

    def _open(self) -> tuple[FileStore, FlowWriter]:
        with self._lock:
            if self._disk is None or self._writer is None:
                disk = FileStore(self.data_dir, segment_max_bytes=self.segment_max_bytes)
                disk.on_removed.append(self._removed_from_disk)
                self._disk, self._writer = disk, FlowWriter(disk)
                if self.retention_days is not None:
                    disk.apply_retention(self.retention_days)
            return self._disk, self._writer

    @property
    def disk(self) -> FileStore:
        """The file store of the data dir (opened, and recovered, on first use)."""
        return self._open()[0]

    @property
    def disk_if_open(self) -> FileStore | None:
        """The file store if something has opened it already, else None (opens nothing)."""
        return self._disk

    def _removed_from_disk(self, ids: set[str]) -> None:
        # A flow of this session stays visible (its summary row is in memory): not removed.
        session = set(self.memory.ids())
        gone = {i for i in ids if i not in session}
        if gone:
            self.changed.record(REMOVED, gone)

    def apply_retention(self, retention_days: float) -> int:
        """Remove stored flows older than ``retention_days``; returns how many went."""
        return self.disk.apply_retention(retention_days)

    def load(self, path: Path) -> list[str]:
        """Import a flowbook JSONL file into the data dir; returns the ids added."""
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        ids = list(self.disk.import_jsonl(path))
        if ids and self.on_put:
            with self.batch():
                for flow in self.get_flows(ids):
                    self._run_hooks(flow, True, flow.state.is_final)
        if ids:
            self.changed.record(ADDED, ids)
        return ids

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every completed flow is on disk (False if ``timeout`` passed first)."""
        writer = self._writer
        return True if writer is None else writer.flush(timeout)

    # ---- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Flows of this session (summary rows in memory)."""
        return len(self.memory)

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self.memory

    def in_memory(self, flow_id: str) -> bool:
        """Whether the full flow is in memory (not evicted by the LRU)."""
        return self.memory.in_memory(flow_id)

    def in_progress_ids(self) -> list[str]:
        """Flows still pending, streaming or paused (not final yet)."""
        with self._lock:
            return list(self._active)

    def _history_by_default(self) -> bool:
        # A process that has captured nothing yet sees the data dir's history.
        return not self._capturing and len(self.memory) == 0

    def frame(self, include_history: bool = False) -> pd.DataFrame:
        """The typed summary frame: this session's flows, plus the stored ones with history."""
        df = self._frame(include_history)
        for enrich in list(self.enrichers):
            try:
                df = enrich(df)
            except Exception:
                self.hook_errors.append(traceback.format_exc())
        return df

    def _frame(self, include_history: bool) -> pd.DataFrame:
        live = self.memory.frame()
        if not include_history and not self._history_by_default():
            return live
        disk = self.disk.summary_frame()
        if len(live) == 0:
            return disk
        if len(disk) == 0:
            return live
        disk = disk[~disk["id"].isin(live["id"])]
        return pd.concat([disk, live], ignore_index=True)

    def query(
        self,
        filter: str | None = None,
        *,
        sort_by: str = "timestamp",
        sort_order: str = "desc",
        page: int | None = None,
        page_size: int = 50,
        include_history: bool = False,
    ) -> pd.DataFrame:
        """Summary rows matching ``filter``, sorted and paged; ``df.attrs["total"]`` is the
        number of matching rows before paging. Bad arguments raise ValueError (a bad filter
        FilterError) saying what is allowed."""
        check_query_args(sort_by, sort_order, page, page_size)
        df = self.frame(include_history)
        if filter:
            df = df[parse(filter).mask(df, source=self).to_numpy()]
        return sort_and_page(
            df, sort_by=sort_by, sort_order=sort_order, page=page, page_size=page_size
        )

    def get(self, flow_id: str) -> LLMFlow | None:
        """The full flow: from memory, the writer's queue, or read back from disk; else None."""
        flow = self.memory.get(flow_id)
        if flow is None and self._writer is not None:
            flow = self._writer.pending(flow_id)
        if flow is None:
            flow = self.disk.get(flow_id)
        return flow

    def iter_flows(
        self,
        ids: Iterable[str] | None = None,
        *,
        include_history: bool = False,
        batch_size: int = 256,
    ) -> Iterator[list[LLMFlow]]:
        """Full flows in lists of up to ``batch_size`` (ids that are not found are skipped).

        Without ``ids``: this session's flows, after the stored ones with ``include_history``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if ids is None:
            session = self.memory.ids()
            if include_history or self._history_by_default():
                known = set(session)
                ids = [i for i in self.disk.ids() if i not in known] + session
            else:
                ids = session
        batch: list[LLMFlow] = []
        for flow_id in ids:
            flow = self.get(flow_id)
            if flow is None:
                continue
            batch.append(flow)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # ---- FlowSource (for Filter.mask) --------------------------------------------------------

    def ids_matching(self, term: FlowTerm) -> set[str] | None:
        """Literal text-search terms from the FTS index, plus the flows not on disk yet checked
        one by one; None for every other term (the evaluator then checks candidates)."""
        literal = term.literal
        if not term.is_text_search or literal is None:
            return None
        ids = self.disk.ids_matching_text(term.kind, literal)
        unwritten = set(self.in_progress_ids())
        if self._writer is not None:
            unwritten.update(self._writer.pending_ids())
        if not self.persist:
            unwritten.update(self.memory.ids())
        for flow in self.get_flows(unwritten - ids):
            if flow_term_matches(term, flow):
                ids.add(flow.id)
        return ids

    def get_flows(self, ids: Iterable[str]) -> Iterator[LLMFlow]:
        """The full flows for these ids (missing ones skipped)."""
        for flow_id in ids:
            flow = self.get(flow_id)
            if flow is not None:
                yield flow

    # ---- writing annotations, removing -------------------------------------------------------

    def annotate(
        self,
        flow_id: str,
        bookmarked: bool | None = None,
        add_tags: list[str] | None = None,
        remove_tags: list[str] | None = None,
        comment: str | None = None,
    ) -> FlowAnnotations:
        """Change a flow's bookmark, tags or comment, in memory and on disk; returns the result.

        Raises KeyError for an unknown id and ValueError for a bad tag.
        """
        flow = self.get(flow_id)
        if flow is None:
            raise KeyError(f"no flow with id {flow_id!r}")
        ann = FlowAnnotations(**flow.annotations.to_dict())
        ann.tags = list(ann.tags)
        if bookmarked is not None:
            ann.bookmarked = bool(bookmarked)
        for t in add_tags or []:
            if not isinstance(t, str) or not t.strip() or "," in t:
                raise ValueError(f"a tag is a non-empty string without commas, got {t!r}")
            if t not in ann.tags:
                ann.tags.append(t.strip())
        for t in remove_tags or []:
            if t in ann.tags:
                ann.tags.remove(t)
        if comment is not None:
            ann.comment = comment
        flow.annotations = ann
        if flow_id in self.memory:
            self.memory.set_annotations(flow_id, ann)
        else:
            self.changed.record(UPDATED, flow_id)
        self.disk.set_annotations(flow_id, ann)
        return ann

    def remove(self, ids: Iterable[str]) -> set[str]:
        """Delete flows from memory and from disk; returns the ids that were found."""
        wanted = list(ids)
        gone = self.memory.remove(wanted)
        with self._lock:
            self._active.difference_update(wanted)
        disk = self.disk
        on_disk = {i for i in wanted if i in disk}
        disk.remove(on_disk)
        return gone | on_disk

    def clear(self) -> int:
        """Forget this session's flows (memory only; the data dir keeps its history)."""
        with self._lock:
            self._active.clear()
        return len(self.memory.clear())

    def close(self) -> None:
        """Write what is queued, close the file store, stop the change feed."""
        if self._writer is not None:
            self._writer.close()
        if self._disk is not None:
            self._disk.close()
        self.changed.close()

"""Background writer: completed flows go to the file store without touching the proxy thread.

Until a flow is written, ``pending(id)`` hands it out, so readers never have to wait for the
writer to see a flow that has completed but is not on disk yet.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from flowbook.model import LLMFlow

if TYPE_CHECKING:
    from flowbook.store.file_store import FileStore

log = logging.getLogger(__name__)


class FlowWriter:
    """Batches completed flows into ``FileStore.append_many`` on its own thread."""

    def __init__(self, file_store: FileStore) -> None:
        self.file_store = file_store
        self._q: queue.SimpleQueue[LLMFlow | None] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._queued = 0
        self._pending: dict[str, LLMFlow] = {}
        self._thread = threading.Thread(target=self._run, name="flowbook-writer", daemon=True)
        self._thread.start()

    def put(self, flow: LLMFlow) -> None:
        """Queue a flow for writing (returns at once)."""
        with self._done:
            self._queued += 1
            self._pending[flow.id] = flow
        self._q.put(flow)

    def pending(self, flow_id: str) -> LLMFlow | None:
        """The queued flow with this id, if it is not on disk yet."""
        with self._done:
            return self._pending.get(flow_id)

    def pending_ids(self) -> list[str]:
        """Ids of the flows queued but not written yet."""
        with self._done:
            return list(self._pending)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued flow is on disk (False if ``timeout`` passed first)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._queued:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < 500:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self.file_store.append_many(batch)
            except Exception:
                log.exception("flowbook could not write %d flows to disk", len(batch))
            with self._done:
                self._queued -= len(batch)
                for flow in batch:
                    if self._pending.get(flow.id) is flow:  # not queued again meanwhile
                        del self._pending[flow.id]
                self._done.notify_all()
            if stop:
                return

    def close(self) -> None:
        self.flush()
        self._q.put(None)
        self._thread.join(5)

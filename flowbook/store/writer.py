"""Background writer: completed flows go to the file store without touching the proxy thread."""

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
        self._thread = threading.Thread(target=self._run, name="flowbook-writer", daemon=True)
        self._thread.start()

    def put(self, flow: LLMFlow) -> None:
        with self._done:
            self._queued += 1
        self._q.put(flow)

    def flush(self, timeout: float = 10.0) -> bool:
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
                self._done.notify_all()
            if stop:
                return

    def close(self) -> None:
        self.flush()
        self._q.put(None)
        self._thread.join(5)

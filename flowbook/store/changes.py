"""The store's change signal: which flows were added, updated or removed, coalesced.

The recorder updates a streaming flow many times a second; a widget wants to redraw a few times a
second at most. ``ChangeFeed`` is a psygnal signal that collects ids as the store records them
(cheap: a dict write under a lock, on whatever thread wrote the store) and emits one
``StoreChange`` per interval from its own dispatcher thread, never from the proxy or recorder
thread. Nothing is collected while nobody is connected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from psygnal import SignalInstance

log = logging.getLogger(__name__)

ADDED, UPDATED, REMOVED = "added", "updated", "removed"


@dataclass(frozen=True)
class StoreChange:
    """What changed since the previous emission. An id is in exactly one of the three sets.

    Iterating yields every id in it (added, updated and removed alike).
    """

    added: frozenset[str] = frozenset()
    updated: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    @property
    def ids(self) -> frozenset[str]:
        """Every id this change mentions."""
        return self.added | self.updated | self.removed

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.added) + len(self.updated) + len(self.removed)

    def __bool__(self) -> bool:
        return len(self) > 0


def _merge(before: str | None, now: str) -> str | None:
    """The kind a listener should see for an id that changed twice within one interval."""
    if before is None:
        return now
    if before == ADDED:
        # Added then removed: the listener never saw it, so it need not hear of it.
        return None if now == REMOVED else ADDED
    if before == REMOVED and now == ADDED:
        return UPDATED  # it existed before this interval and exists after it
    return REMOVED if now == REMOVED else before if before == REMOVED else UPDATED


class ChangeFeed(SignalInstance):
    """A psygnal signal emitting one ``StoreChange`` at most ``max_rate`` times a second.

    ``connect(callback)`` as with any psygnal signal (bound methods are held weakly, so a
    discarded widget does not leak). psygnal stops an emission at the first callback that
    raises; the feed logs it and carries on with the next change, so a listener should catch
    its own errors if others must hear of every change.
    """

    def __init__(self, max_rate: float = 4.0) -> None:
        super().__init__((StoreChange,), name="changed")
        self._interval = 1.0 / max_rate
        self._pending: dict[str, str] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def record(self, kind: str, ids: str | list[str] | set[str] | frozenset[str]) -> None:
        """Note that ``ids`` were ``kind`` (added | updated | removed); emitted later, coalesced."""
        if len(self) == 0:
            return  # nobody listens: keep nothing (the pending dict would only grow)
        many = (ids,) if isinstance(ids, str) else ids
        with self._cond:
            if self._closed:
                return
            pending = self._pending
            for fid in many:
                merged = _merge(pending.get(fid), kind)
                if merged is None:
                    pending.pop(fid, None)
                else:
                    pending[fid] = merged
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flowbook-store-changes", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._pending = self._pending, {}
            change = StoreChange(
                frozenset(i for i, k in batch.items() if k == ADDED),
                frozenset(i for i, k in batch.items() if k == UPDATED),
                frozenset(i for i, k in batch.items() if k == REMOVED),
            )
            try:
                self.emit(change)
            except Exception:  # a broken widget must not stop the feed
                log.exception("store change listener failed")
            time.sleep(self._interval)

    def close(self) -> None:
        """Stop the dispatcher thread (pending changes are dropped) and disconnect everyone."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.disconnect()

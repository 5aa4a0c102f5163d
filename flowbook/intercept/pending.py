"""Paused flows: what the kernel sees of them, and the decision each one waits for.

A :class:`PendingFlow` is created on the proxy's loop *with its future already in place* before
anyone is told the flow paused, so an approval that arrives immediately can never be lost (the
reference registered its channel after broadcasting and cancelled fast approvals). Hold and
release (someone is editing it) freeze and restart the countdown.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flowbook.model import LLMFlow

# After an edit ends, a flow whose countdown had nearly run out still gets this long.
MIN_AFTER_HOLD_S = 5.0


@dataclass
class Decision:
    """How a paused flow ends: ``resume``, ``drop``, ``mock`` or ``timeout``."""

    kind: str
    request_body: dict[str, Any] | None = None
    response_body: dict[str, Any] | None = None
    headers: dict[str, str | None] | None = None
    mock_text: str | None = None
    mock_body: dict[str, Any] | None = None


@dataclass(eq=False)
class PendingFlow:
    """One paused flow. Read it from any thread; it is changed only on the proxy loop.

    ``editable`` is the JSON the user edits: the request body at the request stage; at the
    response stage the response body (for a streamed response, its non-streamed equivalent,
    which is turned back into the provider's stream on resume).
    """

    id: str
    stage: str
    flow: LLMFlow
    reason: str
    timeout: float
    timeout_action: str
    api: str
    client_stream: bool
    editable: dict[str, Any] | None
    headers: dict[str, str]
    paused_at: float = field(default_factory=time.time)
    future: asyncio.Future[Decision] | None = field(default=None, repr=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _deadline: float = 0.0
    _held_remaining: float | None = None

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout

    @property
    def editing(self) -> bool:
        """True while someone holds the flow (the countdown is paused)."""
        return self._held_remaining is not None

    @property
    def remaining_s(self) -> float:
        """Seconds until the flow is released automatically (frozen while editing)."""
        if self._held_remaining is not None:
            return self._held_remaining
        return max(0.0, self._deadline - time.monotonic())

    @property
    def deadline(self) -> float | None:
        """Wall-clock time of the automatic release, or None while editing."""
        if self._held_remaining is not None:
            return None
        return time.time() + self.remaining_s

    def hold(self) -> None:
        if self._held_remaining is None:
            self._held_remaining = self.remaining_s
            self.wake.set()

    def release_hold(self) -> None:
        if self._held_remaining is not None:
            left = max(self._held_remaining, MIN_AFTER_HOLD_S)
            self._held_remaining = None
            self._deadline = time.monotonic() + left
            self.wake.set()

    def decide(self, decision: Decision) -> bool:
        """Settle the flow; False when it was already settled (e.g. timed out just before)."""
        if self.future is None or self.future.done():
            return False
        self.future.set_result(decision)
        self.wake.set()
        return True

    async def wait(self) -> Decision:
        """Wait for a decision or the timeout (which never runs while the flow is held)."""
        assert self.future is not None
        while not self.future.done():
            timeout = None if self.editing else self.remaining_s
            if timeout is not None and timeout <= 0:
                self.decide(Decision("timeout"))
                break
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass
        return self.future.result()

    def summary(self) -> dict[str, Any]:
        """Plain data for widgets and reprs."""
        req = self.flow.request
        return {
            "id": self.id,
            "stage": self.stage,
            "reason": self.reason,
            "provider": self.flow.metadata.provider,
            "api": self.api,
            "model": self.flow.model or "",
            "method": req.method,
            "host": req.host,
            "path": req.path,
            "stream": self.client_stream,
            "timeout": self.timeout,
            "timeout_action": self.timeout_action,
            "remaining_s": round(self.remaining_s, 3),
            "deadline_ms": None if self.deadline is None else int(self.deadline * 1000),
            "editing": self.editing,
            "paused_at": self.paused_at,
            "editable": self.editable,
            "headers": self.headers,
        }

    def __repr__(self) -> str:
        state = "editing" if self.editing else f"{self.remaining_s:.0f}s left"
        return f"<PendingFlow {self.id} {self.stage} {self.flow.model or '?'} {state}>"


class PendingQueue:
    """Paused flows in the order they paused; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, PendingFlow] = {}

    def add(self, p: PendingFlow) -> None:
        with self._lock:
            self._items[p.id] = p

    def remove(self, flow_id: str) -> None:
        with self._lock:
            self._items.pop(flow_id, None)

    def get(self, flow_id: str) -> PendingFlow | None:
        with self._lock:
            return self._items.get(flow_id)

    def list(self) -> list[PendingFlow]:
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

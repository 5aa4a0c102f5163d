"""Where the recorder writes flows: a two-method protocol, so the proxy side never imports pandas.

The in-memory :class:`flowbook.store.memory.FlowStore` satisfies it; so does any object with the
same two methods (unit tests use a plain list-backed sink).
"""

from __future__ import annotations

from typing import Protocol

from flowbook.model import LLMFlow


class FlowSink(Protocol):
    """Receives every flow the recorder builds, and every visible change to it."""

    def put(self, flow: LLMFlow) -> None:
        """Insert or replace ``flow`` (a new flow, or one whose state or content changed)."""

    def touch(self, flow: LLMFlow) -> None:
        """``flow`` (already put) changed in place: refresh what is shown of it."""

"""Incremental framing decoders: bytes in (any chunking), StreamEvents out.

A decoder never sees how the bytes were chunked on the wire: feeding a body whole or split at any
byte boundary yields the same events. ``close()`` flushes what is left and reports a truncated
final frame through ``errors``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from flowbook.model import StreamEvent


class FramingDecoder(ABC):
    """Turns a byte stream into events. ``errors`` collects recoverable framing problems."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    @abstractmethod
    def feed(self, data: bytes, t: float | None = None) -> list[StreamEvent]:
        """Consume ``data`` (arrived at ``t``, epoch seconds) and return the completed events."""

    @abstractmethod
    def close(self, t: float | None = None) -> list[StreamEvent]:
        """End of body: return any last event; note a torn frame in ``errors``."""

    @staticmethod
    def now(t: float | None) -> float:
        return time.time() if t is None else t

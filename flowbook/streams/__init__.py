"""Incremental decoders for streamed response bodies."""

from __future__ import annotations

from flowbook.streams.base import FramingDecoder


def make_decoder(framing: str) -> FramingDecoder:
    """A fresh decoder for a framing name from ``flowbook.providers.base`` (sse, eventstream, …)."""
    if framing == "sse":
        from flowbook.streams.sse import SSEDecoder

        return SSEDecoder()
    if framing == "eventstream":
        from flowbook.streams.eventstream import EventStreamDecoder

        return EventStreamDecoder()
    if framing == "json_array":
        from flowbook.streams.json_array import JSONArrayDecoder

        return JSONArrayDecoder()
    if framing == "ndjson":
        from flowbook.streams.ndjson import NDJSONDecoder

        return NDJSONDecoder()
    raise ValueError(f"no incremental decoder for framing {framing!r}")


__all__ = ["FramingDecoder", "make_decoder"]

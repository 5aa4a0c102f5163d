"""Turn a non-streamed provider body into that provider's stream, for mock replies and for
response-stage edits of streamed responses (the client asked for a stream, so it gets one).

The work is the codec's (:meth:`flowbook.providers.codec.WireCodec.stream_chunks`); this module
keeps the by-API entry point. The content arrives in a few large deltas, which every SDK
accepts; event sequences are described in docs/wire-formats.md.
"""

from __future__ import annotations

from typing import Any

from flowbook.model import LLMRequest
from flowbook.providers.codec import EVENTSTREAM_TYPE, SSE_TYPE
from flowbook.providers.registry import codec_for_api

__all__ = ["EVENTSTREAM_TYPE", "SSE_TYPE", "render_stream"]


def render_stream(api: str, body: dict[str, Any], *, gemini_sse: bool = True) -> tuple[bytes, str]:
    """The stream for ``body`` in ``api``'s format: (bytes, content type).

    ``gemini_sse`` picks Gemini's SSE stream (``alt=sse``) over its JSON-array stream.
    """
    request = LLMRequest(path="?alt=sse" if gemini_sse else "")
    encoded = codec_for_api(api).encode_stream(body, request)
    return encoded.body, encoded.content_type

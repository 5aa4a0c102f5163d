"""Rebuild a response from a whole body: the one place that runs framing → decoder → assembler.

Capture rebuilds incrementally as bytes arrive; everything else that holds a complete body
(interception reading a buffered stream, an import, a test) calls :func:`rebuild_response`.
It never raises for a bad body: what went wrong is in :attr:`Rebuilt.error` and
:attr:`Rebuilt.parse_errors`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from flowbook.model import ErrorType, FlowError, LLMRequest, LLMResponse
from flowbook.providers.base import JSON, Provider, RequestView


@dataclass
class Rebuilt:
    """A rebuilt response, the error it reports (HTTP, in-stream or parse) and framing notes."""

    response: LLMResponse
    error: FlowError | None = None
    parse_errors: list[str] = field(default_factory=list)


def parse_body(body: bytes) -> Any:
    """A body as JSON; None when empty; the bytes themselves when it is not JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body


def rebuild_response(
    provider: Provider,
    api: str,
    request: LLMRequest,
    view: RequestView,
    *,
    status: int,
    headers: dict[str, str],
    body: bytes,
    keep_events: bool = False,
    t: float | None = None,
    into: LLMResponse | None = None,
) -> Rebuilt:
    """Rebuild ``body`` (content-encoding already removed) as the provider's API answers it.

    The provider picks the framing from the request and the content type; a framed body (SSE,
    event stream, NDJSON, JSON array) is decoded and every event fed to the assembler, a plain
    JSON body is fed whole. A status of 400 or more is read as the provider's error body.
    ``into`` is filled instead of a new :class:`LLMResponse` (the capture keeps its own, with
    masked headers and the reason phrase); its status, headers and body are left as they are.
    ``keep_events`` copies every decoded event into ``response.events``, stamped ``t``.
    """
    headers = {k.lower(): v for k, v in headers.items()}
    out = into if into is not None else LLMResponse(status_code=status, headers=headers, body=body)
    result = Rebuilt(out)
    try:
        framing = provider.framing(view, api, headers.get("content-type", ""))
        if framing == JSON or status >= 400:
            parsed = parse_body(body)
            if status >= 400:
                result.error = provider.parse_error(status, parsed, headers)
                return result
            asm = provider.assembler(api, request, out)
            if isinstance(parsed, bytes):
                result.parse_errors.append("response body is not valid JSON")
            if parsed is not None:
                asm.feed_body(parsed)
        else:
            from flowbook.streams import make_decoder

            asm = provider.assembler(api, request, out)
            dec = make_decoder(framing)
            now = time.time() if t is None else t
            for event in [*dec.feed(body, now), *dec.close(now)]:
                if keep_events:
                    out.events.append(event)
                asm.feed(event)
            result.parse_errors += dec.errors
        asm.finish()
        result.error = asm.error
    except Exception as exc:  # a parser bug must not break the caller (traffic, a panel)
        result.parse_errors.append(f"rebuild failed: {exc!r}")
        result.error = result.error or FlowError(ErrorType.PARSE, f"could not rebuild: {exc}")
    return result

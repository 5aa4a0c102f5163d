"""Rebuild an LLMFlow from a recorded HTTP exchange (HAR entry, mitmproxy flow) the way the
recorder does for live traffic: provider detection, ``parse_request``, content decoding, the
provider's framing decoder and assembler, error mapping, usage estimate and cost, masking.

This mirrors :class:`flowbook.capture.recorder.FlowRecorder` step for step (same provider
calls, same order), but for a whole exchange at once instead of chunk by chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flowbook.model import (
    ErrorType,
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    StreamEvent,
)
from flowbook.providers.base import JSON, RequestView


@dataclass
class Exchange:
    """One recorded HTTP exchange. ``response_body_decoded`` says the body has its
    content-encoding removed already (HAR keeps bodies decoded; mitmproxy keeps them raw)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None = None
    reason: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes | None = None
    response_body_decoded: bool = False
    created: float = 0.0
    request_sent: float | None = None
    first_byte: float | None = None
    completed: float | None = None
    error: str | None = None
    client_address: str | None = None
    server_address: str | None = None
    flow_id: str | None = None


def _lower(headers: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.items():
        k = k.lower()
        if k.startswith(":"):  # HTTP/2 pseudo-headers in DevTools exports
            continue
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def request_view(x: Exchange) -> RequestView:
    parts = urlsplit(x.url)
    headers = _lower(x.request_headers)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or headers.get("host", "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return RequestView(method=x.method.upper(), url=x.url, host=host, path=path,
                       headers=headers, body=x.request_body or b"", port=port)  # fmt: skip


def build_flow(x: Exchange, *, mask: bool = True) -> LLMFlow | None:
    """The LLMFlow for an exchange, or None when no provider recognises it as an LLM call."""
    from flowbook.providers import registry
    from flowbook.providers.clients import detect_client

    view = request_view(x)
    found = registry.detect(view)
    if found is None:
        return None
    provider, det = found
    meta = FlowMetadata(
        provider=det.provider,
        api=det.api,
        client=_safe(lambda: detect_client(view.headers)),
        user_agent=view.headers.get("user-agent"),
        client_address=x.client_address,
        server_address=x.server_address,
    )
    times = FlowTimestamps(created=x.created, request_sent=x.request_sent)
    flow = LLMFlow(flow_type=det.api, metadata=meta, timestamps=times)
    if x.flow_id:
        flow.id = x.flow_id
    try:
        req = provider.parse_request(view, det.api)
    except Exception as exc:
        req = LLMRequest()
        flow.metadata.parse_errors.append(f"request: {type(exc).__name__}: {exc}")
    req.method, req.url, req.host, req.path = view.method, view.url, view.host, view.path
    req.body, req.headers = view.body, dict(view.headers)
    flow.request = req
    if x.status is None or (x.response_body is None and x.status == 0):
        flow.error = FlowError(_error_type(x.error), x.error or "no response recorded")
        flow.state = FlowState.ERROR
        flow.timestamps.completed = x.completed
    else:
        _response(flow, provider, det.api, view, x)
    _usage_and_cost(flow)
    if mask:
        _mask(flow)
    return flow


def _error_type(message: str | None) -> ErrorType:
    m = (message or "").lower()
    return ErrorType.TIMEOUT if "timeout" in m or "timed out" in m else ErrorType.NETWORK


def _response(flow: LLMFlow, provider: Any, api: str, view: RequestView, x: Exchange) -> None:
    from flowbook.streams import make_decoder
    from flowbook.streams.content_encoding import ContentDecodeError, ContentDecoder

    assert x.status is not None
    headers = _lower(x.response_headers)
    resp = LLMResponse(status_code=x.status, reason=x.reason, headers=headers)
    flow.response = resp
    t_first = x.first_byte if x.first_byte is not None else x.created
    flow.timestamps.first_byte = t_first
    flow.timestamps.completed = x.completed
    body = x.response_body or b""
    if not x.response_body_decoded and headers.get("content-encoding"):
        try:
            dec = ContentDecoder(headers.get("content-encoding"))
            body = dec.feed(body)
            dec.close()
        except ContentDecodeError as exc:
            flow.metadata.parse_errors.append(str(exc))
    resp.body = body
    asm = None
    try:
        asm = provider.assembler(api, flow.request, resp)
    except Exception as exc:
        flow.metadata.parse_errors.append(f"assembler: {exc}")
    framing = provider.framing(view, api, headers.get("content-type", ""))
    if framing != JSON and x.status < 400 and asm is not None:
        decoder = make_decoder(framing)
        events: list[StreamEvent] = decoder.feed(body, t_first) + decoder.close(t_first)
        flow.metadata.parse_errors.extend(decoder.errors)
        flow.state = FlowState.STREAMING
        for ev in events:
            resp.events.append(ev)
            if asm.feed(ev) and flow.timestamps.first_token is None:
                flow.timestamps.first_token = ev.t
        asm.finish()
        if asm.error is not None:
            flow.error = asm.error
    else:
        parsed: Any = body
        try:
            parsed = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            parsed = body
        if x.status >= 400:
            flow.error = provider.parse_error(x.status, parsed, headers)
        elif asm is not None:
            if isinstance(parsed, bytes | bytearray) and body:
                flow.metadata.parse_errors.append("response body is not valid JSON")
            if parsed is not None and not (isinstance(parsed, bytes) and not parsed):
                asm.feed_body(parsed)
            asm.finish()
            if asm.error is not None:
                flow.error = asm.error
    if x.error and flow.error is None:
        flow.error = FlowError(_error_type(x.error), x.error)
    if flow.metadata.parse_errors and flow.error is None:
        flow.error = FlowError(ErrorType.PARSE, "; ".join(flow.metadata.parse_errors)[:1000])
    failed = flow.error is not None and flow.error.type != ErrorType.PARSE
    flow.state = FlowState.ERROR if failed else FlowState.COMPLETED


def _usage_and_cost(flow: LLMFlow) -> None:
    from flowbook.analysis.pricing import cost_usd
    from flowbook.analysis.tokens import estimate_usage

    resp = flow.response
    if resp is not None and resp.usage is None and resp.status_code < 400:
        resp.usage = _safe(lambda: estimate_usage(flow))
    usage = resp.usage if resp else None
    if usage is not None:
        provider, model, created = flow.metadata.provider, flow.model, flow.timestamps.created
        flow.metadata.cost_usd = _safe(lambda: cost_usd(provider, model, usage, timestamp=created))


def _mask(flow: LLMFlow) -> None:
    """Secrets masked at rest, exactly as the recorder does (headers, URL, raw bodies)."""
    from flowbook.redact import DEFAULT

    req = flow.request
    req.headers = DEFAULT.mask_headers(req.headers)
    req.url, req.path = DEFAULT.mask_url(req.url), DEFAULT.mask_url(req.path)
    if flow.response is not None:
        flow.response.headers = DEFAULT.mask_headers(flow.response.headers)
    for holder in (flow.request, flow.response):
        if holder is not None and holder.body:
            holder.body = DEFAULT.mask_body(holder.body)


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None

"""Everything the detail view shows about one flow, as one JSON-safe dict.

:func:`detail_payload` is the only thing the detail widget (``fb.show``) and the table's split
pane send to the browser for a flow. The browser never sees an :class:`LLMFlow`: it gets plain
strings and numbers, already shortened where a flow can be huge (bodies, stream events, inline
images), with a flag saying so. Secrets are masked at rest; headers and bodies are masked again
here (masking is idempotent) so a flow loaded from an unmasked import cannot leak a key to the
screen. Nothing here is HTML: the browser puts text into the page as text, and Markdown goes
through the sanitiser in ``widgets/src/shared/markdown.js``.
"""

from __future__ import annotations

import json
from typing import Any

from flowbook.model import LLMFlow, Message, Part, StreamEvent
from flowbook.redact import DEFAULT as REDACT
from flowbook.ui.context_window import context_fill
from flowbook.ui.detail_stream import stream_section
from flowbook.ui.detail_text import body_view, pretty_json, short_text

PAYLOAD_VERSION = 1
PART_TEXT_LIMIT = 100_000  # characters of one message part
RESPONSE_TEXT_LIMIT = 400_000  # the browser renders Markdown only below ~150k anyway
IMAGE_DATA_LIMIT = 2_000_000  # base64 characters of one inline image kept as a thumbnail


def _pairs(headers: dict[str, str]) -> list[list[str]]:
    """Headers as sorted ``[name, value]`` lists (JSON has no tuples)."""
    return [[k, v] for k, v in sorted(headers.items())]


def _image(part: Part) -> dict[str, Any]:
    """An image part: a data URL the browser may show, or a blocked remote URL as text."""
    out: dict[str, Any] = {"type": "image", "media_type": part.media_type}
    data_url: str | None = None
    if part.data:
        data_url = f"data:{part.media_type or 'image/png'};base64,{part.data}"
    elif part.url and part.url.startswith("data:"):
        data_url = part.url
    if data_url is not None and len(data_url) <= IMAGE_DATA_LIMIT:
        out["data_url"] = data_url
    elif data_url is not None:
        out["omitted"] = f"inline image of {len(data_url):,} characters not shown"
    if part.url and not part.url.startswith("data:"):
        out["remote_url"] = part.url  # shown as text, never fetched
    return out


def _part(part: Part) -> dict[str, Any]:
    kind = part.type
    if kind in ("text", "thinking"):
        text, cut = short_text(part.text or "", PART_TEXT_LIMIT)
        out: dict[str, Any] = {"type": kind, "text": text, "truncated": cut}
        if part.redacted:
            out["redacted"] = True
        return out
    if kind == "tool_call":
        args, cut = short_text(pretty_json(part.arguments), PART_TEXT_LIMIT)
        return {"type": kind, "id": part.id, "name": part.name, "arguments": args, "truncated": cut}
    if kind == "tool_result":
        content, cut = short_text(pretty_json(part.content), PART_TEXT_LIMIT)
        return {
            "type": kind,
            "tool_call_id": part.tool_call_id,
            "name": part.name,
            "content": content,
            "is_error": part.is_error,
            "truncated": cut,
        }
    if kind == "image":
        return _image(part)
    text, cut = short_text(
        part.plain_text() or json.dumps(part.to_dict(), default=str), PART_TEXT_LIMIT
    )
    return {"type": kind, "text": text, "truncated": cut, "media_type": part.media_type}


def _turn(message: Message) -> dict[str, Any]:
    return {"role": message.role, "name": message.name, "parts": [_part(p) for p in message.parts]}


def _conversation(flow: LLMFlow) -> dict[str, Any]:
    req = flow.request
    turns: list[dict[str, Any]] = []
    if req.system:
        text, cut = short_text(req.system, PART_TEXT_LIMIT)
        turns.append(
            {
                "role": "system",
                "name": None,
                "parts": [{"type": "text", "text": text, "truncated": cut}],
            }
        )
    turns += [_turn(m) for m in req.messages]
    tools = [
        {
            "name": t.name,
            "description": t.description or "",
            "type": t.type,
            "parameters": short_text(pretty_json(t.parameters), PART_TEXT_LIMIT)[0],
        }
        for t in req.tools
    ]
    return {"turns": turns, "tools": tools, "params": pretty_json(req.params)}


def _response(flow: LLMFlow) -> dict[str, Any] | None:
    resp = flow.response
    if resp is None:
        return None
    text, cut = short_text(resp.text, RESPONSE_TEXT_LIMIT)
    thinking, _ = short_text(resp.thinking, RESPONSE_TEXT_LIMIT)
    return {
        "text": text,
        "truncated": cut,
        "thinking": thinking,
        "refusal": resp.refusal,
        "tool_calls": [
            {
                "id": c.id,
                "name": c.name,
                "arguments": short_text(
                    pretty_json(c.arguments if c.arguments is not None else c.arguments_raw),
                    PART_TEXT_LIMIT,
                )[0],
            }
            for c in resp.tool_calls
        ],
        "stop_reason": resp.stop_reason,
        "model": resp.model,
        "response_id": resp.response_id,
    }


def _ms(t: float | None, start: float) -> float | None:
    return None if t is None else round(max(0.0, (t - start) * 1000.0), 1)


def _timing(flow: LLMFlow, last_token: float | None) -> dict[str, Any]:
    ts = flow.timestamps
    start = ts.request_sent or ts.created
    first_token = ts.first_token
    if last_token is None and first_token is not None:
        last_token = ts.completed if flow.response and not flow.response.events else first_token
    usage = flow.usage
    tps = None
    # Below ~50 ms the span is mostly stamping granularity: a rate from it would be noise.
    if usage and usage.output and first_token and last_token and last_token - first_token >= 0.05:
        tps = round(usage.output / (last_token - first_token), 1)
    return {
        "created": ts.created,
        "sent_ms": 0.0,
        "first_byte_ms": _ms(ts.first_byte, start),
        "first_token_ms": _ms(first_token, start),
        "last_token_ms": _ms(last_token, start),
        "completed_ms": _ms(ts.completed, start),
        "latency_ms": ts.latency_ms,
        "ttft_ms": ts.ttft_ms,
        "output_tokens_per_s": tps,
    }


def _cost(flow: LLMFlow) -> dict[str, Any]:
    """The price and how it was reached, or why there is none (never a made-up $0)."""
    from flowbook.analysis.pricing import UNPRICED_PROVIDERS, kiro_credits, resolve

    usd = flow.metadata.cost_usd
    out: dict[str, Any] = {"usd": usd, "how": "", "rates": None, "credits": kiro_credits(flow)}
    provider, model, usage = flow.provider, flow.model, flow.usage
    if provider.lower() in UNPRICED_PROVIDERS:
        out["how"] = f"{provider} calls have no USD token price"
        return out
    if not model:
        out["how"] = "no model name, so no price"
        return out
    target = resolve(provider, model)
    if target is None:
        out["how"] = f"genai-prices has no price for {model!r}"
        return out
    try:
        from genai_prices import Usage as GPUsage
        from genai_prices import calc_price

        calc = calc_price(GPUsage(input_tokens=1), target[1], provider_id=target[0])
        out["rates"] = str(calc.model_price)
        priced_as = f"{calc.provider.id}/{calc.model.id}"
    except (ImportError, LookupError, ValueError):
        priced_as = target[1]
    source = usage.source if usage else "missing"
    if usd is None:
        out["how"] = f"priced as {priced_as}, but usage is {source}"
    else:
        out["how"] = f"genai-prices rates for {priced_as} × {source} usage"
    return out


def _overview(flow: LLMFlow, last_token: float | None) -> dict[str, Any]:
    req, resp, err, meta = flow.request, flow.response, flow.error, flow.metadata
    usage = flow.usage
    return {
        "method": req.method,
        "url": REDACT.mask_url(req.url or f"{req.host}{req.path}"),
        "status": resp.status_code if resp and resp.status_code else None,
        "reason": resp.reason if resp else "",
        "client": meta.client,
        "user_agent": meta.user_agent,
        "session": meta.session,
        "stop_reason": resp.stop_reason if resp else None,
        "error": None
        if err is None
        else {
            "type": str(err.type),
            "message": REDACT.mask_text(err.message),
            "status": err.status,
            "retryable": err.retryable,
        },
        "parse_errors": list(meta.parse_errors),
        "timing": _timing(flow, last_token),
        "usage": usage.to_dict() if usage else None,
        "usage_source": usage.source if usage else "missing",
        "cost": _cost(flow),
        "context": context_fill(flow),
        "request_bytes": req.size,
        "response_bytes": resp.size if resp else None,
    }


def _raw(flow: LLMFlow) -> dict[str, Any]:
    req, resp = flow.request, flow.response
    out: dict[str, Any] = {
        "request": {
            "line": f"{req.method} {REDACT.mask_url(req.url or req.path)}",
            "headers": _pairs(REDACT.mask_headers(req.headers)),
            "body": body_view(req.body, req.headers.get("content-type", "")),
        },
        "response": None,
    }
    if resp is not None:
        out["response"] = {
            "line": f"{resp.status_code} {resp.reason}".strip(),
            "headers": _pairs(REDACT.mask_headers(resp.headers)),
            "body": body_view(resp.body, resp.headers.get("content-type", "")),
        }
    return out


def _original_body(original: dict[str, Any] | None) -> dict[str, Any] | None:
    """An original request/response kept by the interceptor (``LLMRequest.to_dict`` form)."""
    if not original:
        return None
    body = original.get("body")
    raw = body.encode("utf-8") if isinstance(body, str) else None
    if isinstance(body, dict) and "base64" in body:
        import base64

        raw = base64.b64decode(body["base64"])
    headers = {str(k): str(v) for k, v in (original.get("headers") or {}).items()}
    return {
        "headers": _pairs(REDACT.mask_headers(headers)),
        "body": body_view(raw, headers.get("content-type", "application/json")),
    }


def _intercept(flow: LLMFlow) -> dict[str, Any] | None:
    meta = flow.metadata
    if not (
        meta.intercepted or meta.rules_applied or meta.original_request or meta.original_response
    ):
        return None
    out: dict[str, Any] = {
        "events": json.loads(json.dumps(REDACT.mask_obj(meta.intercepted), default=str)),
        "rules_applied": list(meta.rules_applied),
        "request": None,
        "response": None,
    }
    orig_req = _original_body(meta.original_request)
    if orig_req is not None:
        req = flow.request
        out["request"] = {
            "original": orig_req,
            "modified": {
                "headers": _pairs(REDACT.mask_headers(req.headers)),
                "body": body_view(req.body, req.headers.get("content-type", "")),
            },
        }
    orig_resp = _original_body(meta.original_response)
    if orig_resp is not None and flow.response is not None:
        resp = flow.response
        out["response"] = {
            "original": orig_resp,
            "modified": {
                "headers": _pairs(REDACT.mask_headers(resp.headers)),
                "body": body_view(resp.body, resp.headers.get("content-type", "")),
            },
        }
    return out


def code_generator() -> Any:
    """``flowbook.io.codegen.generate`` when this build has it, else None (no Code tab)."""
    try:
        from flowbook.io.codegen import generate
    except ImportError:
        return None
    return generate


def _code_formats() -> list[str]:
    try:
        from flowbook.io.codegen import FORMATS
    except ImportError:
        return []
    return [*FORMATS, "python-sdk"]


def detail_payload(flow: LLMFlow) -> dict[str, Any]:
    """The detail view's data for ``flow``: overview, conversation, response, stream, raw,
    notes and (for an intercepted flow) original vs modified. JSON-safe; bounded in size."""
    events: list[StreamEvent] = flow.response.events if flow.response else []
    start = flow.timestamps.request_sent or flow.timestamps.created
    stream = stream_section(events, start)
    ann = flow.annotations
    return {
        "version": PAYLOAD_VERSION,
        "id": flow.id,
        "state": str(flow.state),
        "provider": flow.provider,
        "api": flow.api,
        "model": flow.model,
        "stream": flow.request.stream,
        "overview": _overview(flow, stream.pop("last_token_t")),
        "conversation": _conversation(flow),
        "response": _response(flow),
        "stream_events": stream,
        "raw": _raw(flow),
        "notes": {
            "bookmarked": ann.bookmarked,
            "tags": list(ann.tags),
            "comment": ann.comment or "",
            "marker": ann.marker,
        },
        "intercept": _intercept(flow),
        "code_formats": _code_formats(),
    }

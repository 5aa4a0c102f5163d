"""Pieces shared by the OpenAI Chat Completions and Responses parsers.

Error classification (docs/wire-formats.md §1.6, §2.5, §8), usage mapping onto flowbook's one
meaning (§10), and request-side helpers for message content parts and tools.
"""

from __future__ import annotations

import json
from typing import Any

from flowbook.model import ErrorType, FlowError, Part, Tool, Usage
from flowbook.providers.base import error_type_for_status

# OpenAI's `error.code` / `error.type` strings (and the ones compatible servers copy) mapped to
# flowbook's vocabulary. Codes are checked before types because OpenAI pairs specific codes
# (invalid_api_key, model_not_found) with the generic type invalid_request_error.
_CODE_TYPES: dict[str, ErrorType] = {
    "invalid_api_key": ErrorType.AUTHENTICATION,
    "invalid_authentication": ErrorType.AUTHENTICATION,
    "authentication_error": ErrorType.AUTHENTICATION,
    "unauthorized": ErrorType.AUTHENTICATION,
    "invalid_organization": ErrorType.AUTHENTICATION,
    "permission_denied": ErrorType.AUTHENTICATION,
    "permission_error": ErrorType.AUTHENTICATION,
    "insufficient_permissions": ErrorType.AUTHENTICATION,
    "unsupported_country_region_territory": ErrorType.AUTHENTICATION,
    "rate_limit_exceeded": ErrorType.RATE_LIMIT,
    "rate_limit_error": ErrorType.RATE_LIMIT,
    "insufficient_quota": ErrorType.RATE_LIMIT,
    "too_many_requests": ErrorType.RATE_LIMIT,
    "model_not_found": ErrorType.MODEL_UNAVAILABLE,
    "model_not_available": ErrorType.MODEL_UNAVAILABLE,
    "engine_not_found": ErrorType.MODEL_UNAVAILABLE,
    "deploymentnotfound": ErrorType.MODEL_UNAVAILABLE,
    "not_found_error": ErrorType.MODEL_UNAVAILABLE,
    "content_filter": ErrorType.CONTENT_FILTER,
    "content_policy_violation": ErrorType.CONTENT_FILTER,
    "responsibleaipolicyviolation": ErrorType.CONTENT_FILTER,
    "moderation_blocked": ErrorType.CONTENT_FILTER,
    "invalid_prompt": ErrorType.CONTENT_FILTER,
    "context_length_exceeded": ErrorType.BAD_REQUEST,
    "string_above_max_length": ErrorType.BAD_REQUEST,
    "invalid_value": ErrorType.BAD_REQUEST,
    "invalid_request_error": ErrorType.BAD_REQUEST,
    "server_error": ErrorType.SERVER_ERROR,
    "internal_error": ErrorType.SERVER_ERROR,
    "api_error": ErrorType.SERVER_ERROR,
    "overloaded": ErrorType.SERVER_ERROR,
    "overloaded_error": ErrorType.SERVER_ERROR,
    "service_unavailable": ErrorType.SERVER_ERROR,
    "timeout": ErrorType.TIMEOUT,
    "request_timeout": ErrorType.TIMEOUT,
}
# Quota exhaustion looks like a rate limit but waiting does not help.
_NOT_RETRYABLE = frozenset({"insufficient_quota"})


def classify_error(
    code: Any, err_type: Any, status: int | None, message: str = ""
) -> tuple[ErrorType, bool | None]:
    """flowbook's ErrorType (and a retryable override) for an OpenAI-style error."""
    key = str(code).lower() if isinstance(code, str) else None
    if key in _CODE_TYPES:
        return _CODE_TYPES[key], (False if key in _NOT_RETRYABLE else None)
    # Numeric codes (OpenRouter puts the HTTP-like status in error.code, even under a 200).
    numeric = code if isinstance(code, int) and not isinstance(code, bool) else None
    if numeric is None and isinstance(code, str) and code.isdigit():
        numeric = int(code)
    if numeric is not None and numeric >= 400:
        if numeric == 402:  # OpenRouter: out of credits
            return ErrorType.RATE_LIMIT, False
        if numeric == 403 and "moderat" in message.lower():
            return ErrorType.CONTENT_FILTER, None
        return error_type_for_status(numeric), None
    tkey = str(err_type).lower() if isinstance(err_type, str) else None
    # The generic invalid_request_error says less than a status code does (404 → model).
    if tkey in _CODE_TYPES and not (tkey == "invalid_request_error" and status):
        return _CODE_TYPES[tkey], None
    if status is not None:
        return error_type_for_status(status), None
    return (_CODE_TYPES.get(tkey or "") or ErrorType.OTHER), None


def openai_error(status: int | None, body: Any, *, default_message: str = "") -> FlowError:
    """A FlowError from an OpenAI-style error body (HTTP error or in-stream error object).

    Accepts ``{"error": {message, type, code, param}}``, ``{"error": "text"}``, a bare
    ``{message, code}`` object (Responses ``error`` event) or raw bytes.
    """
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            etype = error_type_for_status(status)
            msg = text[:500] or default_message or f"HTTP {status}"
            return FlowError(type=etype, message=msg, status=status, raw=text[:2000])
    err: Any = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, str):
        err = {"message": err}
    if not isinstance(err, dict):
        err = {}
    message = str(err.get("message") or default_message or f"HTTP {status}")
    code, etype = err.get("code"), err.get("type")
    kind, retryable = classify_error(code, etype, status, message)
    return FlowError(
        type=kind,
        message=message,
        status=status,
        retryable=retryable,
        raw=body,
        code=str(code if code is not None else etype) if (code or etype) else None,
    )


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty one (wire data is never trusted)."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def chat_usage(u: dict[str, Any]) -> Usage:
    """Chat Completions usage (OpenAI, DeepSeek, OpenRouter, vLLM …) → Usage."""
    ptd = u.get("prompt_tokens_details") or {}
    ctd = u.get("completion_tokens_details") or {}
    prompt = _int(u.get("prompt_tokens"))
    cache_read = _int(ptd.get("cached_tokens"))
    hit, miss = u.get("prompt_cache_hit_tokens"), u.get("prompt_cache_miss_tokens")
    if hit is not None or miss is not None:  # DeepSeek
        cache_read = _int(hit)
        prompt = prompt or _int(hit) + _int(miss)
    output = _int(u.get("completion_tokens"))
    return Usage(
        input=prompt,
        output=output,
        cache_read=cache_read,
        cache_write=_int(ptd.get("cache_write_tokens")),
        reasoning=_int(ctd.get("reasoning_tokens")),
        total=_int(u.get("total_tokens")) or prompt + output,
        source="reported",
        details=dict(u),
    )


def responses_usage(u: dict[str, Any]) -> Usage:
    """Responses API usage → Usage."""
    itd = u.get("input_tokens_details") or {}
    otd = u.get("output_tokens_details") or {}
    inp, out = _int(u.get("input_tokens")), _int(u.get("output_tokens"))
    return Usage(
        input=inp,
        output=out,
        cache_read=_int(itd.get("cached_tokens")),
        cache_write=_int(itd.get("cache_write_tokens")),
        reasoning=_int(otd.get("reasoning_tokens")),
        total=_int(u.get("total_tokens")) or inp + out,
        source="reported",
        details=dict(u),
    )


def content_parts(content: Any) -> list[Part]:
    """Message content (a string or a list of typed parts, Chat or Responses) → Parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Part(type="text", text=content)]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return [Part(type="other", content=content)]
    parts: list[Part] = []
    for c in content:
        if isinstance(c, str):
            parts.append(Part(type="text", text=c))
            continue
        if not isinstance(c, dict):
            continue
        kind = c.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(Part(type="text", text=c.get("text") or ""))
        elif kind == "refusal":
            parts.append(Part(type="text", text=c.get("refusal") or ""))
        elif kind in ("image_url", "input_image"):
            parts.append(_image_part(c))
        elif kind in ("file", "input_file"):
            f = as_dict(c.get("file")) or c
            parts.append(
                Part(
                    type="document",
                    text=f.get("filename"),
                    url=f.get("file_url") or f.get("file_id"),
                    data=f.get("file_data"),
                )
            )
        else:
            parts.append(Part(type="other", content=c))
    return parts


def _image_part(c: dict[str, Any]) -> Part:
    url = c.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        # data:image/png;base64,AAAA — keep the payload as data, not as a URL.
        head, _, payload = url.partition(",")
        media = head[5:].split(";")[0] or None
        return Part(type="image", media_type=media, data=payload)
    return Part(type="image", url=url or c.get("file_id"))


def parse_tools(tools: Any) -> list[Tool]:
    """Chat (``{type:function, function:{…}}``) and Responses (flat) tools; built-ins by type."""
    out: list[Tool] = []
    for t in tools if isinstance(tools, list) else []:
        if not isinstance(t, dict):
            continue
        kind = str(t.get("type") or "function")
        fn = as_dict(t.get("function")) or t
        name = fn.get("name") or t.get("server_label") or kind
        params = fn.get("parameters", fn.get("input_schema"))
        out.append(
            Tool(name=str(name), description=fn.get("description"), parameters=params, type=kind)
        )
    return out

"""Provider-format bodies the interceptor writes itself: mock replies, error replies for dropped
or blocked flows, and the editable non-streamed form of a (possibly streamed) response.

Every body is keyed by the flow's ``api`` (``chat``, ``responses``, ``messages``,
``generate_content``, ``kiro``; anything else is answered in OpenAI chat format). Shapes follow
docs/wire-formats.md; :mod:`flowbook.intercept.render_stream` turns a body into the matching
stream. The fake upstream's formatters are driven by its scripted "model", so they do not fit
"render this given content"; these functions do only that.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flowbook.model import LLMFlow, LLMResponse

KIRO_ERROR_TYPE = "application/x-amz-json-1.0"


def api_of(flow: LLMFlow) -> str:
    """The wire format to answer in; unknown APIs get OpenAI chat (the common denominator)."""
    api = flow.metadata.api
    if api in ("chat", "responses", "messages", "generate_content", "kiro"):
        return api
    return "chat"


def gemini_uses_sse(flow: LLMFlow) -> bool:
    """Gemini streams SSE with ``alt=sse`` and a growing JSON array without it."""
    return "alt=sse" in (flow.request.url or flow.request.path)


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def error_body(api: str, status: int, message: str, *, code: str = "flowbook_intercept") -> Any:
    """The provider's own HTTP error envelope, so its SDK raises a readable error."""
    if api == "messages":
        etype = "permission_error" if status == 403 else "invalid_request_error"
        return {"type": "error", "error": {"type": etype, "message": message}}
    if api == "generate_content":
        status_name = "PERMISSION_DENIED" if status == 403 else "CANCELLED"
        return {"error": {"code": status, "message": message, "status": status_name}}
    if api == "kiro":
        return {"__type": "com.amazon.kiro.runtimeservice#ValidationException", "message": message}
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def error_reply(api: str, status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an error reply. ``x-should-retry: false`` stops SDK retries."""
    ctype = KIRO_ERROR_TYPE if api == "kiro" else "application/json"
    headers = {"content-type": ctype, "x-should-retry": "false", "x-flowbook-intercept": "1"}
    return status, headers, json.dumps(error_body(api, status, message)).encode()


def body_from_parts(
    api: str,
    *,
    text: str = "",
    model: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    thinking: str = "",
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A non-streamed body in ``api``'s format. ``tool_calls``: [{id, name, arguments(dict)}]."""
    calls = tool_calls or []
    u = usage or {"input": 0, "output": 0}
    model = model or "flowbook-mock"
    if api == "messages":
        content: list[dict[str, Any]] = []
        if thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": ""})
        if text or not calls:
            content.append({"type": "text", "text": text})
        for c in calls:
            cid = c.get("id") or _id("toolu_")
            content.append(
                {
                    "type": "tool_use",
                    "id": cid,
                    "name": c["name"],
                    "input": c.get("arguments") or {},
                }
            )
        return {
            "id": _id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason or ("tool_use" if calls else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": u["input"], "output_tokens": u["output"]},
        }
    if api == "responses":
        output: list[dict[str, Any]] = []
        if text or not calls:
            part = {"type": "output_text", "text": text, "annotations": []}
            output.append(
                {
                    "id": _id("msg_"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        for c in calls:
            output.append(
                {
                    "id": _id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": c.get("id") or _id("call_"),
                    "name": c["name"],
                    "arguments": json.dumps(c.get("arguments") or {}),
                }
            )
        return {
            "id": _id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": output,
            "usage": {
                "input_tokens": u["input"],
                "output_tokens": u["output"],
                "total_tokens": u["input"] + u["output"],
            },
        }
    if api == "generate_content":
        parts: list[dict[str, Any]] = []
        if thinking:
            parts.append({"text": thinking, "thought": True})
        if text or not calls:
            parts.append({"text": text})
        parts += [
            {"functionCall": {"name": c["name"], "args": c.get("arguments") or {}}} for c in calls
        ]
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": stop_reason or "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": u["input"],
                "candidatesTokenCount": u["output"],
                "totalTokenCount": u["input"] + u["output"],
            },
            "modelVersion": model,
        }
    if api == "kiro":
        # Kiro has no non-streamed form; this is the editable shape render_stream understands.
        return {
            "content": text,
            "toolUses": [
                {
                    "toolUseId": c.get("id") or _id("tooluse_"),
                    "name": c["name"],
                    "input": c.get("arguments") or {},
                }
                for c in calls
            ],
        }
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [
            {
                "id": c.get("id") or _id("call_"),
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments") or {})},
            }
            for c in calls
        ]
    return {
        "id": _id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": stop_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": u["input"],
            "completion_tokens": u["output"],
            "total_tokens": u["input"] + u["output"],
        },
    }


def body_from_response(api: str, response: LLMResponse, model: str | None) -> dict[str, Any]:
    """The non-streamed equivalent of a reconstructed response: what the panel edits."""
    usage = None
    if response.usage is not None:
        usage = {"input": response.usage.input, "output": response.usage.output}
    calls = [
        {
            "id": c.id,
            "name": c.name,
            "arguments": c.arguments if isinstance(c.arguments, dict) else {},
        }
        for c in response.tool_calls
    ]
    return body_from_parts(
        api,
        text=response.text,
        model=response.model or model,
        tool_calls=calls,
        thinking=response.thinking,
        stop_reason=response.stop_reason,
        usage=usage,
    )

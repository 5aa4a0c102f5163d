"""Turn a non-streamed provider body into that provider's stream, for mock replies and for
response-stage edits of streamed responses (the client asked for a stream, so it gets one).

Each function takes the body :mod:`flowbook.intercept.render` builds (or the user edited) and
returns the whole stream as bytes; the content arrives in a few large deltas, which every SDK
accepts. Event sequences follow docs/wire-formats.md §1.4, §2.3, §3.4, §4.4 and §5/§6.3.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

SSE_TYPE = "text/event-stream; charset=utf-8"
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {payload}\n\n".encode()


def render_stream(api: str, body: dict[str, Any], *, gemini_sse: bool = True) -> tuple[bytes, str]:
    """The stream for ``body`` in ``api``'s format: (bytes, content type)."""
    if api == "messages":
        return _anthropic(body), SSE_TYPE
    if api == "responses":
        return _responses(body), SSE_TYPE
    if api == "generate_content":
        if gemini_sse:
            return b"data: " + json.dumps(body).encode() + b"\r\n\r\n", SSE_TYPE
        return b"[" + json.dumps(body, indent=2).encode() + b"\n]", "application/json"
    if api == "kiro":
        return _kiro(body), EVENTSTREAM_TYPE
    return _chat(body), SSE_TYPE


def _chat(body: dict[str, Any]) -> bytes:
    base = {
        "id": body.get("id", "chatcmpl-flowbook"),
        "object": "chat.completion.chunk",
        "created": body.get("created", 0),
        "model": body.get("model", ""),
    }
    choice = (body.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    first: dict[str, Any] = {"role": "assistant", "content": ""}
    out = [_sse({**base, "choices": [{"index": 0, "delta": first, "finish_reason": None}]})]
    if msg.get("content"):
        delta = {"content": msg["content"]}
        out.append(_sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    for i, call in enumerate(msg.get("tool_calls") or []):
        fn = call.get("function") or {}
        frag = {
            "index": i,
            "id": call.get("id"),
            "type": "function",
            "function": {"name": fn.get("name"), "arguments": fn.get("arguments", "")},
        }
        delta = {"tool_calls": [frag]}
        out.append(_sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    finish = choice.get("finish_reason") or "stop"
    out.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    if body.get("usage"):
        out.append(_sse({**base, "choices": [], "usage": body["usage"]}))
    out.append(_sse("[DONE]"))
    return b"".join(out)


def _anthropic(body: dict[str, Any]) -> bytes:
    usage = dict(body.get("usage") or {"input_tokens": 0, "output_tokens": 0})
    start = {k: v for k, v in body.items() if k not in ("content", "usage")}
    start.update(
        content=[], stop_reason=None, stop_sequence=None, usage={**usage, "output_tokens": 1}
    )
    out = [_sse({"type": "message_start", "message": start}, "message_start")]
    for i, block in enumerate(body.get("content") or []):
        kind = block.get("type")
        first: dict[str, Any]
        delta: dict[str, Any] | None
        if kind == "text":
            first, delta = (
                {"type": "text", "text": ""},
                {"type": "text_delta", "text": block.get("text", "")},
            )
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        elif kind == "tool_use":
            first = {
                "type": "tool_use",
                "id": block.get("id"),
                "name": block.get("name"),
                "input": {},
            }
            delta = {
                "type": "input_json_delta",
                "partial_json": json.dumps(block.get("input") or {}),
            }
        else:  # other block types arrive whole in their start event
            first, delta = block, None
        out.append(
            _sse(
                {"type": "content_block_start", "index": i, "content_block": first},
                "content_block_start",
            )
        )
        if delta is not None:
            out.append(
                _sse(
                    {"type": "content_block_delta", "index": i, "delta": delta},
                    "content_block_delta",
                )
            )
        out.append(_sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    md = {
        "type": "message_delta",
        "delta": {
            "stop_reason": body.get("stop_reason") or "end_turn",
            "stop_sequence": body.get("stop_sequence"),
        },
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    out.append(_sse(md, "message_delta"))
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return b"".join(out)


def _responses(body: dict[str, Any]) -> bytes:
    seq = 0
    out: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        nonlocal seq
        out.append(_sse({"type": kind, **fields, "sequence_number": seq}, kind))
        seq += 1

    emit(
        "response.created", response={**body, "status": "in_progress", "output": [], "usage": None}
    )
    emit(
        "response.in_progress",
        response={**body, "status": "in_progress", "output": [], "usage": None},
    )
    for oi, item in enumerate(body.get("output") or []):
        iid = item.get("id", f"item_{oi}")
        if item.get("type") == "message":
            emit(
                "response.output_item.added",
                output_index=oi,
                item={**item, "status": "in_progress", "content": []},
            )
            for ci, part in enumerate(item.get("content") or []):
                text = part.get("text", "")
                common = {"item_id": iid, "output_index": oi, "content_index": ci}
                emit("response.content_part.added", **common, part={**part, "text": ""})
                emit("response.output_text.delta", **common, delta=text, logprobs=[])
                emit("response.output_text.done", **common, text=text, logprobs=[])
                emit("response.content_part.done", **common, part=part)
        elif item.get("type") == "function_call":
            args = item.get("arguments", "")
            emit(
                "response.output_item.added",
                output_index=oi,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            emit("response.function_call_arguments.delta", item_id=iid, output_index=oi, delta=args)
            emit(
                "response.function_call_arguments.done",
                item_id=iid,
                output_index=oi,
                arguments=args,
            )
        else:
            emit("response.output_item.added", output_index=oi, item=item)
        emit("response.output_item.done", output_index=oi, item=item)
    emit("response.completed", response={**body, "status": body.get("status") or "completed"})
    return b"".join(out)


def eventstream_frame(event_type: str, payload: Any) -> bytes:
    """One AWS event-stream message (docs/wire-formats.md §5): prelude, headers, payload, CRCs."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        n, v = name.encode(), value.encode()
        headers += struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v
    data = json.dumps(payload).encode()
    total = 12 + len(headers) + len(data) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + headers + data
    return message + struct.pack("!I", zlib.crc32(message))


def _kiro(body: dict[str, Any]) -> bytes:
    out = [eventstream_frame("initial-response", {"conversationId": ""})]
    if body.get("content"):
        out.append(eventstream_frame("assistantResponseEvent", {"content": body["content"]}))
    for use in body.get("toolUses") or []:
        ids = {"name": use.get("name"), "toolUseId": use.get("toolUseId")}
        out.append(
            eventstream_frame("toolUseEvent", {**ids, "input": json.dumps(use.get("input"))})
        )
        out.append(eventstream_frame("toolUseEvent", {**ids, "stop": True}))
    return b"".join(out)

"""Anthropic Messages as a codec: neutral model → request, response and stream bodies.

The inverse of :mod:`flowbook.providers.anthropic` and its assembler (docs/wire-formats.md §3).
The body is a ``message`` with ``thinking``, ``text`` and ``tool_use`` content blocks; the stream
is ``message_start`` (usage with ``output_tokens: 1``), per block ``content_block_start`` /
``content_block_delta`` / ``content_block_stop``, then ``message_delta`` (stop reason, output
tokens) and ``message_stop``, each an SSE event named after its ``type``. Bedrock's
InvokeModel wraps the same events in event-stream frames (:mod:`flowbook.providers.bedrock_encode`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message, Part, Tool
from flowbook.providers.codec import WireCodec, call_dicts, check_roles, dumps, new_id
from flowbook.streams.sse import encode_sse


def _block(p: Part) -> dict[str, Any] | None:
    if p.type == "text":
        return {"type": "text", "text": p.text or ""}
    if p.type in ("image", "document"):
        if p.data is not None:
            source = {"type": "base64", "media_type": p.media_type, "data": p.data}
        else:
            source = {"type": "url", "url": p.url}
        block: dict[str, Any] = {"type": p.type, "source": source}
        if p.type == "document" and p.text:
            block["title"] = p.text
        return block
    if p.type == "tool_call":
        return {"type": "tool_use", "id": p.id, "name": p.name, "input": p.arguments or {}}
    if p.type == "tool_result":
        block = {"type": "tool_result", "tool_use_id": p.tool_call_id, "content": p.content}
        if p.is_error:
            block["is_error"] = True
        return block
    if p.type == "thinking":
        if p.redacted:
            return {"type": "redacted_thinking", "data": p.data}
        return {"type": "thinking", "thinking": p.text or "", "signature": p.signature or ""}
    return p.content if isinstance(p.content, dict) else None


def anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages → Messages ``messages`` (tool results travel in user turns)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks = [b for b in (_block(p) for p in m.parts) if b is not None]
        role = "user" if m.role == "tool" else m.role
        content: Any = blocks
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            content = blocks[0]["text"]
        out.append({"role": role, "content": content})
    return out


def anthropic_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in tools:
        if t.type in ("function", "custom"):
            d: dict[str, Any] = {"name": t.name}
            if t.description is not None:
                d["description"] = t.description
            d["input_schema"] = t.parameters if t.parameters is not None else {"type": "object"}
        else:  # a server tool: its settings were kept as parameters
            d = {"type": t.type, "name": t.name, **(t.parameters or {})}
        out.append(d)
    return out


def messages_body(request: LLMRequest) -> dict[str, Any]:
    """The Messages request body as a dict (Bedrock InvokeModel sends it without the model)."""
    body: dict[str, Any] = {"model": request.model}
    if request.system:
        body["system"] = request.system
    body["messages"] = anthropic_messages(request.messages)
    if request.tools:
        body["tools"] = anthropic_tools(request.tools)
    body.update(request.params)
    return body


class MessagesCodec(WireCodec):
    """``/v1/messages`` (Anthropic, Vertex ``rawPredict``, DeepSeek's and OpenRouter's copies)."""

    api: ClassVar[Api] = Api.MESSAGES
    messages_key = "messages"
    response_list_key = "content"

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.anthropic_assembler import AnthropicAssembler

        return AnthropicAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        body = messages_body(request)
        if request.stream:
            body["stream"] = True
        return dumps(body)

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        calls = call_dicts(response.tool_calls)
        content: list[dict[str, Any]] = []
        if response.thinking:
            sig = response.thinking_signature or ""
            content.append({"type": "thinking", "thinking": response.thinking, "signature": sig})
        if response.text or not calls:
            content.append({"type": "text", "text": response.text})
        for c in calls:
            cid = c.get("id") or new_id("toolu_")
            content.append(
                {"type": "tool_use", "id": cid, "name": c["name"], "input": c["arguments"]}
            )
        u = response.usage
        return {
            "id": response.response_id or new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": response.model or model or "flowbook-mock",
            "content": content,
            "stop_reason": response.stop_reason or ("tool_use" if calls else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": u.input if u else 0, "output_tokens": u.output if u else 0},
        }

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        for event in message_events(body):
            yield encode_sse(event, event["type"])

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        etype = "permission_error" if status == 403 else "invalid_request_error"
        return {"type": "error", "error": {"type": etype, "message": message}}

    def set_system(self, body: dict[str, Any], system: str) -> None:
        body["system"] = system

    def validate_request(self, body: dict[str, Any]) -> None:
        super().validate_request(body)
        if isinstance(body.get("messages"), list):
            check_roles(body["messages"])


def message_events(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The stream events of a non-streamed Messages body (one delta per block)."""
    usage = dict(body.get("usage") or {"input_tokens": 0, "output_tokens": 0})
    start = {k: v for k, v in body.items() if k not in ("content", "usage")}
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = {**usage, "output_tokens": 1}
    yield {"type": "message_start", "message": start}
    for i, block in enumerate(body.get("content") or []):
        kind = block.get("type")
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            deltas.append({"type": "text_delta", "text": block.get("text", "")})
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas.append({"type": "thinking_delta", "thinking": block.get("thinking", "")})
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            first = {"type": "tool_use", "id": block.get("id"), "name": block.get("name")}
            first["input"] = {}
            partial = json.dumps(block.get("input") or {})
            deltas.append({"type": "input_json_delta", "partial_json": partial})
        else:  # other block types arrive whole in their start event
            first = block
        yield {"type": "content_block_start", "index": i, "content_block": first}
        for d in deltas:
            yield {"type": "content_block_delta", "index": i, "delta": d}
        yield {"type": "content_block_stop", "index": i}
    stop = {"stop_reason": body.get("stop_reason") or "end_turn"}
    stop["stop_sequence"] = body.get("stop_sequence")
    out_tokens = {"output_tokens": usage.get("output_tokens", 0)}
    yield {"type": "message_delta", "delta": stop, "usage": out_tokens}
    yield {"type": "message_stop"}


MESSAGES = MessagesCodec()


class VertexMessagesCodec(MessagesCodec):
    """Claude on Vertex AI: the Messages body without ``model`` (it is in the URL path)."""

    def encode_request(self, request: LLMRequest) -> bytes:
        body = messages_body(request)
        body.pop("model", None)
        body.setdefault("anthropic_version", "vertex-2023-10-16")
        if request.stream:
            body["stream"] = True
        return dumps(body)


VERTEX_MESSAGES = VertexMessagesCodec()

"""Bedrock runtime as codecs: Converse and InvokeModel with an Anthropic body.

The inverse of :mod:`flowbook.providers.bedrock` and its assemblers (docs/wire-formats.md §7).

* Converse: the body is ``{output: {message: {role, content: [blocks]}}, stopReason, usage}``;
  ConverseStream sends event-stream frames ``messageStart``, per block ``contentBlockStart``
  (tool use only) / ``contentBlockDelta`` / ``contentBlockStop``, ``messageStop`` and
  ``metadata`` (usage).
* InvokeModel with an Anthropic body: the Anthropic Messages body without ``model`` (it is in
  the path) and with ``anthropic_version``; the stream wraps each Anthropic event, base64, in a
  ``chunk`` frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message, Part
from flowbook.providers.anthropic_encode import MessagesCodec, message_events, messages_body
from flowbook.providers.codec import EVENTSTREAM_TYPE, WireCodec, call_dicts, dumps, new_id
from flowbook.streams.eventstream_encode import bedrock_chunk_frame, event_frame

_INFERENCE = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP"}
_INFERENCE["stop"] = "stopSequences"
_TOP_LEVEL = ("additionalModelRequestFields", "guardrailConfig", "performanceConfig")


def _block(p: Part) -> dict[str, Any] | None:
    if p.type == "text":
        return {"text": p.text or ""}
    if p.type == "image":
        fmt = (p.media_type or "image/png").split("/")[-1]
        return {"image": {"format": fmt, "source": {"bytes": p.data}}}
    if p.type == "document":
        return {"document": {"name": p.text, "format": p.media_type, "source": {"bytes": p.data}}}
    if p.type == "tool_call":
        return {"toolUse": {"toolUseId": p.id, "name": p.name, "input": p.arguments or {}}}
    if p.type == "tool_result":
        items = p.content if isinstance(p.content, list) else [p.content]
        content = [{"text": c} if isinstance(c, str) else {"json": c} for c in items]
        status = "error" if p.is_error else "success"
        return {"toolResult": {"toolUseId": p.tool_call_id, "content": content, "status": status}}
    if p.type == "thinking":
        if p.redacted:
            return {"reasoningContent": {"redactedContent": p.data}}
        text = {"text": p.text or "", **({"signature": p.signature} if p.signature else {})}
        return {"reasoningContent": {"reasoningText": text}}
    return p.content if isinstance(p.content, dict) else None


def converse_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        blocks = [b for b in (_block(p) for p in m.parts) if b is not None]
        out.append({"role": "user" if m.role == "tool" else m.role, "content": blocks})
    return out


class ConverseCodec(WireCodec):
    """Bedrock ``/model/{id}/converse`` and ``/converse-stream``."""

    api: ClassVar[Api] = Api.CONVERSE
    messages_key = "messages"
    param_paths: ClassVar[dict[str, str]] = {
        f"{k}": f"inferenceConfig.{v}" for k, v in _INFERENCE.items()
    }

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.bedrock_stream import ConverseAssembler

        return ConverseAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        body: dict[str, Any] = {"messages": converse_messages(request.messages)}
        if request.system:
            body["system"] = [{"text": request.system}]
        config: dict[str, Any] = {}
        for k, v in request.params.items():
            if k in _TOP_LEVEL:
                body[k] = v
            elif k != "tool_choice":
                config[_INFERENCE.get(k, k)] = v
        if config:
            body["inferenceConfig"] = config
        if request.tools:
            specs = [
                {
                    "toolSpec": {
                        "name": t.name,
                        "description": t.description or "",
                        "inputSchema": {"json": t.parameters or {"type": "object"}},
                    }
                }
                for t in request.tools
            ]
            body["toolConfig"] = {"tools": specs}
            if "tool_choice" in request.params:
                body["toolConfig"]["toolChoice"] = request.params["tool_choice"]
        return dumps(body)

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        calls = call_dicts(response.tool_calls)
        content: list[dict[str, Any]] = []
        if response.thinking:
            text = {"text": response.thinking}
            if response.thinking_signature:
                text["signature"] = response.thinking_signature
            content.append({"reasoningContent": {"reasoningText": text}})
        if response.text or not calls:
            content.append({"text": response.text})
        for c in calls:
            use = {"toolUseId": c.get("id") or new_id("tooluse_"), "name": c["name"]}
            content.append({"toolUse": {**use, "input": c["arguments"]}})
        u = response.usage
        inp, out = (u.input, u.output) if u else (0, 0)
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": response.stop_reason or ("tool_use" if calls else "end_turn"),
            "usage": {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out},
            "metrics": {"latencyMs": 0},
        }

    def stream_content_type(self, request: LLMRequest | None = None) -> str:
        return EVENTSTREAM_TYPE

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        message = (body.get("output") or {}).get("message") or {}
        yield event_frame("messageStart", {"role": "assistant"})
        for i, block in enumerate(message.get("content") or []):
            at = {"contentBlockIndex": i}
            if "toolUse" in block:
                use = block["toolUse"]
                start = {"toolUse": {"toolUseId": use.get("toolUseId"), "name": use.get("name")}}
                yield event_frame("contentBlockStart", {**at, "start": start})
                delta: dict[str, Any] = {"toolUse": {"input": json.dumps(use.get("input") or {})}}
            elif "reasoningContent" in block:
                delta = {"reasoningContent": block["reasoningContent"].get("reasoningText") or {}}
            else:
                delta = {"text": block.get("text", "")}
            yield event_frame("contentBlockDelta", {**at, "delta": delta})
            yield event_frame("contentBlockStop", at)
        yield event_frame("messageStop", {"stopReason": body.get("stopReason") or "end_turn"})
        meta = {
            "usage": body.get("usage") or {},
            "metrics": body.get("metrics") or {"latencyMs": 0},
        }
        yield event_frame("metadata", meta)

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        return {"message": message}

    def set_system(self, body: dict[str, Any], system: str) -> None:
        body["system"] = [{"text": system}]


class InvokeMessagesCodec(MessagesCodec):
    """Bedrock ``/model/{id}/invoke`` and ``/invoke-with-response-stream`` with Anthropic bodies."""

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.bedrock_stream import InvokeAssembler

        return InvokeAssembler(request, response, anthropic=True)

    def encode_request(self, request: LLMRequest) -> bytes:
        body = messages_body(request)
        body.pop("model", None)  # the model is in the path
        body.setdefault("anthropic_version", "bedrock-2023-05-31")
        return dumps(body)

    def stream_content_type(self, request: LLMRequest | None = None) -> str:
        return EVENTSTREAM_TYPE

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        for event in message_events(body):
            yield bedrock_chunk_frame(event)

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        return {"message": message}


CONVERSE = ConverseCodec()
INVOKE_MESSAGES = InvokeMessagesCodec()

"""Kiro ``GenerateAssistantResponse`` as a codec: neutral model → request and event stream.

The inverse of :mod:`flowbook.providers.kiro` and its assembler (docs/wire-formats.md §6). Kiro
answers only with an AWS event stream, so its "non-streamed body" is flowbook's own editable
shape: ``{"content", "toolUses": [{toolUseId, name, input}]}`` plus ``reasoningContent``,
``usage`` and ``stopReason`` when the response has them. The stream is ``initial-response``,
``reasoningContentEvent``, ``assistantResponseEvent``, per tool a ``toolUseEvent`` with the
whole input and one with ``stop: true``, and a ``metadataEvent`` for usage or a stop reason
(real Kiro sends neither; the assembler derives the stop reason from the tool calls).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message, Part, Tool
from flowbook.providers.codec import (
    EVENTSTREAM_TYPE,
    EditError,
    Encoded,
    WireCodec,
    call_dicts,
    dumps,
    new_id,
)
from flowbook.streams.eventstream_encode import event_frame

ERROR_TYPE = "application/x-amz-json-1.0"
_DERIVED_STOPS = ("end_turn", "tool_use")


def _tool_result(p: Part) -> dict[str, Any]:
    items = p.content if isinstance(p.content, list) else [p.content]
    content = [{"text": c} if isinstance(c, str) else {"json": c} for c in items]
    return {
        "toolUseId": p.tool_call_id,
        "content": content,
        "status": "error" if p.is_error else "success",
    }


def _image(p: Part) -> dict[str, Any]:
    fmt = (p.media_type or "image/png").split("/")[-1]
    return {"format": fmt, "source": {"bytes": p.data}}


def _user_input(
    m: Message, model: str | None = None, tools: list[Tool] | None = None
) -> dict[str, Any]:
    msg: dict[str, Any] = {"content": "".join(p.text or "" for p in m.parts if p.type == "text")}
    images = [_image(p) for p in m.parts if p.type == "image"]
    if images:
        msg["images"] = images
    ctx: dict[str, Any] = {}
    results = [_tool_result(p) for p in m.parts if p.type == "tool_result"]
    if results:
        ctx["toolResults"] = results
    if tools:
        ctx["tools"] = [
            {
                "toolSpecification": {
                    "name": t.name,
                    "description": t.description or "",
                    "inputSchema": {"json": t.parameters or {"type": "object"}},
                }
            }
            for t in tools
        ]
    if ctx:
        msg["userInputMessageContext"] = ctx
    if model:
        msg["modelId"] = model
    return msg


def _assistant(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"content": "".join(p.text or "" for p in m.parts if p.type == "text")}
    uses = [
        {"toolUseId": p.id, "name": p.name, "input": p.arguments or {}}
        for p in m.parts
        if p.type == "tool_call"
    ]
    if uses:
        out["toolUses"] = uses
    return out


class KiroCodec(WireCodec):
    """Kiro / CodeWhisperer ``GenerateAssistantResponse``."""

    api: ClassVar[Api] = Api.KIRO
    param_paths: ClassVar[dict[str, str]] = {
        "model": "conversationState.currentMessage.userInputMessage.modelId"
    }
    error_content_type = ERROR_TYPE

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.kiro_stream import KiroAssembler

        return KiroAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        """``conversationState``: every message but the last is history; the last is current.

        Kiro has no system field: clients put the system prompt in the first user turn, so a
        system prompt is written there.
        """
        messages = list(request.messages) or [Message("user", [Part("text", text="")])]
        if request.system:
            first = messages[0]
            parts = [Part("text", text=request.system), *first.parts]
            messages[0] = Message(first.role, parts)
        history: list[dict[str, Any]] = []
        for m in messages[:-1]:
            if m.role == "assistant":
                history.append({"assistantResponseMessage": _assistant(m)})
            else:
                history.append({"userInputMessage": _user_input(m, request.model)})
        current = _user_input(messages[-1], request.model, request.tools)
        params = dict(request.params)
        if params.get("origin"):
            current["origin"] = params.pop("origin")
        env = params.pop("envState", None)
        if env is not None:
            current.setdefault("userInputMessageContext", {})["envState"] = env
        params.pop("operation", None)
        profile = params.pop("profileArn", None)
        state: dict[str, Any] = {**params, "currentMessage": {"userInputMessage": current}}
        if history:
            state["history"] = history
        body: dict[str, Any] = {"conversationState": state}
        if profile:
            body["profileArn"] = profile
        return dumps(body)

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "content": response.text,
            "toolUses": [
                {
                    "toolUseId": c.get("id") or new_id("tooluse_"),
                    "name": c["name"],
                    "input": c["arguments"],
                }
                for c in call_dicts(response.tool_calls)
            ],
        }
        if response.model:
            body["modelId"] = response.model
        if response.thinking:
            body["reasoningContent"] = response.thinking
        if response.usage is not None and response.usage.source == "reported":
            body["usage"] = {
                "inputTokens": response.usage.input,
                "outputTokens": response.usage.output,
            }
        if response.stop_reason and response.stop_reason not in _DERIVED_STOPS:
            body["stopReason"] = response.stop_reason
        return body

    def stream_content_type(self, request: LLMRequest | None = None) -> str:
        return EVENTSTREAM_TYPE

    def encode_response(
        self, response: LLMResponse, *, stream: bool, request: LLMRequest | None = None
    ) -> Encoded:
        """Always the event stream: Kiro has no other response form."""
        return super().encode_response(response, stream=True, request=request)

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        yield event_frame("initial-response", {"conversationId": ""})
        if body.get("reasoningContent"):
            yield event_frame("reasoningContentEvent", {"text": body["reasoningContent"]})
        if body.get("content"):
            event = {"content": body["content"]}
            if body.get("modelId"):
                event["modelId"] = body["modelId"]
            yield event_frame("assistantResponseEvent", event)
        for use in body.get("toolUses") or []:
            ids = {"name": use.get("name"), "toolUseId": use.get("toolUseId")}
            yield event_frame("toolUseEvent", {**ids, "input": json.dumps(use.get("input"))})
            yield event_frame("toolUseEvent", {**ids, "stop": True})
        meta: dict[str, Any] = {}
        if isinstance(body.get("usage"), dict):
            meta["tokenUsage"] = body["usage"]
        if body.get("stopReason"):
            meta["stopReason"] = body["stopReason"]
        if meta:
            yield event_frame("metadataEvent", meta)

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        return {"__type": "com.amazon.kiro.runtimeservice#ValidationException", "message": message}

    def set_system(self, body: dict[str, Any], system: str) -> None:
        raise EditError("Kiro requests have no system prompt field; use set= with a JSON path")


KIRO = KiroCodec()

"""Kiro / AWS CodeWhisperer ``GenerateAssistantResponse`` (docs/wire-formats.md §6).

The request is a ``conversationState`` (history + currentMessage, tools and tool results inside
``userInputMessageContext``); the response is an AWS event-stream (§5) of bare JSON payloads:
``assistantResponseEvent`` text, ``toolUseEvent`` input fragments, ``reasoningContentEvent``,
then ``contextUsageEvent`` and ``meteringEvent`` (credits). Real captures carry no token counts,
so usage stays None unless a ``metadataEvent`` reports ``tokenUsage``; the context-usage
percentage is kept so that input tokens can be estimated (:func:`kiro_input_estimate`).

The assembler and the AWS error helpers live in :mod:`flowbook.providers.kiro_stream` and are
re-exported here; Bedrock shares the error helpers and the tool-result/image converters.
"""

from __future__ import annotations

import re
from typing import Any

from flowbook.model import (
    Api,
    FlowError,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Tool,
)
from flowbook.providers.base import (
    EVENTSTREAM,
    HOST,
    JSON,
    PATH,
    SHAPE,
    Assembler,
    Detection,
    Provider,
    RequestView,
    parse_arguments,
    wire_request,
)
from flowbook.providers.codec import WireCodec
from flowbook.providers.kiro_encode import KIRO
from flowbook.providers.kiro_stream import (
    KiroAssembler,
    aws_error,
    aws_error_name,
    aws_error_type,
    kiro_input_estimate,
)
from flowbook.providers.registry import register

__all__ = [
    "KiroAssembler",
    "KiroProvider",
    "aws_error",
    "aws_error_name",
    "aws_error_type",
    "image_part",
    "kiro_input_estimate",
    "tool_result_part",
]

_HOST = re.compile(
    r"^(?:q\.[a-z0-9-]+\.amazonaws\.com|codewhisperer\.[a-z0-9-]+\.amazonaws\.com"
    r"|runtime\.[a-z0-9-]+\.kiro\.dev)$",
    re.IGNORECASE,
)
_PARAM_KEYS = ("conversationId", "chatTriggerType", "agentTaskType", "agentContinuationId")


def _is_gar(req: RequestView) -> bool:
    target = req.header("x-amz-target")
    return req.path_only.rstrip("/").endswith("/generateAssistantResponse") or target.endswith(
        ".GenerateAssistantResponse"
    )


class KiroProvider(Provider):
    """Kiro CLI / IDE and CodeWhisperer streaming chat."""

    name = "kiro"

    def detect(self, req: RequestView) -> Detection | None:
        host = req.host.split(":")[0].lower()
        gar = _is_gar(req)
        if _HOST.match(host):
            # Same host and path also carry ListAvailableModels, SendTelemetryEvent, …
            return Detection(self.name, Api.KIRO if gar else Api.OTHER, HOST)
        if gar:
            return Detection(self.name, Api.KIRO, PATH)
        body = req.json()
        if isinstance(body, dict) and isinstance(body.get("conversationState"), dict):
            return Detection(self.name, Api.KIRO, SHAPE)
        return None

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        out = wire_request(req)
        target = req.header("x-amz-target")
        if target:
            out.params["operation"] = target.rsplit(".", 1)[-1]
        body = req.json()
        if api != "kiro" or not isinstance(body, dict):
            return out
        out.stream = True  # GenerateAssistantResponse always answers with an event stream
        state = body.get("conversationState") or {}
        for key in _PARAM_KEYS:
            if state.get(key) is not None:
                out.params[key] = state[key]
        if body.get("profileArn"):
            out.params["profileArn"] = body["profileArn"]
        for entry in state.get("history") or []:
            msg = _history_message(entry)
            if msg is not None:
                out.messages.append(msg)
        current = (state.get("currentMessage") or {}).get("userInputMessage") or {}
        if current:
            out.messages.append(_user_message(current))
            out.model = current.get("modelId")
            if current.get("origin"):
                out.params["origin"] = current["origin"]
            ctx = current.get("userInputMessageContext") or {}
            out.tools = [t for t in (_tool(s) for s in ctx.get("tools") or []) if t]
            if ctx.get("envState"):
                out.params["envState"] = ctx["envState"]
        return out

    def framing(self, req: RequestView, api: str, content_type: str) -> str:
        # Error bodies are awsJson; anything else from this API is the binary event stream.
        if api == "kiro":
            return JSON if "json" in content_type.lower() else EVENTSTREAM
        return super().framing(req, api, content_type)

    def codec(self, api: str) -> WireCodec | None:
        return KIRO if api == Api.KIRO else None

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        return KiroAssembler(request, response)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        return aws_error(status, body, headers)


# ---------------------------------------------------------------- request parts


def _text_part(text: Any) -> list[Part]:
    return [Part("text", text=text)] if isinstance(text, str) and text else []


def image_part(img: dict[str, Any]) -> Part:
    fmt = str(img.get("format") or "png")
    data = (img.get("source") or {}).get("bytes")
    return Part("image", media_type=f"image/{fmt}", data=data if isinstance(data, str) else None)


def tool_result_part(res: dict[str, Any]) -> Part:
    items = []
    for c in res.get("content") or []:
        if isinstance(c, dict):
            items.append(c.get("text") if "text" in c else c.get("json", c))
        else:
            items.append(c)
    content: Any = items[0] if len(items) == 1 and isinstance(items[0], str) else items
    return Part(
        "tool_result",
        tool_call_id=res.get("toolUseId"),
        content=content,
        is_error=str(res.get("status", "")).lower() == "error",
    )


def _user_message(m: dict[str, Any]) -> Message:
    ctx = m.get("userInputMessageContext") or {}
    parts = [tool_result_part(r) for r in ctx.get("toolResults") or [] if isinstance(r, dict)]
    parts += _text_part(m.get("content"))
    parts += [image_part(i) for i in m.get("images") or [] if isinstance(i, dict)]
    return Message("user", parts)


def _history_message(entry: Any) -> Message | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("userInputMessage"), dict):
        return _user_message(entry["userInputMessage"])
    a = entry.get("assistantResponseMessage")
    if isinstance(a, dict):
        parts = _text_part(a.get("content"))
        for use in a.get("toolUses") or []:
            args = use.get("input")
            parts.append(
                Part(
                    "tool_call",
                    id=use.get("toolUseId"),
                    name=use.get("name"),
                    arguments=parse_arguments(args) if isinstance(args, str) else args,
                )
            )
        return Message("assistant", parts)
    return None


def _tool(spec: Any) -> Tool | None:
    s = spec.get("toolSpecification") if isinstance(spec, dict) else None
    if not isinstance(s, dict) or not s.get("name"):
        return None
    schema = s.get("inputSchema") or {}
    return Tool(
        name=s["name"],
        description=s.get("description"),
        parameters=schema.get("json", schema) if isinstance(schema, dict) else schema,
    )


register(KiroProvider())

"""Bedrock response side: the Converse and InvokeModel assemblers (docs/wire-formats.md §7).

Split from :mod:`flowbook.providers.bedrock` (which re-exports the assemblers). Converse content
blocks are mapped to Parts here (:func:`converse_part`) because both the request messages and a
non-streamed Converse body are made of them.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flowbook.model import (
    ErrorType,
    FlowError,
    LLMRequest,
    LLMResponse,
    Part,
    StreamEvent,
    ToolCall,
    Usage,
)
from flowbook.providers.anthropic_assembler import AnthropicAssembler
from flowbook.providers.base import Assembler, parse_arguments, truncated_error
from flowbook.providers.kiro import image_part, tool_result_part
from flowbook.providers.kiro_stream import aws_error

# ---------------------------------------------------------------- content blocks


def converse_part(block: dict[str, Any]) -> Part | None:
    """One Converse content block (request or response message) as a Part; None to skip."""
    if "text" in block:
        return Part("text", text=block["text"])
    if "image" in block:
        return image_part(block["image"])
    if "document" in block:
        doc = block["document"]
        src = (doc.get("source") or {}).get("bytes")
        return Part("document", text=doc.get("name"), media_type=doc.get("format"), data=src)
    if "toolUse" in block:
        use = block["toolUse"]
        return Part(
            "tool_call", id=use.get("toolUseId"), name=use.get("name"), arguments=use.get("input")
        )
    if "toolResult" in block:
        return tool_result_part(block["toolResult"])
    if "reasoningContent" in block:
        rc = block["reasoningContent"]
        rt = rc.get("reasoningText") or {}
        if "redactedContent" in rc:
            return Part("thinking", data=rc["redactedContent"], redacted=True)
        return Part("thinking", text=rt.get("text"), signature=rt.get("signature"))
    if "cachePoint" in block:
        return None  # a cache marker, not content
    return Part("other", content=block)


# ---------------------------------------------------------------- responses


def _usage(u: Any) -> Usage | None:
    """Bedrock ``usage``: inputTokens excludes the cached parts, which Usage.input includes."""
    if not isinstance(u, dict):
        return None
    cr, cw = int(u.get("cacheReadInputTokens") or 0), int(u.get("cacheWriteInputTokens") or 0)
    details = {k: u[k] for k in ("totalTokens", "serverToolUsage") if k in u}
    return Usage(
        input=int(u.get("inputTokens") or 0) + cr + cw,
        output=int(u.get("outputTokens") or 0),
        cache_read=cr,
        cache_write=cw,
        source="reported",
        details=details,
    )


def _is_exception(event: StreamEvent) -> bool:
    mtype = (event.headers or {}).get(":message-type")
    return mtype in ("exception", "error") or (event.event or "").lower().endswith("exception")


def _exception_error(event: StreamEvent) -> FlowError:
    headers = event.headers or {}
    if headers.get(":message-type") == "error":
        msg = str(headers.get(":error-message") or event.event or "stream error")
        return FlowError(ErrorType.SERVER_ERROR, msg, code=event.event, raw=event.data)
    return aws_error(None, event.data, name=event.event)


class ConverseAssembler(Assembler):
    """ConverseStream events, or a whole Converse body, into the response."""

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        super().__init__(request, response)
        self._calls: dict[int, ToolCall] = {}
        self._stopped: set[int] = set()
        self._streamed = False
        self._message_stopped = False  # a ConverseStream without messageStop was cut short

    def feed(self, event: StreamEvent) -> bool:
        self._streamed = True
        if _is_exception(event):
            self.error = _exception_error(event)
            return False
        d = event.data if isinstance(event.data, dict) else {}
        idx = d.get("contentBlockIndex", 0)
        if event.event == "contentBlockStart":
            use = (d.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                self._call(idx, use.get("toolUseId"), use.get("name"))
                return True
        elif event.event == "contentBlockDelta":
            return self._delta(idx, d.get("delta") or {})
        elif event.event == "contentBlockStop" and idx in self._calls:
            self._stopped.add(idx)
            self._calls[idx].arguments = parse_arguments(self._calls[idx].arguments_raw)
        elif event.event == "messageStop":
            self._message_stopped = True
            self.response.stop_reason = d.get("stopReason")
            if d.get("additionalModelResponseFields"):
                self.response.extra["additional_fields"] = d["additionalModelResponseFields"]
        elif event.event == "metadata":
            self.finished = True  # ConverseStream's last frame, after messageStop
            self._metadata(d)
        return False

    def _call(self, idx: int, tool_id: str | None, name: str | None) -> ToolCall:
        call = ToolCall(id=tool_id, name=name or "", arguments={})
        self._calls[idx] = call
        self.response.tool_calls.append(call)
        return call

    def _delta(self, idx: int, delta: dict[str, Any]) -> bool:
        if isinstance(delta.get("text"), str):
            self.response.text += delta["text"]
            return bool(delta["text"])
        rc = delta.get("reasoningContent")
        if isinstance(rc, dict):
            self.response.thinking += rc.get("text") or ""
            if rc.get("signature"):
                self.response.thinking_signature = rc["signature"]
            if rc.get("redactedContent"):
                self.response.extra.setdefault("redacted_thinking", []).append(
                    rc["redactedContent"]
                )
            return bool(rc.get("text") or rc.get("redactedContent"))
        use = delta.get("toolUse")
        if isinstance(use, dict):
            call = self._calls.get(idx) or self._call(idx, None, None)
            call.arguments_raw += str(use.get("input") or "")
            return True
        return False

    def _metadata(self, d: dict[str, Any]) -> None:
        usage = _usage(d.get("usage"))
        if usage is not None:
            self.response.usage = usage
        latency = (d.get("metrics") or {}).get("latencyMs")
        if latency is not None:
            self.response.extra["latency_ms"] = latency
        if d.get("trace"):
            self.response.extra["trace"] = d["trace"]

    def feed_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            self.error = FlowError(
                ErrorType.PARSE, "Converse body is not JSON", raw=repr(body)[:500]
            )
            return
        message = (body.get("output") or {}).get("message") or {}
        for block in message.get("content") or []:
            part = converse_part(block) if isinstance(block, dict) else None
            if part is None:
                continue
            if part.type == "text":
                self.response.text += part.text or ""
            elif part.type == "thinking":
                self.response.thinking += part.text or ""
                self.response.thinking_signature = (
                    part.signature or self.response.thinking_signature
                )
            elif part.type == "tool_call":
                raw = json.dumps(part.arguments, ensure_ascii=False)
                self.response.tool_calls.append(
                    ToolCall(part.id, part.name or "", part.arguments, raw)
                )
        self.response.stop_reason = body.get("stopReason")
        self._metadata(body)

    def finish(self) -> None:
        for idx, call in self._calls.items():
            if idx not in self._stopped:  # the stream ended inside the block
                call.arguments = parse_arguments(call.arguments_raw)
        if self._streamed and not self._message_stopped and self.error is None:
            self.error = truncated_error("messageStop")


class InvokeAssembler(Assembler):
    """InvokeModel(WithResponseStream): Anthropic events go to the Anthropic assembler.

    Each ``chunk`` frame carries ``{"bytes": base64(event JSON)}``. For an Anthropic model the
    decoded event is fed as ``StreamEvent(t, event=data["type"], data=decoded)``; for other model
    families only the common text fields and ``amazon-bedrock-invocationMetrics`` are read.
    """

    def __init__(self, request: LLMRequest, response: LLMResponse, *, anthropic: bool) -> None:
        super().__init__(request, response)
        self._inner: Assembler | None = None
        self._metrics: dict[str, Any] | None = None
        if anthropic:
            self._inner = AnthropicAssembler(request, response)

    def _decode(self, event: StreamEvent) -> dict[str, Any] | None:
        data = event.data if isinstance(event.data, dict) else {}
        try:
            decoded = json.loads(base64.b64decode(data.get("bytes") or "", validate=True))
        except (binascii.Error, ValueError) as exc:
            self.error = FlowError(ErrorType.PARSE, f"bad chunk bytes: {exc}", raw=data)
            return None
        return decoded if isinstance(decoded, dict) else None

    def feed(self, event: StreamEvent) -> bool:
        if _is_exception(event):
            self.error = _exception_error(event)
            return False
        if event.event != "chunk":
            return False
        decoded = self._decode(event)
        if decoded is None:
            return False
        return self._fold(decoded, event.t)

    def _fold(self, decoded: dict[str, Any], t: float | None) -> bool:
        metrics = decoded.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self._metrics = metrics
            self.finished = True  # Bedrock adds its metrics to the last chunk
            self.response.extra["bedrock_invocation_metrics"] = metrics  # same key as Anthropic
        if self._inner is not None:
            inner_event = StreamEvent(t=t or 0.0, event=decoded.get("type"), data=decoded)
            out = self._inner.feed(inner_event)
            self.error = self.error or self._inner.error
            self.finished = self.finished or self._inner.finished
            return out
        text = next(
            (
                decoded[k]
                for k in ("outputText", "generation", "completion", "text")
                if k in decoded
            ),
            None,
        )
        if isinstance(text, str):
            self.response.text += text
        return bool(text)

    def feed_body(self, body: Any) -> None:
        if self._inner is not None:
            self._inner.feed_body(body)
            self.error = self.error or self._inner.error
        elif isinstance(body, dict):
            self._fold(body, None)

    def finish(self) -> None:
        if self._inner is not None:
            self._inner.finish()
            self.error = self.error or self._inner.error
        m = self._metrics
        if self.response.usage is None and m and "inputTokenCount" in m:
            self.response.usage = Usage(
                input=int(m.get("inputTokenCount") or 0),
                output=int(m.get("outputTokenCount") or 0),
                source="reported",
            )

"""Kiro response side: the GenerateAssistantResponse event assembler and AWS error mapping.

Split from :mod:`flowbook.providers.kiro` (which re-exports everything here). The stream is an
AWS event-stream (docs/wire-formats.md §5, §6.3) of bare JSON payloads: ``assistantResponseEvent``
text, ``toolUseEvent`` input fragments, ``reasoningContentEvent``, then ``contextUsageEvent`` and
``meteringEvent`` (credits). There is no stop event and, in real captures, no token counts.
The AWS error helpers (:func:`aws_error`) are shared with the Bedrock provider.
"""

from __future__ import annotations

import json
from typing import Any

from flowbook.model import (
    ErrorType,
    FlowError,
    LLMRequest,
    LLMResponse,
    StreamEvent,
    ToolCall,
    Usage,
)
from flowbook.providers.base import Assembler, error_type_for_status, parse_arguments

# ---------------------------------------------------------------- response stream

_WRAPPABLE = frozenset(
    [
        "initial-response",
        "assistantResponseEvent",
        "reasoningContentEvent",
        "toolUseEvent",
        "contextUsageEvent",
        "meteringEvent",
        "metadataEvent",
        "messageMetadataEvent",
        "invalidStateEvent",
    ]
)
# Known ChatResponseStream members flowbook does not interpret: kept verbatim in extra.
_KEPT = frozenset(
    [
        "followupPromptEvent",
        "codeReferenceEvent",
        "supplementaryWebLinksEvent",
        "citationEvent",
        "codeEvent",
        "intentsEvent",
        "interactionComponentsEvent",
        "toolResultEvent",
        "dryRunSucceedEvent",
    ]
)
_CLAUDE_WINDOW = 200_000


def kiro_input_estimate(context_usage_pct: float | None, model: str | None) -> int | None:
    """Input tokens estimated from ``contextUsagePercentage`` (what Kiro proxies do, §6.4).

    ``pct / 100 × context window``; the window is known (200k) for Claude-family models and for
    ``auto`` (which Kiro serves with Claude). Other models give None.
    """
    if context_usage_pct is None:
        return None
    m = (model or "auto").lower()
    if m != "auto" and "claude" not in m:
        return None
    return round(float(context_usage_pct) / 100.0 * _CLAUDE_WINDOW)


class KiroAssembler(Assembler):
    """Folds GenerateAssistantResponse events into the response (see module docstring).

    Identical consecutive ``assistantResponseEvent`` frames are *not* dropped: §6.3 only reports
    that some proxies de-duplicate them, no capture shows one, and a model may legitimately
    repeat a fragment. Their number is kept in ``extra["repeated_content_events"]``.
    """

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        super().__init__(request, response)
        self._calls: dict[str, ToolCall] = {}
        self._stopped: set[str] = set()
        self._last_content: str | None = None
        self._reported_stop: str | None = None

    def feed(self, event: StreamEvent) -> bool:
        name, data = event.event, event.data
        headers = event.headers or {}
        mtype = headers.get(":message-type")
        if mtype == "error":
            self.error = FlowError(
                type=ErrorType.SERVER_ERROR,
                message=str(headers.get(":error-message") or name or "stream error"),
                code=str(headers.get(":error-code") or name),
                raw=data,
            )
            return False
        if mtype == "exception" or (name or "").lower().endswith("exception"):
            self.error = aws_error(None, data, name=name)
            return False
        # Some test doubles wrap payloads as {"assistantResponseEvent": {...}} (§6.3).
        if isinstance(data, dict) and len(data) == 1:
            key, inner = next(iter(data.items()))
            if (key in _WRAPPABLE or key in _KEPT) and isinstance(inner, dict):
                name, data = key, inner
        if not isinstance(data, dict) or not name:
            return False
        handler = getattr(self, "_on_" + name.replace("-", "_"), None)
        if handler is not None:
            return bool(handler(data))
        if name in _KEPT:
            self.response.extra.setdefault(name, []).append(data)
        return False  # unknown event types are ignored (§6.3)

    def _on_initial_response(self, d: dict[str, Any]) -> bool:
        if d.get("conversationId"):
            self.response.extra["conversation_id"] = d["conversationId"]
        return False

    def _on_assistantResponseEvent(self, d: dict[str, Any]) -> bool:
        content = d.get("content")
        if isinstance(d.get("modelId"), str):
            self.response.model = d["modelId"]
        if not isinstance(content, str) or not content:
            return False
        if content == self._last_content:
            extra = self.response.extra
            extra["repeated_content_events"] = extra.get("repeated_content_events", 0) + 1
        self._last_content = content
        self.response.text += content
        return True

    def _on_reasoningContentEvent(self, d: dict[str, Any]) -> bool:
        text = d.get("text")
        if isinstance(text, str):
            self.response.thinking += text
        if d.get("signature"):
            self.response.thinking_signature = d["signature"]
        if d.get("redactedContent"):
            self.response.extra.setdefault("redacted_thinking", []).append(d["redactedContent"])
        return bool(text or d.get("redactedContent"))

    def _on_toolUseEvent(self, d: dict[str, Any]) -> bool:
        tool_id = str(d.get("toolUseId") or f"tool_{len(self._calls)}")
        call = self._calls.get(tool_id)
        if call is None:
            call = ToolCall(id=tool_id, name=str(d.get("name") or ""), arguments={})
            self._calls[tool_id] = call
            self.response.tool_calls.append(call)
        elif d.get("name") and not call.name:
            call.name = d["name"]
        fragment = d.get("input")
        if isinstance(fragment, (dict, list)):  # some adapters send the object itself
            fragment = json.dumps(fragment, ensure_ascii=False)
        if isinstance(fragment, str):
            call.arguments_raw += fragment
        if d.get("stop"):
            self._stopped.add(tool_id)
            call.arguments = parse_arguments(call.arguments_raw)
        return True

    def _on_contextUsageEvent(self, d: dict[str, Any]) -> bool:
        pct = d.get("contextUsagePercentage")
        if isinstance(pct, (int, float)):
            self.response.extra["context_usage_pct"] = pct
            model = self.request.model or self.response.model
            estimate = kiro_input_estimate(pct, model)
            if estimate is not None:
                self.response.extra["input_tokens_estimate"] = estimate
        return False

    def _on_meteringEvent(self, d: dict[str, Any]) -> bool:
        self.finished = True  # the stream's last frame (there is no stop event, §6.3)
        amount = d.get("usage")
        if isinstance(amount, (int, float)):
            extra = self.response.extra
            extra["credits"] = extra.get("credits", 0.0) + amount
            extra["credits_unit"] = d.get("unitPlural") or d.get("unit") or "credits"
        return False

    def _on_metadataEvent(self, d: dict[str, Any]) -> bool:
        tu = d.get("tokenUsage")
        if isinstance(tu, dict):

            def num(key: str) -> int:
                v = tu.get(key)
                return int(v) if isinstance(v, (int, float)) else 0

            uncached = num("uncachedInputTokens") or num("inputTokens")
            cr, cw = num("cacheReadInputTokens"), num("cacheWriteInputTokens")
            self.response.usage = Usage(
                input=uncached + cr + cw,
                output=num("outputTokens"),
                cache_read=cr,
                cache_write=cw,
                source="reported",
                details={"totalTokens": tu["totalTokens"]} if "totalTokens" in tu else {},
            )
        if isinstance(d.get("stopReason"), str):
            self._reported_stop = d["stopReason"].lower()
        if "contextUsagePercentage" in d:
            self._on_contextUsageEvent(d)
        for key in ("conversationId", "utteranceId"):
            if d.get(key):
                self.response.extra[key] = d[key]
        return False

    _on_messageMetadataEvent = _on_metadataEvent

    def _on_invalidStateEvent(self, d: dict[str, Any]) -> bool:
        msg = d.get("message") or d.get("reason") or "invalid state"
        self.error = FlowError(ErrorType.BAD_REQUEST, str(msg), code=d.get("reason"), raw=d)
        return False

    def feed_body(self, body: Any) -> None:
        """A whole body: event-stream bytes (replayed capture) or JSON (wrapped) events."""
        if isinstance(body, (bytes, bytearray)):
            from flowbook.streams.eventstream import EventStreamDecoder

            dec = EventStreamDecoder()
            for ev in dec.feed(bytes(body), 0.0) + dec.close(0.0):
                self.feed(ev)
            if dec.errors and self.error is None:
                self.error = FlowError(ErrorType.PARSE, "; ".join(dec.errors))
            return
        items = body if isinstance(body, list) else [body]
        for item in items:
            if isinstance(item, dict):
                for key, value in item.items():
                    self.feed(StreamEvent(t=0.0, event=None, data={key: value}))

    def finish(self) -> None:
        for tool_id, call in self._calls.items():
            if tool_id not in self._stopped:  # body ended mid-call: parse what arrived
                call.arguments = parse_arguments(call.arguments_raw)
                self.response.extra.setdefault("unfinished_tool_calls", []).append(tool_id)
        if self._reported_stop:
            self.response.stop_reason = self._reported_stop
        elif self.error is None:
            # No stop event on the wire (§6.3): derive it.
            self.response.stop_reason = "tool_use" if self._stopped else "end_turn"


# ---------------------------------------------------------------- AWS errors (shared)

# Exception names (lowercased, "exception" suffix removed) → flowbook error type.
_AWS_ERRORS: dict[str, ErrorType] = {
    "throttling": ErrorType.RATE_LIMIT,
    "toomanyrequests": ErrorType.RATE_LIMIT,
    "servicequotaexceeded": ErrorType.RATE_LIMIT,
    "limitexceeded": ErrorType.RATE_LIMIT,
    "validation": ErrorType.BAD_REQUEST,
    "serialization": ErrorType.BAD_REQUEST,
    "conflict": ErrorType.BAD_REQUEST,
    "invalidstate": ErrorType.BAD_REQUEST,
    "accessdenied": ErrorType.AUTHENTICATION,
    "unauthorized": ErrorType.AUTHENTICATION,
    "unrecognizedclient": ErrorType.AUTHENTICATION,
    "expiredtoken": ErrorType.AUTHENTICATION,
    "invalidsignature": ErrorType.AUTHENTICATION,
    "internalserver": ErrorType.SERVER_ERROR,
    "internalfailure": ErrorType.SERVER_ERROR,
    "serviceunavailable": ErrorType.SERVER_ERROR,
    "modelstreamerror": ErrorType.SERVER_ERROR,
    "modelerror": ErrorType.SERVER_ERROR,
    "modeltimeout": ErrorType.TIMEOUT,
    "resourcenotfound": ErrorType.MODEL_UNAVAILABLE,
    "modelnotready": ErrorType.MODEL_UNAVAILABLE,
    "contentfiltered": ErrorType.CONTENT_FILTER,
}


def aws_error_name(raw: Any) -> str | None:
    """``com.amazon…#ValidationException`` or ``ValidationException:http://…`` → the bare name."""
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split("#")[-1].split(":")[0].strip() or None


def aws_error_type(name: str | None, status: int | None = None) -> ErrorType:
    """Map an AWS exception name to a flowbook error type; unknown names fall back to status."""
    if name:
        base = name.lower().removesuffix("exception")
        for key in (base, base.removesuffix("error")):  # ModelErrorException, InternalServerError
            if key in _AWS_ERRORS:
                return _AWS_ERRORS[key]
    if status is None and name:
        return ErrorType.SERVER_ERROR if "internal" in name.lower() else ErrorType.OTHER
    return error_type_for_status(status)


def aws_error(
    status: int | None, body: Any, headers: dict[str, str] | None = None, name: str | None = None
) -> FlowError:
    """A FlowError from an awsJson/restJson error body (``__type``, ``message``, ``reason``).

    The type comes from ``name`` (an exception frame's ``:exception-type``), the body's
    ``__type``/``code``, or the ``x-amzn-ErrorType`` header, in that order.
    """
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            pass
    msg = reason = None
    if isinstance(body, dict):
        name = name or aws_error_name(body.get("__type") or body.get("code"))
        msg = body.get("message") or body.get("Message") or body.get("originalMessage")
        reason = body.get("reason")
    name = name or aws_error_name(hdrs.get("x-amzn-errortype"))
    if msg is None and isinstance(body, (bytes, str)) and body:
        msg = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body)[:500]
    message = str(msg or name or f"HTTP {status}")
    if reason:
        message += f" (reason: {reason})"
    raw = body.decode("utf-8", "replace")[:2000] if isinstance(body, bytes) else body
    return FlowError(
        type=aws_error_type(name, status), message=message, status=status, raw=raw, code=name
    )

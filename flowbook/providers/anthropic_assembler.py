"""Rebuilding an Anthropic Messages response: events or a whole body → LLMResponse.

Shared by the first-party API, Claude on Vertex and Bedrock's ``invoke-with-response-stream``
(whose frames carry the same event JSON). Spec: docs/wire-formats.md §3.3–§3.6 and §10.
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
from flowbook.providers.base import (
    Assembler,
    error_type_for_status,
    parse_arguments,
    token_count,
    truncated_error,
)

# Anthropic ``error.type`` → flowbook's vocabulary (docs/wire-formats.md §3.6).
_ERROR_TYPES: dict[str, ErrorType] = {
    "invalid_request_error": ErrorType.BAD_REQUEST,
    "request_too_large": ErrorType.BAD_REQUEST,
    "authentication_error": ErrorType.AUTHENTICATION,
    "permission_error": ErrorType.AUTHENTICATION,
    "not_found_error": ErrorType.MODEL_UNAVAILABLE,
    "rate_limit_error": ErrorType.RATE_LIMIT,
    "overloaded_error": ErrorType.SERVER_ERROR,
    "api_error": ErrorType.SERVER_ERROR,
    "timeout_error": ErrorType.TIMEOUT,
    # Out of credit: not a transient failure, so not retryable and not "rate_limit".
    "billing_error": ErrorType.OTHER,
}


def anthropic_error(
    err: dict[str, Any], *, status: int | None = None, raw: Any = None
) -> FlowError:
    """A FlowError from an Anthropic ``error`` object (HTTP body or in-stream ``error`` event)."""
    kind = str(err.get("type") or "")
    etype = _ERROR_TYPES.get(kind) or error_type_for_status(status)
    return FlowError(
        type=etype,
        message=str(err.get("message") or kind or f"HTTP {status}"),
        status=status,
        raw=err if raw is None else raw,
        code=kind or None,
    )


def anthropic_usage(u: dict[str, Any]) -> Usage:
    """Anthropic usage in flowbook's meaning: ``input`` includes cache reads and writes."""
    uncached = token_count(u, "input_tokens")
    write = token_count(u, "cache_creation_input_tokens")
    read = token_count(u, "cache_read_input_tokens")
    otd = u.get("output_tokens_details")
    details: dict[str, Any] = {"input_uncached": uncached}
    cc = u.get("cache_creation")
    if isinstance(cc, dict):
        details["cache_write_5m"] = token_count(cc, "ephemeral_5m_input_tokens")
        details["cache_write_1h"] = token_count(cc, "ephemeral_1h_input_tokens")
    for key in ("server_tool_use", "service_tier", "inference_geo"):
        if u.get(key) is not None:
            details[key] = u[key]
    return Usage(
        input=uncached + write + read,
        output=token_count(u, "output_tokens"),
        cache_read=read,
        cache_write=write,
        reasoning=token_count(otd, "thinking_tokens") if isinstance(otd, dict) else 0,
        source="reported",
        details=details,
    )


class AnthropicAssembler(Assembler):
    """Rebuilds a Messages response from its events (or a whole body).

    ``feed`` reads only ``event.data["type"]``, never the SSE event name, so Bedrock's
    ``invoke-with-response-stream`` can feed it the decoded ``chunk.bytes`` JSON unchanged.
    """

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        super().__init__(request, response)
        self._usage: dict[str, Any] = {}
        # content block index → {"call": ToolCall | None, "json": [fragments], "input": …}
        self._blocks: dict[int, dict[str, Any]] = {}
        # A stream opens with message_start and closes with message_stop; one without the other
        # was cut short (the connection closed cleanly, so nothing else says so).
        self._started = False
        self._stopped = False

    def feed(self, event: StreamEvent) -> bool:
        """Fold one event; True when it carried text, thinking or tool-call input."""
        data = event.data
        if not isinstance(data, dict):
            if isinstance(data, str | bytes) and not data.strip():
                return False
            self._parse_error(f"event data is not a JSON object: {str(data)[:200]!r}", data)
            return False
        try:
            return self._event(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._parse_error(f"malformed {data.get('type')!r} event: {exc!r}", data)
            return False

    def feed_body(self, body: Any) -> None:
        """Fold a non-streamed ``message`` body (or an error body that came with a 200)."""
        if not isinstance(body, dict):
            if body:
                self._parse_error("response body is not a JSON object", body)
            return
        if body.get("type") == "error" and isinstance(body.get("error"), dict):
            self.error = anthropic_error(body["error"], status=self.response.status_code, raw=body)
            return
        try:
            self._message(body)
            for i, block in enumerate(body.get("content") or []):
                if isinstance(block, dict):
                    self._block_start(i, block)
                    self._block_stop(i)
            self._stop(body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._parse_error(f"malformed message body: {exc!r}", body)

    def finish(self) -> None:
        """Close tool calls a cut-off stream left open; publish usage; flag a truncated stream."""
        for i in list(self._blocks):
            self._block_stop(i)
        if self._usage:
            self.response.usage = anthropic_usage(self._usage)
        if self._started and not self._stopped and self.error is None:
            self.error = truncated_error("message_stop")

    # -- events ---------------------------------------------------------------------------

    def _event(self, d: dict[str, Any]) -> bool:
        kind = d.get("type")
        if kind == "content_block_delta":
            return self._delta(int(d["index"]), d["delta"])
        if kind == "content_block_start":
            return self._block_start(int(d["index"]), d["content_block"])
        if kind == "content_block_stop":
            self._block_stop(int(d["index"]))
        elif kind == "message_start":
            self._started = True
            self._message(d.get("message") or {})
        elif kind == "message_delta":
            self._stop(d.get("delta") or {})
            self._merge_usage(d.get("usage"))
        elif kind == "message_stop":
            self._stopped = self.finished = True
            metrics = d.get("amazon-bedrock-invocationMetrics")
            if metrics is not None:  # Bedrock appends its own counts to the last event
                self.response.extra["bedrock_invocation_metrics"] = metrics
        elif kind == "error":
            err = d.get("error")
            self.error = anthropic_error(err if isinstance(err, dict) else {}, raw=d)
        # ping and event types added later carry nothing to rebuild.
        return False

    def _message(self, msg: dict[str, Any]) -> None:
        self.response.model = msg.get("model") or self.response.model
        self.response.response_id = msg.get("id") or self.response.response_id
        self._merge_usage(msg.get("usage"))

    def _merge_usage(self, usage: Any) -> None:
        # message_start gives the full object; message_delta overwrites the fields it carries.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            self.response.usage = anthropic_usage(self._usage)

    def _stop(self, delta: dict[str, Any]) -> None:
        if delta.get("stop_reason"):
            self.response.stop_reason = delta["stop_reason"]
        if delta.get("stop_sequence"):
            self.response.extra["stop_sequence"] = delta["stop_sequence"]

    def _block_start(self, i: int, b: dict[str, Any]) -> bool:
        kind = b.get("type")
        state: dict[str, Any] = {"call": None, "json": [], "input": None}
        self._blocks[i] = state
        if kind == "text":
            if b.get("citations"):
                self.response.extra.setdefault("citations", []).extend(b["citations"])
            return self._add_text(b.get("text") or "")
        if kind == "thinking":
            if b.get("signature"):
                self.response.thinking_signature = b["signature"]
            return self._add_thinking(b.get("thinking") or "")
        if kind == "redacted_thinking":
            self.response.extra.setdefault("redacted_thinking", []).append(b.get("data"))
            return False
        if kind in ("tool_use", "server_tool_use"):
            call = ToolCall(
                id=b.get("id"),
                name=str(b.get("name") or ""),
                type="function" if kind == "tool_use" else "server_tool_use",
            )
            state["call"], state["input"] = call, b.get("input")
            self.response.tool_calls.append(call)
            return True
        # Server tool results (web search, tool search, code execution …) and anything newer.
        self.response.extra.setdefault("server_tool_results", []).append(b)
        return False

    def _delta(self, i: int, delta: dict[str, Any]) -> bool:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._add_text(delta.get("text") or "")
        if kind == "thinking_delta":
            return self._add_thinking(delta.get("thinking") or "")
        if kind == "signature_delta":
            self.response.thinking_signature = delta.get("signature")
        elif kind == "input_json_delta":
            state = self._blocks.get(i)
            if state is None or state["call"] is None:
                self._parse_error(f"input_json_delta for block {i}, which is no tool call", delta)
                return False
            fragment = delta.get("partial_json") or ""
            state["json"].append(fragment)
            state["call"].arguments_raw = "".join(state["json"])
            return bool(fragment)
        elif kind == "citations_delta":
            self.response.extra.setdefault("citations", []).append(delta.get("citation"))
        return False

    def _block_stop(self, i: int) -> None:
        state = self._blocks.pop(i, None)
        if state is None or state["call"] is None:
            return
        call: ToolCall = state["call"]
        raw = "".join(state["json"])
        if raw.strip():
            call.arguments_raw = raw
            call.arguments = parse_arguments(raw)
        else:
            # No input streamed (a tool without parameters sends one empty fragment): the
            # block start's input, which is {} then, is the whole input.
            start_input = state["input"] if state["input"] is not None else {}
            call.arguments = start_input
            call.arguments_raw = json.dumps(start_input, ensure_ascii=False)

    def _add_text(self, text: str) -> bool:
        self.response.text += text
        return bool(text)

    def _add_thinking(self, text: str) -> bool:
        self.response.thinking += text
        return bool(text)

    def _parse_error(self, message: str, raw: Any) -> None:
        self.response.extra.setdefault("parse_errors", []).append(message)
        if self.error is None:
            self.error = FlowError(type=ErrorType.PARSE, message=message, raw=_short(raw))


def _short(raw: Any) -> Any:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw[:2000] if isinstance(raw, str) else raw

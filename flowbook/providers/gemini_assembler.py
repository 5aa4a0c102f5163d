"""Rebuilding a Gemini ``generateContent`` response (docs/wire-formats.md §4.3–§4.6, §10).

Every stream chunk (SSE event or JSON-array element) is a whole ``GenerateContentResponse``
holding only the new parts, so chunks and a non-streamed body fold the same way. Code Assist
wraps each chunk as ``{response:{…}, traceId}``; the wrapper is removed here.
"""

from __future__ import annotations

import json
import re
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
    token_count,
    truncated_error,
)

# google.rpc status → flowbook's vocabulary.
_STATUS_TYPES: dict[str, ErrorType] = {
    "INVALID_ARGUMENT": ErrorType.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorType.BAD_REQUEST,
    "OUT_OF_RANGE": ErrorType.BAD_REQUEST,
    "NOT_FOUND": ErrorType.MODEL_UNAVAILABLE,
    "PERMISSION_DENIED": ErrorType.AUTHENTICATION,
    "UNAUTHENTICATED": ErrorType.AUTHENTICATION,
    "RESOURCE_EXHAUSTED": ErrorType.RATE_LIMIT,
    "INTERNAL": ErrorType.SERVER_ERROR,
    "UNAVAILABLE": ErrorType.SERVER_ERROR,
    "UNKNOWN": ErrorType.SERVER_ERROR,
    "DEADLINE_EXCEEDED": ErrorType.TIMEOUT,
    "CANCELLED": ErrorType.CANCELLED,
}

# finishReason values that mean the output was withheld by a filter. (Any promptFeedback
# blockReason means the prompt itself was refused.)
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


def gemini_error(err: dict[str, Any], *, status: int | None = None, raw: Any = None) -> FlowError:
    """A FlowError from a Google ``error`` object ``{code, message, status, details?}``."""
    rpc = str(err.get("status") or "")
    code = err.get("code")
    http = status or (code if isinstance(code, int) else None)
    etype = _STATUS_TYPES.get(rpc) or error_type_for_status(http)
    return FlowError(
        type=etype,
        message=str(err.get("message") or rpc or f"HTTP {http}"),
        status=http,
        raw=err if raw is None else raw,
        code=rpc or (str(code) if code is not None else None),
    )


def gemini_usage(u: dict[str, Any]) -> Usage:
    """``usageMetadata`` in flowbook's meaning: output = candidates + thoughts."""
    prompt = token_count(u, "promptTokenCount") + token_count(u, "toolUsePromptTokenCount")
    thoughts = token_count(u, "thoughtsTokenCount")
    details = {
        k: u[k]
        for k in (
            "totalTokenCount",
            "toolUsePromptTokenCount",
            "promptTokensDetails",
            "candidatesTokensDetails",
            "cacheTokensDetails",
            "toolUsePromptTokensDetails",
            "serviceTier",
            "trafficType",
        )
        if u.get(k) is not None
    }
    return Usage(
        input=prompt,
        output=token_count(u, "candidatesTokenCount") + thoughts,
        cache_read=token_count(u, "cachedContentTokenCount"),
        reasoning=thoughts,
        source="reported",
        details=details,
    )


class GeminiAssembler(Assembler):
    """Folds ``GenerateContentResponse`` chunks (or one body, or a whole array) into a response."""

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        super().__init__(request, response)
        self._usage: dict[str, Any] | None = None
        self._streamed = False  # the last streamed chunk carries a finishReason; none: cut

    def feed(self, event: StreamEvent) -> bool:
        """Fold one chunk; True when it carried text, thought text or a function call."""
        data = event.data
        self._streamed = True
        if isinstance(data, dict):
            return self._chunk(data)
        if isinstance(data, list):  # a whole array delivered as one event
            return any([self._chunk(d) for d in data if isinstance(d, dict)])
        if isinstance(data, str | bytes) and data.strip():
            self._unparsed(data if isinstance(data, str) else data.decode("utf-8", "replace"))
        return False

    def feed_body(self, body: Any) -> None:
        """A ``generateContent`` body, or a JSON-array stream body read whole."""
        if isinstance(body, list):
            for item in body:
                if isinstance(item, dict):
                    self._chunk(item)
        elif isinstance(body, dict):
            self._chunk(body)
        elif body:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            self._unparsed(text)

    def finish(self) -> None:
        """Publish usage from the last ``usageMetadata`` (cumulative: never summed); flag a
        stream that ended without any ``finishReason``."""
        if self._usage is not None:
            self.response.usage = gemini_usage(self._usage)
        if self._streamed and self.response.stop_reason is None and self.error is None:
            self.error = truncated_error("a finishReason")

    def _chunk(self, d: dict[str, Any]) -> bool:
        if isinstance(d.get("response"), dict) and "candidates" not in d:
            if d.get("traceId"):
                self.response.extra["trace_id"] = d["traceId"]
            d = d["response"]  # Code Assist envelope
        if isinstance(d.get("error"), dict):
            self.error = gemini_error(d["error"], raw=d)
            return False
        try:
            return self._content(d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._parse_error(f"malformed GenerateContentResponse: {exc!r}", d)
            return False

    def _content(self, d: dict[str, Any]) -> bool:
        r = self.response
        r.model = d.get("modelVersion") or r.model
        r.response_id = d.get("responseId") or r.response_id
        if isinstance(d.get("usageMetadata"), dict):
            self._usage = d["usageMetadata"]
            r.usage = gemini_usage(self._usage)
        feedback = d.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = str(feedback["blockReason"])
            r.extra["prompt_feedback"] = feedback
            r.stop_reason = reason
            self.finished = True
            self.error = FlowError(
                type=ErrorType.CONTENT_FILTER,
                message=f"prompt blocked: {reason} {feedback.get('blockReasonMessage') or ''}",
                raw=feedback,
                code=reason,
                retryable=False,
            )
        output = False
        for cand in d.get("candidates") or []:
            if isinstance(cand, dict):
                output = self._candidate(cand) or output
        return output

    def _candidate(self, cand: dict[str, Any]) -> bool:
        r = self.response
        index = cand.get("index") or 0
        content = cand.get("content") if isinstance(cand.get("content"), dict) else {}
        parts = [p for p in (content or {}).get("parts") or [] if isinstance(p, dict)]
        if index != 0:
            # Extra candidates (candidateCount > 1): keep their text apart from the answer.
            others = r.extra.setdefault("other_candidates", {})
            key = str(index)
            others[key] = others.get(key, "") + "".join(
                p.get("text") or "" for p in parts if not p.get("thought")
            )
            return False
        output = False
        for p in parts:
            output = self._part(p) or output
        reason = cand.get("finishReason")
        if reason:
            r.stop_reason = str(reason)
            self.finished = True  # the last chunk of a stream carries the finishReason
            if cand.get("finishMessage"):
                r.extra["finish_message"] = cand["finishMessage"]
            if reason in _FILTERED:
                self.error = FlowError(
                    type=ErrorType.CONTENT_FILTER,
                    message=f"output blocked: {reason} {cand.get('finishMessage') or ''}".strip(),
                    raw={k: v for k, v in cand.items() if k != "content"},
                    code=str(reason),
                    retryable=False,
                )
        return output

    def _part(self, p: dict[str, Any]) -> bool:
        r = self.response
        if p.get("thoughtSignature"):
            r.extra.setdefault("thought_signatures", []).append(p["thoughtSignature"])
        if "text" in p:
            text = str(p.get("text") or "")
            if p.get("thought"):
                r.thinking += text
            else:
                r.text += text
            return bool(text)
        fc = p.get("functionCall")
        if isinstance(fc, dict):
            args = fc.get("args") if fc.get("args") is not None else {}
            r.tool_calls.append(
                ToolCall(
                    id=fc.get("id"),
                    name=str(fc.get("name") or ""),
                    arguments=args,
                    arguments_raw=json.dumps(args, ensure_ascii=False),
                )
            )
            return True
        # executableCode, codeExecutionResult, inlineData (images) …: kept, not rebuilt.
        r.extra.setdefault("other_parts", []).append(p)
        return False

    def _unparsed(self, text: str) -> None:
        """A chunk that is not JSON: a torn mid-stream error is still worth reporting as one."""
        if '"error"' in text:
            status = re.search(r'"status"\s*:\s*"([A-Z_]+)"', text)
            code = re.search(r'"code"\s*:\s*(\d+)', text)
            message = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
            self.error = gemini_error(
                {
                    "status": status.group(1) if status else None,
                    "code": int(code.group(1)) if code else None,
                    "message": message.group(1) if message else text[:500],
                },
                raw=text[:2000],
            )
            return
        self._parse_error(f"chunk is not JSON: {text[:200]!r}", text[:2000])

    def _parse_error(self, message: str, raw: Any) -> None:
        self.response.extra.setdefault("parse_errors", []).append(message)
        if self.error is None:
            self.error = FlowError(type=ErrorType.PARSE, message=message, raw=raw)

"""OpenAI Chat Completions: request parsing and response assembly (docs/wire-formats.md §1, §8).

Also covers the compatible servers that reuse the format (DeepSeek, OpenRouter, vLLM, Groq…):
reasoning in ``delta.reasoning_content`` / ``delta.reasoning`` / ``reasoning_details``, usage in
any chunk (DeepSeek sends it with ``finish_reason``), an ``error`` object inside a 200 stream.
"""

from __future__ import annotations

import json
from typing import Any

from flowbook.model import (
    ErrorType,
    FlowError,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    StreamEvent,
    ToolCall,
)
from flowbook.providers.base import Assembler, parse_arguments, truncated_error
from flowbook.providers.openai_common import as_dict, chat_usage, content_parts, openai_error

SYSTEM_ROLES = ("system", "developer")


def parse_chat_messages(messages: Any) -> tuple[list[Message], str | None]:
    """Chat ``messages`` → (provider-neutral messages, joined system/developer prompt)."""
    out: list[Message] = []
    system: list[str] = []
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role") or "user")
        parts = content_parts(m.get("content"))
        if role in SYSTEM_ROLES:
            system.append("\n".join(p.text or "" for p in parts if p.type == "text"))
            continue
        if role in ("tool", "function"):
            text = "".join(p.text or "" for p in parts if p.type == "text")
            result = text if all(p.type == "text" for p in parts) else m.get("content")
            parts = [
                Part(
                    type="tool_result",
                    tool_call_id=m.get("tool_call_id"),
                    name=m.get("name"),
                    content=result,
                )
            ]
            role = "tool"
        thinking = m.get("reasoning_content") or m.get("reasoning")
        if isinstance(thinking, str) and thinking:
            parts.insert(0, Part(type="thinking", text=thinking))
        if isinstance(m.get("refusal"), str):
            parts.append(Part(type="text", text=m["refusal"]))
        calls = list(m.get("tool_calls") or [])
        if isinstance(m.get("function_call"), dict):
            calls.append({"function": m["function_call"]})
        for c in calls:
            if not isinstance(c, dict):
                continue
            fn = as_dict(c.get("function")) or c
            raw = fn.get("arguments")
            args = raw if not isinstance(raw, str) else parse_arguments(raw)
            parts.append(
                Part(type="tool_call", id=c.get("id"), name=fn.get("name"), arguments=args)
            )
        out.append(Message(role=role, parts=parts, name=m.get("name")))
    return out, ("\n\n".join(system) if system else None)


class ChatAssembler(Assembler):
    """Folds ``chat.completion.chunk`` events (or one ``chat.completion`` body) into the response.

    Only choice 0 is rebuilt (``n > 1`` is rare and the other choices stay in the raw body).
    """

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        super().__init__(request, response)
        self._calls: dict[int, ToolCall] = {}  # keyed on delta index, not id (§1.4)
        # Truncation check: a stream that ends with neither [DONE] nor a finish_reason was cut.
        self._chunks = 0
        self._done = False
        self._whole = False

    def _meta(self, data: dict[str, Any]) -> None:
        if not self.response.model and isinstance(data.get("model"), str):
            self.response.model = data["model"]
        if not self.response.response_id and isinstance(data.get("id"), str):
            self.response.response_id = data["id"]
        if data.get("error") is not None:
            self.error = openai_error(None, data, default_message="error in stream")
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.response.usage = chat_usage(usage)
            if "cost" in usage:  # OpenRouter reports what the call cost (credits ≈ USD)
                self.response.extra["provider_cost"] = usage["cost"]

    def _call(self, index: int, id_: Any, name: Any) -> ToolCall:
        call = self._calls.get(index)
        if call is None:
            call = ToolCall(id=id_ if isinstance(id_, str) else None, name="")
            self._calls[index] = call
            self.response.tool_calls.append(call)
        if not call.id and isinstance(id_, str):
            call.id = id_
        if not call.name and isinstance(name, str):
            call.name = name
        return call

    def feed(self, event: StreamEvent) -> bool:
        data = event.data
        if isinstance(data, str):
            if data.strip() == "[DONE]":
                self._done = self.finished = True
            elif data.strip():
                self._parse_problem(f"stream data is not JSON: {data[:200]!r}")
            return False
        if not isinstance(data, dict):
            return False
        self._chunks += 1
        self._meta(data)
        carried = False
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or (choice.get("index") or 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            carried |= self._delta(delta) if isinstance(delta, dict) else False
            if choice.get("finish_reason"):
                self.response.stop_reason = str(choice["finish_reason"])
        return carried

    def _delta(self, delta: dict[str, Any]) -> bool:
        r = self.response
        carried = False
        if isinstance(delta.get("content"), str) and delta["content"]:
            r.text += delta["content"]
            carried = True
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            r.refusal = (r.refusal or "") + delta["refusal"]
            carried = True
        thinking = _reasoning_text(delta)
        if thinking:
            r.thinking += thinking
            carried = True
        calls = list(delta.get("tool_calls") or [])
        if isinstance(delta.get("function_call"), dict):  # legacy functions API
            calls.append({"index": -1, "function": delta["function_call"]})
        for pos, tc in enumerate(calls):
            if not isinstance(tc, dict):
                continue
            fn = as_dict(tc.get("function"))
            index = tc["index"] if isinstance(tc.get("index"), int) else pos
            call = self._call(index, tc.get("id"), fn.get("name"))
            args = fn.get("arguments")
            if isinstance(args, (dict, list)):  # some servers send an object, not a string
                args = json.dumps(args)
            if isinstance(args, str) and args:
                call.arguments_raw += args
            carried = True
        return carried

    def feed_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            self._parse_problem("response body is not a JSON object")
            return
        self._whole = True
        self.feed(StreamEvent(t=0.0, event=None, data=body))

    def finish(self) -> None:
        for call in self.response.tool_calls:
            call.arguments = parse_arguments(call.arguments_raw)
        cut = self._chunks and not self._whole and not self._done
        if cut and self.response.stop_reason is None and self.error is None:
            self.error = truncated_error("[DONE] or a finish_reason")

    def _parse_problem(self, message: str) -> None:
        # A provider's own error is more useful than our complaint about a malformed line.
        if self.error is None:
            self.error = FlowError(type=ErrorType.PARSE, message=message)


def _reasoning_text(delta: dict[str, Any]) -> str:
    """Thinking text of a delta: DeepSeek/vLLM ``reasoning_content``, OpenRouter/vLLM
    ``reasoning`` and, when neither is a string, OpenRouter's ``reasoning_details``."""
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    out = []
    for d in delta.get("reasoning_details") or []:
        if isinstance(d, dict) and d.get("type") in ("reasoning.text", "reasoning.summary"):
            out.append(d.get("text") or d.get("summary") or "")
    return "".join(out)

"""OpenAI Responses API: request parsing and the response assembler (docs/wire-formats.md §2).

Stop reasons are mapped onto Chat's words so one filter works for both: a completed response
is ``stop`` (or ``tool_calls`` when it ends in function calls), an incomplete one carries its
``incomplete_details.reason`` (``max_output_tokens``, ``content_filter``), a failed one ``failed``.
"""

from __future__ import annotations

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
from flowbook.providers.openai_common import as_dict, content_parts, openai_error, responses_usage

_CALL_ITEMS = ("function_call", "custom_tool_call")
_ARG_DELTAS = ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_ARG_DONES = ("response.function_call_arguments.done", "response.custom_tool_call_input.done")


def parse_responses_input(items: Any, instructions: Any = None) -> tuple[list[Message], str | None]:
    """Responses ``input`` (string or items) + ``instructions`` → (messages, system prompt)."""
    system: list[str] = [instructions] if isinstance(instructions, str) and instructions else []
    out: list[Message] = []

    def add(role: str, parts: list[Part]) -> None:
        # Consecutive assistant items (reasoning, text, calls) form one turn, as in Chat.
        if out and out[-1].role == role == "assistant":
            out[-1].parts.extend(parts)
        else:
            out.append(Message(role=role, parts=parts))

    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, dict):
            continue
        kind = it.get("type") or "message"
        if kind == "message":
            role = str(it.get("role") or "user")
            parts = content_parts(it.get("content"))
            if role in ("system", "developer"):
                system.append("\n".join(p.text or "" for p in parts if p.type == "text"))
            else:
                add(role, parts)
        elif kind in _CALL_ITEMS:
            raw = it.get("arguments", it.get("input"))
            args = parse_arguments(raw) if isinstance(raw, str) else raw
            part = Part(type="tool_call", id=it.get("call_id"), name=it.get("name"), arguments=args)
            add("assistant", [part])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            part = Part(
                type="tool_result", tool_call_id=it.get("call_id"), content=it.get("output")
            )
            add("tool", [part])
        elif kind == "reasoning":
            summary = "\n\n".join(
                s.get("text") or "" for s in it.get("summary") or [] if isinstance(s, dict)
            )
            hidden = bool(it.get("encrypted_content")) and not summary
            add("assistant", [Part(type="thinking", text=summary, redacted=hidden)])
        else:
            add("assistant" if kind.endswith("_call") else "user", [Part(type="other", content=it)])
    return out, ("\n\n".join(system) if system else None)


class ResponsesAssembler(Assembler):
    """Folds Responses stream events (or one ``response`` object) into the response."""

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        super().__init__(request, response)
        self._calls: dict[str, ToolCall] = {}  # keyed on item id (fallback: output_index)
        self._summary_parts = 0
        # A stream ends with response.completed / incomplete / failed; without one it was cut.
        self._streamed = False
        self._ended = False

    def _call(self, key: str, item: dict[str, Any] | None = None) -> ToolCall:
        call = self._calls.get(key)
        if call is None:
            call = ToolCall(id=None, name="")
            self._calls[key] = call
            self.response.tool_calls.append(call)
        if item:
            call.id = call.id or item.get("call_id") or item.get("id")
            call.name = call.name or str(item.get("name") or "")
            if item.get("type") == "custom_tool_call":
                call.type = "custom"
        return call

    @staticmethod
    def _key(data: dict[str, Any]) -> str:
        item = as_dict(data.get("item"))
        key = data.get("item_id") or item.get("id")
        return str(key) if key else f"#{data.get('output_index', 0)}"

    def feed(self, event: StreamEvent) -> bool:
        data = event.data
        if not isinstance(data, dict):
            if isinstance(data, str) and data.strip() not in ("", "[DONE]"):
                self._parse_problem(f"stream data is not JSON: {data[:200]!r}")
            return False
        kind = str(data.get("type") or event.event or "")
        self._streamed = True
        self._ended = self._ended or kind in _TERMINAL or kind == "error"
        self.finished = self._ended
        r = self.response
        delta = data.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str):
            r.text += delta
            return bool(delta)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            r.thinking += delta if isinstance(delta, str) else ""
            return bool(delta)
        if kind == "response.reasoning_summary_part.added":
            if self._summary_parts and r.thinking:
                r.thinking += "\n\n"
            self._summary_parts += 1
            return False
        if kind == "response.refusal.delta" and isinstance(delta, str):
            r.refusal = (r.refusal or "") + delta
            return bool(delta)
        if kind in _ARG_DELTAS:
            self._call(self._key(data)).arguments_raw += delta if isinstance(delta, str) else ""
            return True
        if kind in _ARG_DONES:
            final = data.get("arguments", data.get("input"))
            if isinstance(final, str):
                self._call(self._key(data)).arguments_raw = final
            return False
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") in _CALL_ITEMS:
                call = self._call(self._key(data), item)
                final = item.get("arguments", item.get("input"))
                if kind.endswith(".done") and isinstance(final, str) and final:
                    call.arguments_raw = final
                return kind.endswith(".added")
            return False
        if kind == "error":
            self.error = openai_error(None, data, default_message="error in stream")
            return False
        if isinstance(data.get("response"), dict):
            self._response_object(data["response"], kind)
        return False

    def _response_object(self, obj: dict[str, Any], kind: str) -> None:
        """response.created / in_progress / completed / incomplete / failed (and bodies)."""
        r = self.response
        r.response_id = r.response_id or obj.get("id")
        if isinstance(obj.get("model"), str):
            r.model = obj["model"]
        if isinstance(obj.get("usage"), dict):
            r.usage = responses_usage(obj["usage"])
        status = obj.get("status") or kind.rpartition(".")[2]
        if status == "completed":
            self._fill_from_output(obj.get("output"))
            r.stop_reason = "tool_calls" if r.tool_calls else "stop"
        elif status == "incomplete":
            self._fill_from_output(obj.get("output"))
            reason = (obj.get("incomplete_details") or {}).get("reason") or "incomplete"
            r.stop_reason = str(reason)
            etype = ErrorType.CONTENT_FILTER if reason == "content_filter" else ErrorType.OTHER
            self.error = FlowError(
                type=etype, message=f"response incomplete: {reason}", raw=obj, code=str(reason)
            )
        elif status == "failed":
            r.stop_reason = "failed"
            self.error = openai_error(
                None, {"error": obj.get("error") or {}}, default_message="response failed"
            )

    def _fill_from_output(self, output: Any) -> None:
        """Take text and calls from the final output when no delta carried them (bodies,
        or a stream whose deltas were lost)."""
        r = self.response
        texts: list[str] = []
        for item in output if isinstance(output, list) else []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                for c in item.get("content") or []:
                    if isinstance(c, dict) and c.get("type") == "output_text":
                        texts.append(c.get("text") or "")
                    elif isinstance(c, dict) and c.get("type") == "refusal" and not r.refusal:
                        r.refusal = c.get("refusal")
            elif item.get("type") in _CALL_ITEMS:
                call = self._call(str(item.get("id") or item.get("call_id")), item)
                final = item.get("arguments", item.get("input"))
                if isinstance(final, str) and not call.arguments_raw:
                    call.arguments_raw = final
            elif item.get("type") == "reasoning" and not r.thinking:
                r.thinking = "\n\n".join(
                    s.get("text") or "" for s in item.get("summary") or [] if isinstance(s, dict)
                )
        if not r.text and texts:
            r.text = "".join(texts)

    def feed_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            self._parse_problem("response body is not a JSON object")
            return
        if body.get("error") and body.get("object") != "response":
            self.error = openai_error(None, body)
            return
        self._response_object(body, "response." + str(body.get("status") or "completed"))

    def finish(self) -> None:
        for call in self.response.tool_calls:
            call.arguments = parse_arguments(call.arguments_raw)
        if self._streamed and not self._ended and self.error is None:
            self.error = truncated_error("response.completed")

    def _parse_problem(self, message: str) -> None:
        if self.error is None:
            self.error = FlowError(type=ErrorType.PARSE, message=message)

"""OpenAI Responses as a codec: neutral model → request, response and stream bodies.

The inverse of :mod:`flowbook.providers.openai_responses` (docs/wire-formats.md §2). The body is
a ``response`` object whose ``output`` holds a ``reasoning`` item (when there is thinking), a
``message`` item with ``output_text`` and one ``function_call`` item per tool call. The stream is
the documented event sequence with a ``sequence_number`` on every event: ``response.created``,
``response.in_progress``, per item ``output_item.added`` … deltas … ``output_item.done``, then
``response.completed`` carrying the whole body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message, Tool
from flowbook.providers.codec import WireCodec, call_dicts, dumps, new_id
from flowbook.providers.openai_encode import content_value, tool_result_text
from flowbook.streams.sse import encode_sse


def responses_input(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages → Responses ``input`` items."""
    out: list[dict[str, Any]] = []
    for m in messages:
        text_type = "output_text" if m.role == "assistant" else "input_text"
        content = content_value(m.parts, text_type)
        if content != []:
            out.append({"role": m.role, "content": content})
        for p in m.parts:
            if p.type == "thinking":
                summary = [{"type": "summary_text", "text": p.text or ""}] if p.text else []
                out.append({"type": "reasoning", "summary": summary})
            elif p.type == "tool_call":
                args = p.arguments if isinstance(p.arguments, str) else json.dumps(p.arguments)
                out.append(
                    {"type": "function_call", "call_id": p.id, "name": p.name, "arguments": args}
                )
            elif p.type == "tool_result":
                out.append(
                    {
                        "type": "function_call_output",
                        "call_id": p.tool_call_id,
                        "output": tool_result_text(p.content),
                    }
                )
    return out


def responses_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in tools:
        d: dict[str, Any] = {"type": t.type}
        if t.type == "function":
            d["name"] = t.name
            if t.description is not None:
                d["description"] = t.description
            if t.parameters is not None:
                d["parameters"] = t.parameters
        out.append(d)
    return out


class ResponsesCodec(WireCodec):
    """``/v1/responses`` (OpenAI, Azure, the Codex backend, compatible servers)."""

    api: ClassVar[Api] = Api.RESPONSES
    response_list_key = "output"
    param_paths: ClassVar[dict[str, str]] = {"max_tokens": "max_output_tokens"}

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.openai_responses import ResponsesAssembler

        return ResponsesAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": request.model}
        if request.system:
            body["instructions"] = request.system
        body["input"] = responses_input(request.messages)
        body.update(request.params)
        if request.tools:
            body["tools"] = responses_tools(request.tools)
        if request.stream:
            body["stream"] = True
        return dumps(body)

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        calls = call_dicts(response.tool_calls)
        output: list[dict[str, Any]] = []
        if response.thinking:
            output.append(
                {
                    "id": new_id("rs_"),
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": response.thinking}],
                }
            )
        if response.text or not calls:
            part = {"type": "output_text", "text": response.text, "annotations": []}
            output.append(
                {
                    "id": new_id("msg_"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        for c in calls:
            output.append(
                {
                    "id": new_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": c.get("id") or new_id("call_"),
                    "name": c["name"],
                    "arguments": json.dumps(c["arguments"]),
                }
            )
        u = response.usage
        inp, out = (u.input, u.output) if u else (0, 0)
        return {
            "id": response.response_id or new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": response.model or model or "flowbook-mock",
            "output": output,
            "usage": {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out},
        }

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        seq = 0

        def emit(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            seq += 1
            return encode_sse({"type": kind, **fields, "sequence_number": seq - 1}, kind)

        pending = {**body, "status": "in_progress", "output": [], "usage": None}
        yield emit("response.created", response=pending)
        yield emit("response.in_progress", response=pending)
        for oi, item in enumerate(body.get("output") or []):
            iid = item.get("id", f"item_{oi}")
            kind = item.get("type")
            if kind == "message":
                added = {**item, "status": "in_progress", "content": []}
                yield emit("response.output_item.added", output_index=oi, item=added)
                for ci, part in enumerate(item.get("content") or []):
                    text = part.get("text", "")
                    at = {"item_id": iid, "output_index": oi, "content_index": ci}
                    yield emit("response.content_part.added", **at, part={**part, "text": ""})
                    yield emit("response.output_text.delta", **at, delta=text, logprobs=[])
                    yield emit("response.output_text.done", **at, text=text, logprobs=[])
                    yield emit("response.content_part.done", **at, part=part)
            elif kind == "function_call":
                args = item.get("arguments", "")
                added = {**item, "status": "in_progress", "arguments": ""}
                yield emit("response.output_item.added", output_index=oi, item=added)
                at = {"item_id": iid, "output_index": oi}
                yield emit("response.function_call_arguments.delta", **at, delta=args)
                yield emit("response.function_call_arguments.done", **at, arguments=args)
            elif kind == "reasoning":
                yield emit(
                    "response.output_item.added", output_index=oi, item={**item, "summary": []}
                )
                for si, s in enumerate(item.get("summary") or []):
                    at = {"item_id": iid, "output_index": oi, "summary_index": si}
                    text = s.get("text", "")
                    empty = {"type": "summary_text", "text": ""}
                    yield emit("response.reasoning_summary_part.added", **at, part=empty)
                    yield emit("response.reasoning_summary_text.delta", **at, delta=text)
                    yield emit("response.reasoning_summary_text.done", **at, text=text)
                    yield emit("response.reasoning_summary_part.done", **at, part=s)
            else:
                yield emit("response.output_item.added", output_index=oi, item=item)
            yield emit("response.output_item.done", output_index=oi, item=item)
        done = {**body, "status": body.get("status") or "completed"}
        yield emit("response.completed", response=done)

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }

    def set_system(self, body: dict[str, Any], system: str) -> None:
        body["instructions"] = system

    def validate_request(self, body: dict[str, Any]) -> None:
        from flowbook.providers.codec import EditError

        if "input" in body and not isinstance(body["input"], (str, list)):
            raise EditError("request_body: 'input' must be a string or a list")


RESPONSES = ResponsesCodec()

"""OpenAI Chat Completions as a codec: neutral model → request, response and stream bodies.

The inverse of :mod:`flowbook.providers.openai_chat` (docs/wire-formats.md §1). A stream is
``chat.completion.chunk`` SSE events: a role chunk, the content, one fragment per tool call, a
chunk with ``finish_reason``, a usage chunk with empty ``choices`` (what
``stream_options.include_usage`` adds) and ``data: [DONE]``. Thinking travels as
``reasoning_content`` (DeepSeek, vLLM), which OpenAI's SDK passes through untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message, Part, Tool
from flowbook.providers.codec import WireCodec, call_dicts, check_roles, dumps, new_id
from flowbook.streams.sse import encode_sse


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if value is not None else {})


def content_value(parts: list[Part], text_type: str = "text") -> Any:
    """Message content: a plain string for one text part, else a list of typed parts."""
    content = [p for p in parts if p.type in ("text", "image", "document", "other")]
    if len(content) == 1 and content[0].type == "text":
        return content[0].text or ""
    out: list[Any] = []
    for p in content:
        if p.type == "text":
            out.append({"type": text_type, "text": p.text or ""})
        elif p.type == "image":
            url = p.url or f"data:{p.media_type or 'image/png'};base64,{p.data or ''}"
            if text_type == "text":
                out.append({"type": "image_url", "image_url": {"url": url}})
            else:
                out.append({"type": "input_image", "image_url": url})
        elif p.type == "document":
            f = {"filename": p.text, "file_data": p.data, "file_id": p.url}
            out.append({"type": "file", "file": {k: v for k, v in f.items() if v is not None}})
        elif isinstance(p.content, dict):
            out.append(p.content)
    return out


def tool_result_text(content: Any) -> str:
    """A tool result as the string Chat and Responses expect."""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False) if content is not None else ""


def chat_messages(messages: list[Message], system: str | None) -> list[dict[str, Any]]:
    """Neutral messages (and the system prompt, first) → Chat ``messages``."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m.role == "tool":
            for p in m.parts:
                if p.type == "tool_result":
                    msg: dict[str, Any] = {"role": "tool", "tool_call_id": p.tool_call_id}
                    msg["content"] = tool_result_text(p.content)
                    if p.name:
                        msg["name"] = p.name
                    out.append(msg)
            continue
        msg = {"role": m.role}
        calls = [p for p in m.parts if p.type == "tool_call"]
        content = content_value(m.parts)
        msg["content"] = content if content != [] or not calls else None
        thinking = "".join(p.text or "" for p in m.parts if p.type == "thinking")
        if thinking:
            msg["reasoning_content"] = thinking
        if calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c.arguments)},
                }
                for c in calls
            ]
        if m.name:
            msg["name"] = m.name
        out.append(msg)
    return out


def chat_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in tools:
        if t.type != "function":
            out.append({"type": t.type})
            continue
        fn: dict[str, Any] = {"name": t.name}
        if t.description is not None:
            fn["description"] = t.description
        if t.parameters is not None:
            fn["parameters"] = t.parameters
        out.append({"type": "function", "function": fn})
    return out


class ChatCodec(WireCodec):
    """``/chat/completions`` of OpenAI and every OpenAI-compatible server."""

    api: ClassVar[Api] = Api.CHAT
    messages_key = "messages"
    response_list_key = "choices"

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.openai_chat import ChatAssembler

        return ChatAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": request.model}
        body["messages"] = chat_messages(request.messages, request.system)
        body.update(request.params)
        if request.tools:
            body["tools"] = chat_tools(request.tools)
        if request.stream:
            body["stream"] = True
        return dumps(body)

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        calls = call_dicts(response.tool_calls)
        text = response.text
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
        }
        if response.thinking:
            message["reasoning_content"] = response.thinking
        if response.refusal:
            message["refusal"] = response.refusal
        if calls:
            message["tool_calls"] = [
                {
                    "id": c.get("id") or new_id("call_"),
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for c in calls
            ]
        u = response.usage
        inp, out = (u.input, u.output) if u else (0, 0)
        return {
            "id": response.response_id or new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": response.model or model or "flowbook-mock",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": response.stop_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
        }

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        base = {
            "id": body.get("id", "chatcmpl-flowbook"),
            "object": "chat.completion.chunk",
            "created": body.get("created", 0),
            "model": body.get("model", ""),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return encode_sse({**base, "choices": [choice]})

        choice = (body.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        yield chunk({"role": "assistant", "content": ""})
        if msg.get("reasoning_content"):
            yield chunk({"reasoning_content": msg["reasoning_content"]})
        if msg.get("content"):
            yield chunk({"content": msg["content"]})
        if msg.get("refusal"):
            yield chunk({"refusal": msg["refusal"]})
        for i, call in enumerate(msg.get("tool_calls") or []):
            fn = call.get("function") or {}
            frag = {
                "index": i,
                "id": call.get("id"),
                "type": "function",
                "function": {"name": fn.get("name"), "arguments": fn.get("arguments", "")},
            }
            yield chunk({"tool_calls": [frag]})
        yield chunk({}, choice.get("finish_reason") or "stop")
        if body.get("usage"):
            yield encode_sse({**base, "choices": [], "usage": body["usage"]})
        yield encode_sse("[DONE]")

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }

    def param_path(self, name: str, body: dict[str, Any]) -> str:
        # Newer models take max_completion_tokens; a body that already uses it keeps it.
        if name == "max_tokens" and "max_completion_tokens" in body:
            return "max_completion_tokens"
        return super().param_path(name, body)

    def set_system(self, body: dict[str, Any], system: str) -> None:
        messages = body.setdefault("messages", [])
        first = messages[0] if messages else None
        if isinstance(first, dict) and first.get("role") in ("system", "developer"):
            first["content"] = system
        else:
            messages.insert(0, {"role": "system", "content": system})

    def validate_request(self, body: dict[str, Any]) -> None:
        super().validate_request(body)
        if isinstance(body.get("messages"), list):
            check_roles(body["messages"])


CHAT = ChatCodec()

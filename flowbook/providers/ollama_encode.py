"""Ollama's native API as codecs: ``/api/chat`` and ``/api/generate``.

The inverse of :mod:`flowbook.providers.ollama` (docs/wire-formats.md §8). A non-streamed body is
one object with ``done: true``; a stream is NDJSON: one line with the content (chat:
``message.content``/``thinking``/``tool_calls``; generate: ``response``/``thinking``) and a last
line with ``done: true``, ``done_reason`` and the token counts (``prompt_eval_count`` in,
``eval_count`` out). Tool-call arguments are JSON objects, not strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message
from flowbook.providers.codec import NDJSON_TYPE, WireCodec, call_dicts, check_roles, dumps
from flowbook.providers.openai_encode import chat_tools, tool_result_text
from flowbook.streams.ndjson import encode_ndjson


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def ollama_messages(messages: list[Message], system: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m.role == "tool":
            for p in m.parts:
                if p.type == "tool_result":
                    result = {"role": "tool", "content": tool_result_text(p.content)}
                    out.append({**result, "tool_name": p.name} if p.name else result)
            continue
        msg: dict[str, Any] = {"role": m.role}
        msg["content"] = "".join(p.text or "" for p in m.parts if p.type == "text")
        thinking = "".join(p.text or "" for p in m.parts if p.type == "thinking")
        if thinking:
            msg["thinking"] = thinking
        images = [p.data for p in m.parts if p.type == "image" and p.data]
        if images:
            msg["images"] = images
        calls = [p for p in m.parts if p.type == "tool_call"]
        if calls:
            msg["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments or {}}} for c in calls
            ]
        out.append(msg)
    return out


class OllamaChatCodec(WireCodec):
    """Ollama ``/api/chat``."""

    api: ClassVar[Api] = Api.CHAT
    messages_key: ClassVar[str | None] = "messages"
    param_paths: ClassVar[dict[str, str]] = {
        "temperature": "options.temperature",
        "top_p": "options.top_p",
        "max_tokens": "options.num_predict",
    }

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.ollama import OllamaAssembler

        return OllamaAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": request.model}
        body["messages"] = ollama_messages(request.messages, request.system)
        if request.tools:
            body["tools"] = chat_tools(request.tools)
        body.update(request.params)
        body["stream"] = request.stream  # absent means streamed, so always say it
        return dumps(body)

    def _content(self, response: LLMResponse) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": response.text}
        if response.thinking:
            msg["thinking"] = response.thinking
        calls = call_dicts(response.tool_calls)
        if calls:
            msg["tool_calls"] = [
                {"function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls
            ]
        return {"message": msg}

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": response.model or model or "flowbook-mock"}
        body["created_at"] = _now()
        body.update(self._content(response))
        body["done"] = True
        body["done_reason"] = response.stop_reason or "stop"
        u = response.usage
        body["prompt_eval_count"] = u.input if u else 0
        body["eval_count"] = u.output if u else 0
        return body

    def stream_content_type(self, request: LLMRequest | None = None) -> str:
        return NDJSON_TYPE

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        head = {"model": body.get("model"), "created_at": body.get("created_at")}
        content = {k: v for k, v in body.items() if k in ("message", "response", "thinking")}
        yield encode_ndjson({**head, **content, "done": False})
        last = {k: v for k, v in body.items() if k not in content}
        if "message" in content:
            last["message"] = {"role": "assistant", "content": ""}
        else:
            last["response"] = ""
        yield encode_ndjson({**last, "done": True})

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        return {"error": message}

    def set_system(self, body: dict[str, Any], system: str) -> None:
        messages = body.setdefault("messages", [])
        first = messages[0] if messages else None
        if isinstance(first, dict) and first.get("role") == "system":
            first["content"] = system
        else:
            messages.insert(0, {"role": "system", "content": system})

    def validate_request(self, body: dict[str, Any]) -> None:
        super().validate_request(body)
        if isinstance(body.get("messages"), list):
            check_roles(body["messages"])


class OllamaGenerateCodec(OllamaChatCodec):
    """Ollama ``/api/generate``: one prompt in, ``response`` text out."""

    api: ClassVar[Api] = Api.GENERATE
    messages_key = None

    def encode_request(self, request: LLMRequest) -> bytes:
        prompt = "\n\n".join(m.text for m in request.messages if m.role == "user")
        body: dict[str, Any] = {"model": request.model, "prompt": prompt}
        if request.system:
            body["system"] = request.system
        images = [p.data for m in request.messages for p in m.parts if p.type == "image" and p.data]
        if images:
            body["images"] = images
        body.update(request.params)
        body["stream"] = request.stream
        return dumps(body)

    def _content(self, response: LLMResponse) -> dict[str, Any]:
        out: dict[str, Any] = {"response": response.text}
        if response.thinking:
            out["thinking"] = response.thinking
        return out

    def set_system(self, body: dict[str, Any], system: str) -> None:
        body["system"] = system


OLLAMA_CHAT = OllamaChatCodec()
OLLAMA_GENERATE = OllamaGenerateCodec()

"""Gemini ``generateContent`` as a codec: neutral model → request, response and stream bodies.

The inverse of :mod:`flowbook.providers.gemini` and its assembler (docs/wire-formats.md §4). The
body is a ``GenerateContentResponse`` (one candidate whose ``content.parts`` hold thought text,
text and ``functionCall`` parts; ``usageMetadata``); a stream is the same object as chunks: SSE
with CRLF line ends for ``alt=sse``, otherwise one JSON array written element by element. Gemini
names the model in the URL, so edits of the model rewrite the path. Code Assist
(``cloudcode-pa``) wraps the request as ``{model, project, request}`` and each response chunk as
``{response}``: the ``wrapped`` codec does that.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, Message, Part, Tool
from flowbook.providers.codec import JSON_TYPE, SSE_TYPE, WireCodec, call_dicts, dumps
from flowbook.streams.json_array import encode_json_array
from flowbook.streams.sse import encode_sse

# Request fields that sit beside generationConfig; every other param goes inside it.
_TOP_LEVEL = frozenset(
    {"safetySettings", "toolConfig", "cachedContent", "labels", "safety_settings", "tool_config"}
)
_ENVELOPE = ("project", "user_prompt_id")


def uses_sse(request: LLMRequest | None) -> bool:
    """Gemini streams SSE with ``alt=sse`` and a growing JSON array without it."""
    if request is None:
        return True
    return "alt=sse" in (request.url or request.path)


def _part(p: Part) -> dict[str, Any] | None:
    if p.type == "text":
        return {"text": p.text or ""}
    if p.type == "thinking":
        out: dict[str, Any] = {"text": p.text or "", "thought": True}
        if p.signature:
            out["thoughtSignature"] = p.signature
        return out
    if p.type == "tool_call":
        call = {"name": p.name, "args": p.arguments or {}}
        return {"functionCall": {"id": p.id, **call} if p.id else call}
    if p.type == "tool_result":
        content = p.content if isinstance(p.content, dict) else {"result": p.content}
        fr = {"name": p.name, "response": content}
        return {"functionResponse": {"id": p.tool_call_id, **fr} if p.tool_call_id else fr}
    if p.type in ("image", "document"):
        if p.data is not None:
            return {"inlineData": {"mimeType": p.media_type, "data": p.data}}
        return {"fileData": {"mimeType": p.media_type, "fileUri": p.url}}
    return p.content if isinstance(p.content, dict) else None


def gemini_contents(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages → ``contents`` (assistant is ``model``; tool results are user turns)."""
    out = []
    for m in messages:
        role = {"assistant": "model", "tool": "user"}.get(m.role, m.role)
        parts = [d for d in (_part(p) for p in m.parts) if d is not None]
        out.append({"role": role, "parts": parts})
    return out


def gemini_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    decls: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for t in tools:
        if t.type == "function":
            d: dict[str, Any] = {"name": t.name}
            if t.description is not None:
                d["description"] = t.description
            if t.parameters is not None:
                d["parameters"] = t.parameters
            decls.append(d)
        else:  # built-ins ({googleSearch: {}}) are named by their key
            out.append({t.type: t.parameters or {}})
    return ([{"functionDeclarations": decls}] if decls else []) + out


class GenerateContentCodec(WireCodec):
    """``models/{m}:generateContent`` and ``:streamGenerateContent`` (AI Studio, Vertex)."""

    api: ClassVar[Api] = Api.GENERATE_CONTENT
    messages_key = "contents"
    response_list_key = "candidates"
    param_paths: ClassVar[dict[str, str]] = {
        "temperature": "generationConfig.temperature",
        "top_p": "generationConfig.topP",
        "max_tokens": "generationConfig.maxOutputTokens",
    }

    def __init__(self, *, wrapped: bool = False) -> None:
        self.wrapped = wrapped

    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        from flowbook.providers.gemini_assembler import GeminiAssembler

        return GeminiAssembler(request, response)

    def encode_request(self, request: LLMRequest) -> bytes:
        body: dict[str, Any] = {"contents": gemini_contents(request.messages)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.tools:
            body["tools"] = gemini_tools(request.tools)
        config: dict[str, Any] = {}
        envelope: dict[str, Any] = {}
        for k, v in request.params.items():
            if self.wrapped and k in _ENVELOPE:
                envelope[k] = v
            elif k in _TOP_LEVEL:
                body[k] = v
            else:
                config[k] = v
        if config:
            body["generationConfig"] = config
        if self.wrapped:
            return dumps({"model": request.model, **envelope, "request": body})
        return dumps(body)

    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        calls = call_dicts(response.tool_calls)
        parts: list[dict[str, Any]] = []
        if response.thinking:
            parts.append({"text": response.thinking, "thought": True})
        if response.text or not calls:
            parts.append({"text": response.text})
        parts += [{"functionCall": {"name": c["name"], "args": c["arguments"]}} for c in calls]
        u = response.usage
        inp, out, thoughts = (u.input, u.output, u.reasoning) if u else (0, 0, 0)
        usage = {"promptTokenCount": inp, "candidatesTokenCount": out - thoughts}
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = inp + out
        body = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": response.stop_reason or "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": response.model or model or "flowbook-mock",
        }
        return {"response": body} if self.wrapped else body

    def stream_content_type(self, request: LLMRequest | None = None) -> str:
        return SSE_TYPE if uses_sse(request) else JSON_TYPE

    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        if uses_sse(request):
            yield encode_sse(body, sep="\r\n")
        else:
            yield from encode_json_array([body])

    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        status_name = "PERMISSION_DENIED" if status == 403 else "CANCELLED"
        return {"error": {"code": status, "message": message, "status": status_name}}

    def model_in_body(self) -> bool:
        return False

    def model_path(self, path: str, model: str) -> str:
        """Gemini names the model in the URL: ``…/models/{model}:generateContent``."""
        return re.sub(r"(/models/)[^/:]+(:)", lambda m: f"{m[1]}{model}{m[2]}", path, count=1)

    def validate_response(self, body: dict[str, Any]) -> None:
        """As for every codec, inside Code Assist's ``{"response": …}`` envelope when present."""
        inner = body.get("response")
        super().validate_response(
            inner if isinstance(inner, dict) and "candidates" not in body else body
        )

    def set_system(self, body: dict[str, Any], system: str) -> None:
        body["systemInstruction"] = {"parts": [{"text": system}]}


GENERATE_CONTENT = GenerateContentCodec()
CODE_ASSIST = GenerateContentCodec(wrapped=True)

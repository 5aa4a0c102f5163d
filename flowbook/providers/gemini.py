"""Gemini ``generateContent``: detection, request parsing, errors (docs/wire-formats.md §4, §9).

Three providers share one body format and one assembler
(:class:`~flowbook.providers.gemini_assembler.GeminiAssembler`, re-exported here):

* ``gemini``: the Gemini API, ``generativelanguage.googleapis.com/{v}/models/{m}:{method}``;
* ``gemini_vertex``: Vertex AI, ``…/publishers/google/models/{m}:{method}``;
* ``gemini_code_assist``: Gemini CLI / Code Assist, ``cloudcode-pa.googleapis.com/v1internal:
  {method}``, whose request is wrapped as ``{model, project, request:{…}}`` and each response
  chunk as ``{response:{…}, traceId}``.

The model is in the URL path (or the Code Assist wrapper), never in the Gemini body. Streaming
is the method ``streamGenerateContent``: with ``alt=sse`` the answer is SSE, without it one JSON
array that grows (framing ``json_array``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from flowbook.model import Api, FlowError, LLMRequest, LLMResponse, Message, Part, Tool
from flowbook.providers.base import (
    HOST,
    JSON_ARRAY,
    PATH,
    SHAPE,
    SSE,
    Assembler,
    Detection,
    Provider,
    RequestView,
    framing_for_content_type,
    generic_error,
    wire_request,
)
from flowbook.providers.codec import WireCodec
from flowbook.providers.gemini_assembler import GeminiAssembler, gemini_error, gemini_usage
from flowbook.providers.gemini_encode import CODE_ASSIST, GENERATE_CONTENT
from flowbook.providers.registry import register

__all__ = [
    "GeminiAssembler",
    "GeminiCodeAssistProvider",
    "GeminiProvider",
    "GeminiVertexProvider",
    "gemini_error",
    "gemini_usage",
    "parse_generate_body",
]

_API_PATH = re.compile(r"/(?:models|tunedModels)/([^/:]+):(\w+)$")
_VERTEX_PATH = re.compile(r"/publishers/google/models/([^/:]+):(\w+)$")
_CODE_ASSIST_PATH = re.compile(r"/v1internal:(\w+)$")
_BODY_KEYS = ("contents", "systemInstruction", "system_instruction", "tools")


def _api_for_method(method: str) -> Api:
    m = method.lower()
    if m in ("generatecontent", "streamgeneratecontent"):
        return Api.GENERATE_CONTENT
    if m in ("embedcontent", "batchembedcontents"):
        return Api.EMBEDDINGS
    return Api.OTHER


class GeminiProvider(Provider):
    """The Gemini API (AI Studio keys: ``x-goog-api-key`` header or ``?key=``)."""

    name = "gemini"
    hosts: tuple[str, ...] = ("generativelanguage.googleapis.com",)

    def _match(self, req: RequestView) -> re.Match[str] | None:
        if "/publishers/" in req.path_only:
            return None  # Vertex publisher paths belong to the Vertex providers
        return _API_PATH.search(req.path_only)

    def detect(self, req: RequestView) -> Detection | None:
        """Official host, else the ``models/{m}:method`` path, else a ``contents[].parts`` body.

        The host's OpenAI-compatible endpoint (``/v1beta/openai/…``) speaks OpenAI Chat, not
        generateContent: it is left to the ``gemini_openai`` provider.
        """
        if "/openai/" in req.path_only + "/":
            return None
        m = self._match(req)
        api = _api_for_method(m.group(2)) if m else Api.OTHER
        if req.host.lower() in self.hosts:
            return Detection(self.name, api, HOST)
        if m is not None:
            return Detection(self.name, api, PATH)
        if type(self) is GeminiProvider and _shape(req.json()):
            return Detection(self.name, Api.GENERATE_CONTENT, SHAPE)
        return None

    def _method(self, req: RequestView) -> str:
        m = self._match(req)
        return m.group(2) if m else ""

    def _model(self, req: RequestView, body: Any) -> str | None:
        m = self._match(req)
        return unquote(m.group(1)) if m else None

    def _inner(self, body: Any) -> Any:
        return body

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        """Contents → messages, systemInstruction → system; model and stream from the path."""
        out = wire_request(req)
        body = req.json()
        inner = self._inner(body)
        if isinstance(inner, dict):
            parse_generate_body(inner, out)
        out.model = self._model(req, body)
        out.stream = self._method(req).lower().startswith("stream")
        return out

    def framing(self, req: RequestView, api: str, content_type: str) -> str:
        """SSE for ``alt=sse``; a streamed call without it is one growing JSON array."""
        framing = framing_for_content_type(content_type)
        if framing == SSE:
            return SSE
        streamed = self._method(req).lower().startswith("stream")
        if streamed and "sse" not in req.query.get("alt", []):
            return JSON_ARRAY
        if streamed and not content_type.strip():
            return SSE
        return framing

    def codec(self, api: str) -> WireCodec | None:
        """generateContent (Code Assist: its wrapped form); embeddings have none."""
        if api != Api.GENERATE_CONTENT:
            return None
        return CODE_ASSIST if isinstance(self, GeminiCodeAssistProvider) else GENERATE_CONTENT

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        """The Gemini assembler (it also removes the Code Assist envelope)."""
        return GeminiAssembler(request, response)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        """``{"error":{code,message,status}}`` (or a one-element array of it) → FlowError."""
        if isinstance(body, list):  # a streamed call that failed answers with an array
            body = next((b for b in body if isinstance(b, dict) and "error" in b), body)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return gemini_error(body["error"], status=status, raw=body)
        return generic_error(status, body)


class GeminiVertexProvider(GeminiProvider):
    """Gemini on Vertex AI (``…/publishers/google/models/{m}:…``, OAuth Bearer)."""

    name = "gemini_vertex"

    def _match(self, req: RequestView) -> re.Match[str] | None:
        return _VERTEX_PATH.search(req.path_only)

    def detect(self, req: RequestView) -> Detection | None:
        """The publisher path decides; an ``aiplatform`` host makes it a host-strength match."""
        m = self._match(req)
        if m is None:
            return None
        host = req.host.lower()
        official = host.endswith(("aiplatform.googleapis.com", ".rep.googleapis.com"))
        return Detection(self.name, _api_for_method(m.group(2)), HOST if official else PATH)


class GeminiCodeAssistProvider(GeminiProvider):
    """Gemini CLI / Code Assist (``cloudcode-pa.googleapis.com/v1internal:…``), wrapped bodies."""

    name = "gemini_code_assist"
    hosts = ("cloudcode-pa.googleapis.com",)

    def _match(self, req: RequestView) -> re.Match[str] | None:
        return _CODE_ASSIST_PATH.search(req.path_only)

    def _method(self, req: RequestView) -> str:
        m = self._match(req)
        return m.group(1) if m else ""

    def detect(self, req: RequestView) -> Detection | None:
        """The Code Assist host (any ``v1internal`` method), or the path on another host."""
        m = self._match(req)
        api = _api_for_method(m.group(1)) if m else Api.OTHER
        host = req.host.lower()
        if host in self.hosts or host.endswith("-cloudcode-pa.googleapis.com"):
            return Detection(self.name, api, HOST)
        if m is not None:
            return Detection(self.name, api, PATH)
        body = req.json()
        if isinstance(body, dict) and "project" in body and _shape(body.get("request")):
            return Detection(self.name, Api.GENERATE_CONTENT, SHAPE)
        return None

    def _model(self, req: RequestView, body: Any) -> str | None:
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def _inner(self, body: Any) -> Any:
        return body.get("request") if isinstance(body, dict) else None

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        """Unwrap ``{model, project, request}``; the envelope's ids land in ``params``."""
        out = super().parse_request(req, api)
        body = req.json()
        if isinstance(body, dict):
            for key in ("project", "user_prompt_id"):
                if body.get(key) is not None:
                    out.params[key] = body[key]
        return out


def _shape(body: Any) -> bool:
    """Body-shape fallback: ``contents`` is a list of objects with ``parts``."""
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return False
    return any(isinstance(c, dict) and "parts" in c for c in body["contents"])


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    """Google's JSON accepts camelCase and snake_case field names alike."""
    return d.get(camel) if camel in d else d.get(snake)


def parse_generate_body(body: dict[str, Any], out: LLMRequest) -> LLMRequest:
    """Fill ``out`` from a ``GenerateContentRequest`` body (model and stream are set elsewhere)."""
    for c in body.get("contents") or []:
        if isinstance(c, dict):
            role = str(c.get("role") or "user")
            out.messages.append(
                Message(role="assistant" if role == "model" else role, parts=_parts(c))
            )
    system = _get(body, "systemInstruction", "system_instruction")
    if isinstance(system, str):
        out.system = system
    elif isinstance(system, dict):
        texts = [p.get("text") or "" for p in system.get("parts") or [] if isinstance(p, dict)]
        out.system = "\n".join(t for t in texts if t) or None
    for t in body.get("tools") or []:
        if isinstance(t, dict):
            out.tools.extend(_tools(t))
    config = _get(body, "generationConfig", "generation_config")
    params = dict(config) if isinstance(config, dict) else {}
    for k, v in body.items():
        if k not in _BODY_KEYS and k not in ("generationConfig", "generation_config"):
            params[k] = v
    out.params = params
    return out


def _parts(content: dict[str, Any]) -> list[Part]:
    return [_part(p) for p in content.get("parts") or [] if isinstance(p, dict)]


def _part(p: dict[str, Any]) -> Part:
    signature = _get(p, "thoughtSignature", "thought_signature")
    if "text" in p:
        if p.get("thought"):
            return Part(type="thinking", text=p.get("text") or "", signature=signature)
        return Part(type="text", text=p.get("text") or "")
    fc = _get(p, "functionCall", "function_call")
    if isinstance(fc, dict):
        return Part(
            type="tool_call", id=fc.get("id"), name=fc.get("name"), arguments=fc.get("args")
        )
    fr = _get(p, "functionResponse", "function_response")
    if isinstance(fr, dict):
        return Part(
            type="tool_result",
            tool_call_id=fr.get("id"),
            name=fr.get("name"),
            content=fr.get("response"),
        )
    inline = _get(p, "inlineData", "inline_data")
    if isinstance(inline, dict):
        mime = _get(inline, "mimeType", "mime_type")
        return Part(type=_media_kind(mime), media_type=mime, data=inline.get("data"))
    file = _get(p, "fileData", "file_data")
    if isinstance(file, dict):
        mime = _get(file, "mimeType", "mime_type")
        return Part(type=_media_kind(mime), media_type=mime, url=_get(file, "fileUri", "file_uri"))
    return Part(type="other", content=p)


def _media_kind(mime: Any) -> str:
    return "image" if isinstance(mime, str) and mime.startswith("image/") else "document"


def _tools(t: dict[str, Any]) -> list[Tool]:
    decls = _get(t, "functionDeclarations", "function_declarations")
    if isinstance(decls, list):
        return [
            Tool(
                name=str(d.get("name", "")),
                description=d.get("description"),
                parameters=d.get("parameters")
                or _get(d, "parametersJsonSchema", "parameters_json_schema"),
            )
            for d in decls
            if isinstance(d, dict)
        ]
    # Built-in tools ({googleSearch: {}}, {codeExecution: {}} …) are named by their key.
    return [Tool(name=k, type=k, parameters=v or None) for k, v in t.items()]


# Specific providers first: detection ties go to the one registered first.
register(GeminiVertexProvider())
register(GeminiCodeAssistProvider())
register(GeminiProvider())

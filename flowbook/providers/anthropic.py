"""Anthropic Messages API: detection, request parsing, errors (docs/wire-formats.md §3, §9).

:class:`AnthropicAssembler` (in :mod:`flowbook.providers.anthropic_assembler`, re-exported here)
rebuilds a response from the SSE events or a whole body; the Bedrock provider reuses it for
``invoke-with-response-stream``, whose frames carry the same event JSON.
Two providers are registered: the first-party API (``anthropic``) and Claude on Vertex AI
(``anthropic_vertex``, same body and events, model taken from the URL path).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from flowbook.model import Api, FlowError, LLMRequest, LLMResponse, Message, Part, Tool
from flowbook.providers.anthropic_assembler import (
    AnthropicAssembler,
    anthropic_error,
    anthropic_usage,
)
from flowbook.providers.anthropic_encode import MESSAGES, VERTEX_MESSAGES
from flowbook.providers.base import (
    HOST,
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
from flowbook.providers.registry import register

__all__ = [
    "AnthropicAssembler",
    "AnthropicProvider",
    "AnthropicVertexProvider",
    "anthropic_error",
    "anthropic_usage",
    "parse_messages_body",
]

_HOSTS = ("api.anthropic.com",)
# Claude on Vertex: …/publishers/anthropic/models/{model}:(stream)?[rR]awPredict
_VERTEX_PATH = re.compile(r"/publishers/anthropic/models/([^/:]+):(\w+)$")
_TOP_LEVEL = ("model", "messages", "system", "tools", "stream")


class AnthropicProvider(Provider):
    """The first-party Messages API (``/v1/messages``, also with ``?beta=true``)."""

    name = "anthropic"

    def detect(self, req: RequestView) -> Detection | None:
        """Host first, then the ``/v1/messages`` path with Anthropic headers, then body shape."""
        path = req.path_only.rstrip("/")
        api = _api_for_path(path)
        if req.host.lower() in _HOSTS:
            return Detection(self.name, api or Api.OTHER, HOST)
        if api is not None and (
            req.header("anthropic-version")
            or (path.endswith("/v1/messages") and _shape(req, on_messages_path=True))
        ):
            return Detection(self.name, api, PATH)
        if _shape(req):
            return Detection(self.name, Api.MESSAGES, SHAPE)
        return None

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        """Map the request body onto LLMRequest; an unparseable body keeps only the basics."""
        out = wire_request(req)
        body = req.json()
        if isinstance(body, dict):
            parse_messages_body(body, out)
        return out

    def framing(self, req: RequestView, api: str, content_type: str) -> str:
        """SSE when the server says so, or when it says nothing and the request streamed."""
        framing = framing_for_content_type(content_type)
        if not content_type.strip() and _wants_stream(req):
            return SSE
        return framing

    def codec(self, api: str) -> WireCodec | None:
        """The Messages codec (``count_tokens`` and other endpoints have none)."""
        return MESSAGES if api == Api.MESSAGES else None

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        """The Messages assembler (also harmless for count_tokens and other endpoints)."""
        return AnthropicAssembler(request, response)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        """``{"type":"error","error":{"type","message"}}`` → FlowError; anything else generic."""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return anthropic_error(body["error"], status=status, raw=body)
        return generic_error(status, body)


class AnthropicVertexProvider(AnthropicProvider):
    """Claude on Vertex AI: ``…/publishers/anthropic/models/{m}:streamRawPredict|rawPredict``."""

    name = "anthropic_vertex"

    def detect(self, req: RequestView) -> Detection | None:
        """The publisher path decides; an ``aiplatform`` host makes it a host-strength match."""
        m = _VERTEX_PATH.search(req.path_only)
        if m is None:
            return None
        method = m.group(2).lower()
        api = Api.MESSAGES if method in ("rawpredict", "streamrawpredict") else Api.OTHER
        host = req.host.lower()
        strength = (
            HOST if host.endswith(("aiplatform.googleapis.com", ".rep.googleapis.com")) else PATH
        )
        return Detection(self.name, api, strength)

    def codec(self, api: str) -> WireCodec | None:
        return VERTEX_MESSAGES if api == Api.MESSAGES else None

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        """As the first-party API, but the model and streaming come from the URL path."""
        out = super().parse_request(req, api)
        m = _VERTEX_PATH.search(req.path_only)
        if m is not None:
            out.model = out.model or unquote(m.group(1))
            if m.group(2).lower().startswith("stream"):
                out.stream = True
        return out


def _api_for_path(path: str) -> Api | None:
    """``messages`` for ``…/v1/messages``, ``other`` for its sub-resources, None otherwise."""
    if path.endswith("/messages"):
        return Api.MESSAGES
    if re.search(r"/messages/(count_tokens|batches)\b", path):
        return Api.OTHER
    return None


def _shape(req: RequestView, *, on_messages_path: bool = False) -> bool:
    """Body-shape fallback: ``messages`` + ``max_tokens`` + ``system`` or ``anthropic_version``.

    On a ``…/v1/messages`` path, ``messages`` + ``max_tokens`` (required by Anthropic, unused
    by OpenAI-style bodies) is enough: a plain call without a system prompt is still a call.
    """
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return False
    if on_messages_path:
        return "max_tokens" in body
    return "max_tokens" in body and ("system" in body or "anthropic_version" in body)


def _wants_stream(req: RequestView) -> bool:
    body = req.json()
    return (isinstance(body, dict) and body.get("stream") is True) or "streamrawpredict" in (
        req.path_only.lower()
    )


def parse_messages_body(body: dict[str, Any], out: LLMRequest) -> LLMRequest:
    """Fill ``out`` from an Anthropic Messages request body (also Bedrock invoke bodies)."""
    if isinstance(body.get("model"), str):
        out.model = body["model"]
    out.system = _system_text(body.get("system"))
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            out.messages.append(
                Message(role=str(m.get("role", "user")), parts=_parts(m.get("content")))
            )
    for t in body.get("tools") or []:
        if isinstance(t, dict):
            out.tools.append(_tool(t))
    out.params = {k: v for k, v in body.items() if k not in _TOP_LEVEL}
    out.stream = body.get("stream") is True
    return out


def _system_text(system: Any) -> str | None:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = [b.get("text", "") for b in system if isinstance(b, dict)]
        return "\n".join(t for t in texts if t) or None
    return None


def _parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part(type="text", text=content)]
    if not isinstance(content, list):
        return []
    return [_part(b) for b in content if isinstance(b, dict)]


def _part(b: dict[str, Any]) -> Part:
    kind = b.get("type")
    if kind == "text":
        return Part(type="text", text=b.get("text", ""))
    if kind in ("image", "document"):
        source = b.get("source")
        src: dict[str, Any] = source if isinstance(source, dict) else {}
        return Part(
            type=str(kind),
            media_type=src.get("media_type"),
            url=src.get("url") or src.get("file_id"),
            data=src.get("data") if isinstance(src.get("data"), str) else None,
            text=b.get("title"),
        )
    if kind in ("tool_use", "server_tool_use"):
        return Part(type="tool_call", id=b.get("id"), name=b.get("name"), arguments=b.get("input"))
    if kind == "tool_result" or (isinstance(kind, str) and kind.endswith("_tool_result")):
        return Part(
            type="tool_result",
            tool_call_id=b.get("tool_use_id"),
            content=_result_content(b.get("content")),
            is_error=bool(b.get("is_error")),
        )
    if kind == "thinking":
        return Part(type="thinking", text=b.get("thinking", ""), signature=b.get("signature"))
    if kind == "redacted_thinking":
        return Part(type="thinking", redacted=True, data=b.get("data"))
    return Part(type="other", content=b)


def _result_content(content: Any) -> Any:
    """A tool result that is only text blocks reads best as one string."""
    if isinstance(content, list) and all(
        isinstance(c, dict) and c.get("type") == "text" for c in content
    ):
        return "".join(c.get("text", "") for c in content)
    return content


def _tool(t: dict[str, Any]) -> Tool:
    kind = t.get("type")
    if kind in (None, "custom", "function"):
        return Tool(
            name=str(t.get("name", "")),
            description=t.get("description"),
            parameters=t.get("input_schema"),
        )
    # Server tools (web search, code execution, tool search …) are named by their type.
    rest = {k: v for k, v in t.items() if k not in ("name", "type")}
    return Tool(name=str(t.get("name") or kind), type=str(kind), parameters=rest or None)


register(AnthropicProvider())
register(AnthropicVertexProvider())

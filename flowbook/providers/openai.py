"""OpenAI and the vendors that speak its wire formats (docs/wire-formats.md §1, §2, §8, §9).

One parser, several registered names, so ``registry.get(flow.provider)`` always returns a
provider that parses the flow:

* ``openai`` — api.openai.com and the ChatGPT/Codex backend (``chatgpt.com/backend-api/codex``);
* vendors on their own hosts — ``azure_openai``, ``openrouter``, ``deepseek``, ``groq``,
  ``together``, ``mistral``, ``fireworks``, ``xai``, ``perplexity``, ``cerebras``, ``moonshot``,
  ``gemini_openai`` (the ``/v1beta/openai/`` paths of generativelanguage.googleapis.com);
* ``openai_compatible`` — any other host whose path ends in ``/chat/completions`` or
  ``/responses`` with a JSON body holding ``model`` and ``messages``/``input`` (vLLM, LM Studio,
  llama.cpp, a local proxy…), detected at PATH strength.

The ``api`` is ``chat``, ``responses``, ``embeddings`` or ``other`` (any other path on a known
host, e.g. ``GET /v1/models``: kept as a flow but not parsed as a model call).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import unquote

from flowbook.model import Api, FlowError, LLMRequest, LLMResponse, Message, Part, StreamEvent
from flowbook.providers.base import (
    HOST,
    PATH,
    Assembler,
    Detection,
    Provider,
    RequestView,
    wire_request,
)
from flowbook.providers.codec import WireCodec
from flowbook.providers.openai_chat import ChatAssembler, parse_chat_messages
from flowbook.providers.openai_common import chat_usage, openai_error, parse_tools
from flowbook.providers.openai_encode import CHAT
from flowbook.providers.openai_responses import ResponsesAssembler, parse_responses_input
from flowbook.providers.openai_responses_encode import RESPONSES
from flowbook.providers.registry import register

# Fields mapped onto LLMRequest attributes; every other top-level field goes to params.
_MAPPED = frozenset({"model", "messages", "input", "tools", "stream", "instructions", "functions"})
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")
_RESPONSE_ID = re.compile(r"/responses/[^/]+$")


def api_for_path(path: str) -> Api:
    """``chat`` / ``responses`` / ``embeddings`` / ``other`` from a URL path (no query)."""
    p = path.rstrip("/")
    if p.endswith("/chat/completions"):
        return Api.CHAT
    if p.endswith("/responses") or (_RESPONSE_ID.search(p) and "/input_items" not in p):
        return Api.RESPONSES
    if p.endswith("/embeddings"):
        return Api.EMBEDDINGS
    return Api.OTHER


def _foreign_path(path: str) -> bool:
    """Paths on an OpenAI-family host that speak another provider's format (DeepSeek's and
    OpenRouter's Anthropic-compatible endpoints): leave them to that provider."""
    p = path.rstrip("/")
    return p.endswith("/messages") or "/anthropic/" in p + "/"


class OpenAIProvider(Provider):
    """OpenAI's Chat Completions, Responses and Embeddings APIs."""

    name: ClassVar[str] = "openai"
    hosts: ClassVar[tuple[str, ...]] = ("api.openai.com",)
    # Host suffixes (a leading dot): "*.openai.azure.com" is written ".openai.azure.com".
    host_suffixes: ClassVar[tuple[str, ...]] = ()

    def host_matches(self, req: RequestView) -> bool:
        host = req.host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(s) for s in self.host_suffixes)

    def detect(self, req: RequestView) -> Detection | None:
        path = req.path_only
        host = req.host.lower()
        if self.name == "openai" and host in ("chatgpt.com", "chat.openai.com"):
            # Codex CLI with a ChatGPT login; the rest of chatgpt.com is not an API.
            if "/backend-api/codex/" in path and api_for_path(path) == "responses":
                return Detection(self.name, Api.RESPONSES, HOST)
            return None
        if not self.host_matches(req) or _foreign_path(path):
            return None
        return Detection(self.name, api_for_path(path), HOST)

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        body = req.json()
        out = wire_request(req)
        if not isinstance(body, dict):
            out.stream = req.query.get("stream", [""])[0] == "true"
            out.model = self.model_from_path(req.path_only)
            return out
        out.model = body.get("model") if isinstance(body.get("model"), str) else None
        out.model = out.model or self.model_from_path(req.path_only)
        out.stream = bool(body.get("stream")) or req.query.get("stream", [""])[0] == "true"
        out.params = {k: v for k, v in body.items() if k not in _MAPPED}
        out.tools = parse_tools(body.get("tools")) + parse_tools(body.get("functions"))
        if api == "embeddings":
            out.messages = _embedding_inputs(body.get("input"))
        elif api == "responses" or ("input" in body and "messages" not in body):
            out.messages, out.system = parse_responses_input(
                body.get("input"), body.get("instructions")
            )
        else:
            out.messages, out.system = parse_chat_messages(body.get("messages"))
        return out

    def model_from_path(self, path: str) -> str | None:
        """Azure names the deployment in the path; other vendors always send ``model``."""
        m = _AZURE_DEPLOYMENT.search(path)
        return unquote(m.group(1)) if m else None

    def codec(self, api: str) -> WireCodec | None:
        """Chat Completions and Responses; embeddings and other calls are not re-encoded."""
        return {Api.CHAT: CHAT, Api.RESPONSES: RESPONSES}.get(Api(api))

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        if api == "responses":
            return ResponsesAssembler(request, response)
        if api == "embeddings":
            return EmbeddingsAssembler(request, response)
        return ChatAssembler(request, response)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        return openai_error(status, body)


def _embedding_inputs(value: Any) -> list[Message]:
    items = value if isinstance(value, list) else [value]
    texts = [v for v in items if isinstance(v, str)]
    return [Message(role="user", parts=[Part(type="text", text=t)]) for t in texts]


class EmbeddingsAssembler(Assembler):
    """Embeddings responses: keep model, usage and how many vectors came back (not the vectors)."""

    def feed(self, event: StreamEvent) -> bool:
        self.feed_body(event.data)
        return False

    def feed_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        if body.get("error"):
            self.error = openai_error(None, body)
            return
        self.response.model = body.get("model") or self.response.model
        if isinstance(body.get("usage"), dict):
            self.response.usage = chat_usage(body["usage"])
        data = body.get("data")
        self.response.extra["embeddings"] = len(data) if isinstance(data, list) else 0


class AzureOpenAIProvider(OpenAIProvider):
    name = "azure_openai"
    hosts = ()
    host_suffixes = (".openai.azure.com", ".cognitiveservices.azure.com")


class OpenRouterProvider(OpenAIProvider):
    name = "openrouter"
    hosts = ("openrouter.ai",)


class DeepSeekProvider(OpenAIProvider):
    name = "deepseek"
    hosts = ("api.deepseek.com",)


class GroqProvider(OpenAIProvider):
    name = "groq"
    hosts = ("api.groq.com",)


class TogetherProvider(OpenAIProvider):
    name = "together"
    hosts = ("api.together.xyz", "api.together.ai")


class MistralProvider(OpenAIProvider):
    name = "mistral"
    hosts = ("api.mistral.ai", "codestral.mistral.ai")


class FireworksProvider(OpenAIProvider):
    name = "fireworks"
    hosts = ("api.fireworks.ai",)


class XAIProvider(OpenAIProvider):
    name = "xai"
    hosts = ("api.x.ai",)


class PerplexityProvider(OpenAIProvider):
    name = "perplexity"
    hosts = ("api.perplexity.ai",)


class CerebrasProvider(OpenAIProvider):
    name = "cerebras"
    hosts = ("api.cerebras.ai",)


class MoonshotProvider(OpenAIProvider):
    name = "moonshot"
    hosts = ("api.moonshot.ai", "api.moonshot.cn")


class GeminiOpenAIProvider(OpenAIProvider):
    """Gemini's OpenAI-compatible endpoint, ``generativelanguage.googleapis.com/v1beta/openai/``.

    Same host as the native Gemini API, so only the ``/openai/`` paths are claimed here.
    """

    name = "gemini_openai"
    hosts = ("generativelanguage.googleapis.com",)

    def detect(self, req: RequestView) -> Detection | None:
        if "/openai/" not in req.path_only + "/":
            return None
        return super().detect(req)


class OpenAICompatibleProvider(OpenAIProvider):
    """Any host serving the OpenAI format under its own base URL (PATH strength)."""

    name = "openai_compatible"
    hosts = ()

    def detect(self, req: RequestView) -> Detection | None:
        api = api_for_path(req.path_only)
        if api not in ("chat", "responses") or req.method.upper() != "POST":
            return None
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return None
        if ("messages" if api == "chat" else "input") not in body:
            return None
        return Detection(self.name, api, PATH)


VENDORS: tuple[OpenAIProvider, ...] = (
    OpenAIProvider(),
    AzureOpenAIProvider(),
    OpenRouterProvider(),
    DeepSeekProvider(),
    GroqProvider(),
    TogetherProvider(),
    MistralProvider(),
    FireworksProvider(),
    XAIProvider(),
    PerplexityProvider(),
    CerebrasProvider(),
    MoonshotProvider(),
    GeminiOpenAIProvider(),
    OpenAICompatibleProvider(),  # last: the generic fallback loses ties
)
for _p in VENDORS:
    register(_p)

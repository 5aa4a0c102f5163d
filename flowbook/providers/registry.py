"""Provider registry and detection order (docs/wire-formats.md §9).

Every provider is asked; the strongest detection wins (host > path/headers > body shape). Ties go
to the provider registered first, so specific providers register before the generic
OpenAI-compatible fallback. :func:`codec_for` and :func:`codec_for_api` pick the codec that
writes a flow's bodies (docs/wire-formats.md §11).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from flowbook.model import Api
from flowbook.providers.base import Detection, Provider, RequestView

if TYPE_CHECKING:
    from flowbook.providers.codec import WireCodec

_PROVIDERS: list[Provider] = []


def register(provider: Provider) -> Provider:
    """Add a provider (idempotent by name)."""
    for i, p in enumerate(_PROVIDERS):
        if p.name == provider.name:
            _PROVIDERS[i] = provider
            return provider
    _PROVIDERS.append(provider)
    return provider


def providers() -> list[Provider]:
    _ensure_loaded()
    return list(_PROVIDERS)


def get(name: str) -> Provider:
    _ensure_loaded()
    for p in _PROVIDERS:
        if p.name == name:
            return p
    raise KeyError(f"no provider named {name!r}; known: {[p.name for p in _PROVIDERS]}")


def detect(req: RequestView) -> tuple[Provider, Detection] | None:
    """The provider that recognises ``req`` most strongly, or None for non-LLM traffic."""
    _ensure_loaded()
    best: tuple[Provider, Detection] | None = None
    for p in _PROVIDERS:
        try:
            d = p.detect(req)
        except Exception:  # a detector bug must never break traffic
            d = None
        if d is not None and (best is None or d.strength > best[1].strength):
            best = (p, d)
    return best


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    # Order matters for ties: specific formats first, generic OpenAI-compatible last.
    for mod in ("kiro", "bedrock", "anthropic", "gemini", "ollama", "openai"):
        importlib.import_module(f"flowbook.providers.{mod}")


@functools.cache
def api_codecs() -> dict[Api, WireCodec]:
    """The codec each API stands for when only the API is known (interception's edits).

    Built once, on first use (the imports are here so that this module stays importable
    without the provider modules).
    """
    from flowbook.providers.anthropic_encode import MESSAGES
    from flowbook.providers.bedrock_encode import CONVERSE
    from flowbook.providers.gemini_encode import GENERATE_CONTENT
    from flowbook.providers.kiro_encode import KIRO
    from flowbook.providers.ollama_encode import OLLAMA_GENERATE
    from flowbook.providers.openai_encode import CHAT
    from flowbook.providers.openai_responses_encode import RESPONSES

    return {
        Api.CHAT: CHAT,
        Api.RESPONSES: RESPONSES,
        Api.MESSAGES: MESSAGES,
        Api.GENERATE_CONTENT: GENERATE_CONTENT,
        Api.KIRO: KIRO,
        Api.CONVERSE: CONVERSE,
        Api.GENERATE: OLLAMA_GENERATE,
    }


def codec_for_api(api: str) -> WireCodec:
    """The codec of ``api``; any other API is answered as OpenAI Chat, the common denominator.

    ``chat`` means OpenAI Chat Completions here (Ollama's ``/api/chat`` shares the name; only
    :func:`codec_for` with the provider tells them apart).
    """
    codecs = api_codecs()
    return codecs[Api(api)] if api in codecs else codecs[Api.CHAT]


def codec_for(provider: str, api: str) -> WireCodec:
    """The codec for a flow of ``provider``/``api`` that edits like :func:`codec_for_api`'s.

    A provider's own variant (Bedrock's event-stream framing of Anthropic events, Vertex's
    model-less body, Code Assist's envelope) is used when it is a variant of the API's codec, so
    a body validated against the API is one this codec writes.
    """
    base = codec_for_api(api)
    try:
        own = get(provider).codec(api)
    except KeyError:
        return base
    return own if own is not None and isinstance(own, type(base)) else base

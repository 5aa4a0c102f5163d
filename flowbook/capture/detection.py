"""Which requests are LLM calls, whether or not their bodies parse.

The providers recognise a call by its host, path, headers or body shape; a call to a custom base
URL (a local server, the reverse target flowbook sits in front of) is often recognised by its
body alone, so a malformed body (invalid JSON, binary, ``{}``) made the call vanish from the
record, though that is the call a user debugging a 400 needs to see. :class:`CallDetector` asks
the providers first, then falls back on the endpoint: a well-known LLM path (``…/chat/completions``,
``…/v1/messages``, ``/api/chat``, …), or a path on which this proxy already saw a call to the same
host and port. Such a call is detected with strength
:data:`~flowbook.capture.request_check.ENDPOINT_ONLY`, and its flow says what is wrong with the
body.
"""

from __future__ import annotations

from collections import OrderedDict

from flowbook.capture.request_check import ENDPOINT_ONLY
from flowbook.model import Api
from flowbook.providers import registry
from flowbook.providers.base import HOST, Detection, Provider, RequestView

# Path suffix → (provider, api) for calls whose body says nothing usable. Gemini, Bedrock and
# Kiro are recognised by their paths already.
_KNOWN_ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("/chat/completions", "openai_compatible", "chat"),
    ("/responses", "openai_compatible", "responses"),
    ("/embeddings", "openai_compatible", "embeddings"),
    ("/v1/messages", "anthropic", "messages"),
    ("/api/chat", "ollama", "chat"),
    ("/api/generate", "ollama", "generate"),
)
_LEARNED_MAX = 512  # endpoints remembered (host, port, path), least recently used dropped

Endpoint = tuple[str, int | None, str]


class CallDetector:
    """Detect LLM calls; remembers the endpoints of recognised calls (proxy loop only)."""

    def __init__(self) -> None:
        self._learned: OrderedDict[Endpoint, tuple[str, str]] = OrderedDict()

    def detect(self, view: RequestView) -> tuple[Provider, Detection] | None:
        """The provider and API of ``view``, or None when it is not an LLM call."""
        found = registry.detect(view)
        if view.method.upper() not in ("POST", "PUT"):
            return found
        key: Endpoint = (view.host.lower(), view.port, view.path_only.rstrip("/"))
        if found is not None:
            # A host match does not depend on the body; path and shape matches may.
            if found[1].strength < HOST and found[1].api != "other":
                self._learn(key, found[1])
            return found
        named = self._learned.get(key) or _known_endpoint(key[2])
        if named is None:
            return None
        provider_name, api = named
        try:
            provider = registry.get(provider_name)
        except KeyError:
            return None
        return provider, Detection(provider_name, Api(api), ENDPOINT_ONLY)

    def _learn(self, key: Endpoint, detection: Detection) -> None:
        learned = self._learned
        learned[key] = (detection.provider, detection.api)
        learned.move_to_end(key)
        if len(learned) > _LEARNED_MAX:
            learned.popitem(last=False)


def _known_endpoint(path: str) -> tuple[str, str] | None:
    for suffix, provider, api in _KNOWN_ENDPOINTS:
        if path.endswith(suffix):
            return provider, api
    return None

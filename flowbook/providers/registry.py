"""Provider registry and detection order (docs/wire-formats.md §9).

Every provider is asked; the strongest detection wins (host > path/headers > body shape). Ties go
to the provider registered first, so specific providers register before the generic
OpenAI-compatible fallback.
"""

from __future__ import annotations

from flowbook.providers.base import Detection, Provider, RequestView

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

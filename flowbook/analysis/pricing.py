"""Cost in USD of a flow, from the prices the ``genai-prices`` package holds.

flowbook's :class:`~flowbook.model.Usage` already has genai-prices' meaning (input includes the
cached tokens, output includes reasoning), so it maps field for field onto ``genai_prices.Usage``;
cache reads and writes are passed so their discounted/surcharged prices apply.

An unknown model, or a provider that does not bill in tokens (Kiro bills credits, a local Ollama
server bills nothing we could price), gives ``None``, never ``0``: the DataFrame shows NaN and
sums skip it. Which genai-prices provider and model a (provider, model) pair resolves to is
memoised, misses included, so pricing a flow costs a dictionary look-up plus the arithmetic.

User price overrides (the ``price_overrides`` setting: model name or glob -> USD per million
tokens for ``input``, ``output``, ``cache_read``, ``cache_write``) come first, for private or
fine-tuned models genai-prices cannot know; the workspace hands them in with
:func:`set_price_overrides`. ``unit_prices`` gives the per-token rates behind a price, which the
cost analysis uses for cache savings.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flowbook.model import LLMFlow, Usage

# flowbook provider name -> genai-prices provider id. Names not listed are tried as they are,
# then by model name alone.
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "openai-responses": "openai",
    "codex": "openai",
    "azure": "azure",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "anthropic-vertex": "anthropic",
    "gemini": "google",
    "google": "google",
    "vertex": "google",
    "gemini-vertex": "google",
    "gemini-cli": "google",
    "code-assist": "google",
    "gemini-code-assist": "google",
    "bedrock": "aws",
    "aws": "aws",
    "deepseek": "deepseek",
    "openrouter": "openrouter",
    "groq": "groq",
    "mistral": "mistral",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "together": "together",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "moonshot": "moonshotai",
}
# Providers whose calls have no USD token price.
UNPRICED_PROVIDERS = frozenset({"kiro", "codewhisperer", "ollama"})

_EPOCH = date(1970, 1, 1)
_lock = threading.Lock()
# (provider, model) -> (provider_id or None, model_ref) that genai-prices knows, or None.
_resolved: dict[tuple[str, str], tuple[str | None, str] | None] = {}


# Price overrides: model (or glob) -> per-million-token rates. Replaced whole, never mutated.
_overrides: dict[str, dict[str, float]] = {}
OVERRIDE_FIELDS = ("input", "output", "cache_read", "cache_write")


def check_price_overrides(value: object) -> dict[str, dict[str, float]]:
    """Validate ``price_overrides``; raise ValueError saying what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("price_overrides must be a JSON object: model -> {input, output, ...}")
    out: dict[str, dict[str, float]] = {}
    for model, rates in value.items():
        if not isinstance(rates, dict) or "input" not in rates or "output" not in rates:
            raise ValueError(
                f"price_overrides[{model!r}] needs at least 'input' and 'output' "
                'in USD per million tokens, e.g. {"input": 3, "output": 15}'
            )
        unknown = set(rates) - set(OVERRIDE_FIELDS)
        if unknown:
            raise ValueError(
                f"price_overrides[{model!r}]: unknown keys {sorted(unknown)}; "
                f"allowed: {', '.join(OVERRIDE_FIELDS)}"
            )
        clean: dict[str, float] = {}
        for k, v in rates.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise ValueError(f"price_overrides[{model!r}][{k!r}] must be a number >= 0")
            clean[k] = float(v)
        out[str(model)] = clean
    return out


def set_price_overrides(overrides: dict[str, dict[str, float]] | None) -> None:
    """Use these rates (USD per million tokens) for matching models, before genai-prices."""
    global _overrides
    _overrides = check_price_overrides(overrides or {})


def price_override(model: str | None) -> dict[str, float] | None:
    """The override rates for a model (exact name first, then globs), or None."""
    if not model or not _overrides:
        return None
    table = _overrides
    if model in table:
        return table[model]
    for pattern, rates in table.items():
        if fnmatch.fnmatchcase(model, pattern):
            return rates
    return None


def override_cost(rates: dict[str, float], usage: Usage) -> float:
    """Price of a usage at override rates (cache rates default to the input rate)."""
    inp, out = rates["input"], rates["output"]
    cr, cw = rates.get("cache_read", inp), rates.get("cache_write", inp)
    read, write = max(usage.cache_read, 0), max(usage.cache_write, 0)
    plain = max(usage.input - read - write, 0)
    return (plain * inp + read * cr + write * cw + max(usage.output, 0) * out) / 1e6


def unit_prices(provider: str, model: str | None, timestamp: Any = None) -> dict[str, float] | None:
    """USD per token for input, output, cache_read and cache_write, or None if unknown."""
    if not model:
        return None
    rates = price_override(model)
    if rates is not None:
        inp = rates["input"]
        return {
            "input": inp / 1e6,
            "output": rates["output"] / 1e6,
            "cache_read": rates.get("cache_read", inp) / 1e6,
            "cache_write": rates.get("cache_write", inp) / 1e6,
        }
    if _normalise(provider or "") in UNPRICED_PROVIDERS:
        return None
    target = resolve(provider or "", model)
    if target is None:
        return None
    day = (_as_datetime(timestamp) or datetime.now(UTC)).date().isoformat()
    # A sample well below every tier boundary (some models price long prompts higher).
    n = 10_000
    base = _priced(target[0], target[1], n, 0, 0, 0, day)
    out = _priced(target[0], target[1], 0, 0, 0, n, day)
    read = _priced(target[0], target[1], n, n, 0, 0, day)
    write = _priced(target[0], target[1], n, 0, n, 0, day)
    if base is None or out is None:
        return None
    return {
        "input": base / n,
        "output": out / n,
        "cache_read": (read if read is not None else base) / n,
        "cache_write": (write if write is not None else base) / n,
    }


def _normalise(provider: str) -> str:
    return provider.strip().lower().replace("_", "-")


def _model_refs(model: str) -> list[str]:
    """Spellings to try: as sent, without Gemini's ``models/`` prefix, without a vendor prefix."""
    refs = [model]
    for prefix in ("models/", "publishers/google/models/"):
        if model.startswith(prefix):
            refs.append(model[len(prefix) :])
    if "/" in model:
        refs.append(model.rsplit("/", 1)[-1])
    return list(dict.fromkeys(refs))


def _try(provider_id: str | None, model_ref: str) -> bool:
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price

    try:
        calc_price(GPUsage(input_tokens=1), model_ref, provider_id=provider_id)
    except (LookupError, ValueError):
        return False
    return True


def resolve(provider: str, model: str) -> tuple[str | None, str] | None:
    """The genai-prices (provider_id, model_ref) that prices this pair, or None. Memoised."""
    key = (provider, model)
    with _lock:
        if key in _resolved:
            return _resolved[key]
    norm = _normalise(provider)
    pid = PROVIDER_IDS.get(norm, norm)
    found: tuple[str | None, str] | None = None
    for ref in _model_refs(model):
        if _try(pid, ref):
            found = (pid, ref)
            break
    else:
        # A custom base URL or an OpenAI-compatible gateway: match on the model name alone.
        for ref in _model_refs(model):
            if _try(None, ref):
                found = (None, ref)
                break
    with _lock:
        _resolved[key] = found
    return found


def _as_datetime(timestamp: Any) -> datetime | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(timestamp), tz=UTC)


def cost_usd(
    provider: str, model: str | None, usage: Usage | None, *, timestamp: Any = None
) -> float | None:
    """Price of one call in USD, or None when the price is unknown.

    ``timestamp`` (epoch seconds or datetime; default now) picks the price in force then.
    Cache-read and cache-write tokens are priced at their own rates. A ``price_overrides``
    entry for the model wins over genai-prices.
    """
    if not model or usage is None or (usage.source == "missing" and not usage.total):
        return None
    rates = price_override(model)
    if rates is not None:
        return override_cost(rates, usage)
    if _normalise(provider or "") in UNPRICED_PROVIDERS:
        return None
    target = resolve(provider or "", model)
    if target is None:
        return None
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        day = _utc_day(math.floor(float(timestamp) / 86400))  # the recorder's epoch seconds
    else:
        day = (_as_datetime(timestamp) or datetime.now(UTC)).date().isoformat()
    return _priced(
        target[0],
        target[1],
        max(usage.input, 0),
        max(usage.cache_read, 0),
        max(usage.cache_write, 0),
        max(usage.output, 0),
        day,
    )


@functools.lru_cache(maxsize=64)
def _utc_day(days_since_epoch: int) -> str:
    """The UTC date, ISO-formatted, of a day number (memoised: every flow of a day asks)."""
    return (_EPOCH + timedelta(days=days_since_epoch)).isoformat()


@functools.lru_cache(maxsize=8192)
def _priced(
    provider_id: str,
    model_ref: str,
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    output: int,
    day: str,
) -> float | None:
    """One genai-prices calculation, memoised: it costs ~0.25 ms of the recorder's time (and of
    the proxy thread's GIL), and agents repeat the same usage shapes. Prices are taken at noon
    UTC of the day, so the cache key needs only the date."""
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price

    gp_usage = GPUsage(
        input_tokens=input_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=output,
    )
    try:
        result = calc_price(
            gp_usage,
            model_ref,
            provider_id=provider_id,
            genai_request_timestamp=datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC),
        )
    except (LookupError, ValueError):
        # Inconsistent usage (cache tokens above input) or no price at that date.
        return None
    value = float(result.total_price)
    return value if math.isfinite(value) else None


def flow_cost(flow: LLMFlow) -> float | None:
    """Price of a flow from its provider, model, usage and creation time."""
    return cost_usd(flow.provider, flow.model, flow.usage, timestamp=flow.timestamps.created)


def kiro_credits(flow: LLMFlow) -> float | None:
    """Kiro credits billed for a flow (its ``meteringEvent`` usage), or None if not reported."""
    resp = flow.response
    if resp is None:
        return None
    for key in ("credits", "kiro_credits", "metering_credits", "metering_usage"):
        value = resp.extra.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    total: float | None = None
    for event in resp.events:
        data = event.data
        if isinstance(data, dict) and "meteringEvent" in data:
            data = data["meteringEvent"]  # the wrapped shape some test doubles use
        elif event.event != "meteringEvent":
            continue
        usage = data.get("usage") if isinstance(data, dict) else None
        if isinstance(usage, int | float) and not isinstance(usage, bool):
            total = (total or 0.0) + float(usage)
    return total


def clear_cache() -> None:
    """Forget resolved models (after ``genai_prices.UpdatePrices`` loaded newer prices)."""
    with _lock:
        _resolved.clear()
    _priced.cache_clear()

"""How full a model's context window was, and with what.

The question agent users ask most: "how close to the limit was this call, and what filled it?"
The window size comes from genai-prices when it knows the model (its ``ModelInfo.context_window``),
else from a small table of well-known model families, else it is unknown. The fill is split into
system prompt, tool definitions, earlier history and the new turn (the messages after the last
assistant message); each part is counted with :mod:`flowbook.analysis.tokens`, so the split is
always an estimate, while the total is the provider's reported input count when there is one.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import OrderedDict
from typing import Any

from flowbook.analysis.tokens import TOKENS_PER_MESSAGE, count_tokens_method
from flowbook.model import LLMFlow, Message

# Families genai-prices may not know (local models, Kiro's Claude ids, older snapshots).
# Longest match first; sizes are the vendors' documented input limits.
KNOWN_WINDOWS: list[tuple[str, int]] = [
    (r"gpt-4\.1", 1_047_576),
    (r"gpt-5", 400_000),
    (r"gpt-4o|chatgpt-4o|gpt-4-turbo|o1|o3|o4", 128_000),
    (r"gpt-4-32k", 32_768),
    (r"gpt-4(?![o.\d-])", 8_192),
    (r"gpt-3\.5-turbo", 16_385),
    (r"claude", 200_000),
    (r"gemini-(?:1\.5|2\.0|2\.5|3)", 1_048_576),
    (r"deepseek", 64_000),
    (r"llama-?3\.[123]|llama3\.[123]", 128_000),
    (r"qwen2\.5|qwen3", 32_768),
]
_KNOWN = [(re.compile(p, re.IGNORECASE), n) for p, n in KNOWN_WINDOWS]


@functools.lru_cache(maxsize=512)
def window_size(provider: str, model: str | None) -> tuple[int | None, str]:
    """``(tokens, source)``: the model's context window and where the number came from
    (``genai-prices``, ``known-models`` or ``unknown``)."""
    if not model:
        return None, "unknown"
    try:
        from genai_prices import Usage as GPUsage
        from genai_prices import calc_price

        from flowbook.analysis.pricing import resolve

        target = resolve(provider or "", model)
        if target is not None:
            calc = calc_price(GPUsage(input_tokens=1), target[1], provider_id=target[0])
            if calc.model.context_window:
                return int(calc.model.context_window), "genai-prices"
    except (ImportError, LookupError, ValueError):
        pass  # no price data for it: fall through to the table
    name = model.rsplit("/", 1)[-1]
    for pattern, size in _KNOWN:
        if pattern.search(name):
            return size, "known-models"
    return None, "unknown"


def _messages_text(messages: list[Message]) -> str:
    return "\n".join(m.plain_text() for m in messages)


def split_turn(messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """``(history, new_turn)``: the new turn is what follows the last assistant message (the
    user's new message, or the tool results an agent sends back)."""
    last = -1
    for i, m in enumerate(messages):
        if m.role in ("assistant", "model"):
            last = i
    return messages[: last + 1], messages[last + 1 :]


# Counting an agent's whole history costs real time, and a streaming flow's payload is rebuilt a
# few times a second while its request stays the same: keep the last few counts.
_PARTS_CACHE: OrderedDict[tuple[str, int, int, str | None], tuple[list[dict[str, Any]], str]] = (
    OrderedDict()
)
_PARTS_CACHE_SIZE = 64
_lock = threading.Lock()  # payloads are built on the kernel and on the store's dispatcher thread


def _parts(flow: LLMFlow) -> tuple[list[dict[str, Any]], str]:
    req = flow.request
    key = (flow.id, len(req.messages), req.size, flow.model)
    with _lock:
        hit = _PARTS_CACHE.get(key)
    if hit is not None:
        return hit
    result = _count_parts(flow)
    with _lock:
        _PARTS_CACHE[key] = result
        while len(_PARTS_CACHE) > _PARTS_CACHE_SIZE:
            _PARTS_CACHE.popitem(last=False)
    return result


def _count_parts(flow: LLMFlow) -> tuple[list[dict[str, Any]], str]:
    req = flow.request
    model = flow.model
    history, new_turn = split_turn(req.messages)
    tools_text = (
        json.dumps([t.to_dict() for t in req.tools], ensure_ascii=False) if req.tools else ""
    )
    method = "none"
    parts: list[dict[str, Any]] = []
    for key, label, text, n_msgs in (
        ("system", "System prompt", req.system or "", 0),
        ("tools", f"Tools ({len(req.tools)})", tools_text, 0),
        ("history", f"History ({len(history)} messages)", _messages_text(history), len(history)),
        (
            "new_turn",
            f"New turn ({len(new_turn)} messages)",
            _messages_text(new_turn),
            len(new_turn),
        ),
    ):
        n, _exact, m = count_tokens_method(text, model)
        if m != "none":
            method = m
        parts.append({"key": key, "label": label, "tokens": n + TOKENS_PER_MESSAGE * n_msgs})
    return parts, method


def context_fill(flow: LLMFlow) -> dict[str, Any]:
    """The context-window breakdown shown on the detail view's Overview (JSON-safe)."""
    model = flow.model
    parts, method = _parts(flow)
    estimated_total = sum(p["tokens"] for p in parts)
    usage = flow.usage
    if usage is not None and usage.source == "reported" and usage.input:
        used, used_source = usage.input, "reported"
    elif usage is not None and usage.input:
        used, used_source = usage.input, usage.source
    else:
        used, used_source = estimated_total, "estimated"
    window, window_source = window_size(flow.provider, model)
    pct: float | None = None
    if flow.response is not None and "context_usage_pct" in flow.response.extra:
        try:  # Kiro reports the fill itself
            pct = float(flow.response.extra["context_usage_pct"])
            used_source = "reported (Kiro context usage %)"
        except (TypeError, ValueError):
            pct = None
    if pct is None and window:
        pct = round(100.0 * used / window, 2)
    return {
        "window": window,
        "window_source": window_source,
        "used": used,
        "used_source": used_source,
        "pct": pct,
        "parts": parts,
        "parts_total": estimated_total,
        "parts_method": method,
        "parts_estimated": True,
    }

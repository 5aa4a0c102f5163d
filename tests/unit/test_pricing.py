"""Cost in USD from genai-prices: cached-token prices, provider mapping, unknown -> None."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price

from flowbook.analysis import pricing
from flowbook.analysis.pricing import cost_usd, flow_cost, kiro_credits
from flowbook.model import FlowMetadata, LLMFlow, LLMRequest, LLMResponse, StreamEvent, Usage


def _prices(model: str, provider_id: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Per-million-token prices (input, cache read, cache write, output) genai-prices holds."""
    mp = calc_price(GPUsage(input_tokens=1), model, provider_id=provider_id).model_price
    return (
        mp.input_mtok,
        mp.cache_read_mtok or mp.input_mtok,
        mp.cache_write_mtok or mp.input_mtok,
        mp.output_mtok,
    )


def _expected(model: str, pid: str, inp: int, read: int, write: int, out: int) -> float:
    p_in, p_read, p_write, p_out = _prices(model, pid)
    uncached = inp - read - write
    total = uncached * p_in + read * p_read + write * p_write + out * p_out
    return float(total / Decimal(1_000_000))


@pytest.mark.parametrize(
    ("provider", "model", "pid", "write"),
    [
        ("openai", "gpt-4o", "openai", 0),
        ("anthropic", "claude-sonnet-4-20250514", "anthropic", 500),
        ("gemini", "models/gemini-2.5-flash", "google", 0),
    ],
)
def test_cost_matches_published_prices_with_cache(
    provider: str, model: str, pid: str, write: int
) -> None:
    usage = Usage(input=3000, cache_read=1000, cache_write=write, output=500, source="reported")
    got = cost_usd(provider, model, usage)
    ref = model.removeprefix("models/").replace("-20250514", "")
    assert got == pytest.approx(_expected(ref, pid, 3000, 1000, write, 500), rel=1e-9)


def test_gpt4o_known_numbers() -> None:
    # $2.5 / $1.25 cached / $10 per million (the prices genai-prices holds for gpt-4o).
    p_in, p_read, _w, p_out = _prices("gpt-4o", "openai")
    assert p_read < p_in
    usage = Usage(input=2000, cache_read=1000, output=500, source="reported")
    expected = float((1000 * p_in + 1000 * p_read + 500 * p_out) / Decimal(1_000_000))
    assert cost_usd("openai", "gpt-4o-2024-08-06", usage) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4"), ("gemini", "gemini-2.5-flash")],
)
def test_cache_discount_applied(provider: str, model: str) -> None:
    cached = cost_usd(provider, model, Usage(input=2000, cache_read=1000, output=100))
    uncached = cost_usd(provider, model, Usage(input=2000, cache_read=0, output=100))
    assert cached is not None and uncached is not None
    assert 0 < cached < uncached


def test_unknown_model_is_none_not_zero() -> None:
    usage = Usage(input=100, output=10, source="reported")
    assert cost_usd("openai", "definitely-not-a-model-xyz", usage) is None
    assert cost_usd("openai-compatible", "my-local-finetune", usage) is None


def test_none_inputs_and_unpriced_providers() -> None:
    usage = Usage(input=100, output=10, source="reported")
    assert cost_usd("openai", None, usage) is None
    assert cost_usd("openai", "gpt-4o", None) is None
    assert cost_usd("openai", "gpt-4o", Usage(source="missing")) is None
    assert cost_usd("kiro", "claude-sonnet-4", usage) is None
    assert cost_usd("ollama", "llama3", usage) is None


def test_gateway_provider_falls_back_to_model_name() -> None:
    usage = Usage(input=1000, output=100, source="estimated")
    assert cost_usd("openai-compatible", "gpt-4o", usage) == cost_usd("openai", "gpt-4o", usage)
    assert cost_usd("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", usage) is not None


def test_inconsistent_usage_gives_none() -> None:
    # More cached tokens than input tokens cannot be priced; it must not raise.
    assert cost_usd("openai", "gpt-4o", Usage(input=10, cache_read=100, output=1)) is None


def test_resolution_is_memoised(monkeypatch: pytest.MonkeyPatch) -> None:
    pricing.clear_cache()
    calls: list[tuple[str | None, str]] = []
    real_try = pricing._try

    def counting(pid: str | None, ref: str) -> bool:
        calls.append((pid, ref))
        return real_try(pid, ref)

    monkeypatch.setattr(pricing, "_try", counting)
    usage = Usage(input=10, output=10)
    first = cost_usd("openai", "gpt-4.1-mini", usage)
    n = len(calls)
    assert cost_usd("openai", "gpt-4.1-mini", usage) == first
    assert cost_usd("openai", "no-such-model-abc", usage) is None
    m = len(calls)
    assert cost_usd("openai", "no-such-model-abc", usage) is None
    assert n >= 1 and len(calls) == m  # second look-ups, hit or miss, reuse the cache


def test_flow_cost_uses_flow_fields() -> None:
    flow = LLMFlow(
        request=LLMRequest(model="gpt-4o"),
        response=LLMResponse(usage=Usage(input=1000, output=100, source="reported")),
        metadata=FlowMetadata(provider="openai"),
    )
    assert flow_cost(flow) == cost_usd("openai", "gpt-4o", flow.usage)


def test_kiro_credits_from_events_and_extra() -> None:
    events = [
        StreamEvent(t=1.0, event="assistantResponseEvent", data={"content": "hi"}),
        StreamEvent(t=2.0, event="meteringEvent", data={"unit": "credit", "usage": 0.046}),
    ]
    flow = LLMFlow(response=LLMResponse(events=events), metadata=FlowMetadata(provider="kiro"))
    assert kiro_credits(flow) == pytest.approx(0.046)
    flow.response = LLMResponse(extra={"credits": 0.5})
    assert kiro_credits(flow) == 0.5
    flow.response = LLMResponse()
    assert kiro_credits(flow) is None
    assert kiro_credits(LLMFlow()) is None

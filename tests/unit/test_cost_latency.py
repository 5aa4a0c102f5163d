"""Cost, latency and alert statistics against values computed here, independently, on a generated
capture with known latencies, tokens and prices (cache savings and a price override included).

The flows go through the real store façade (memory + SQLite file store) of a fresh data dir; the
expected numbers are computed with plain Python/numpy from the generator's own lists and the
providers' published per-million-token rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flowbook as fb
from flowbook.analysis.pricing import flow_cost
from flowbook.model import (
    ErrorType,
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Usage,
)

BASE = 1_780_000_000.0  # a fixed epoch second (2026-05-28)
# USD per million tokens: (input, output, cache_read, cache_write).
SONNET = (3.0, 15.0, 0.30, 3.75)  # Anthropic's published Claude Sonnet 4.5 prices
ACME = (2.0, 8.0, 0.5, 2.5)  # our override for a private fine-tuned model
OVERRIDE = {"acme-ft-1": {"input": 2, "output": 8, "cache_read": 0.5, "cache_write": 2.5}}


@dataclass
class Spec:
    model: str
    provider: str
    t: float  # seconds after BASE
    ttft_s: float
    gen_s: float
    inp: int
    out: int
    cache_read: int = 0
    cache_write: int = 0
    status: int = 200
    error: ErrorType | None = None


def specs() -> list[Spec]:
    rng = np.random.default_rng(7)
    out: list[Spec] = []
    for i in range(18):
        model, provider = [
            ("claude-sonnet-4-5", "anthropic"),
            ("acme-ft-1", "openai_compatible"),
        ][i % 2]
        out.append(
            Spec(
                model,
                provider,
                t=i * 25.0 + float(rng.integers(0, 5)),
                ttft_s=0.3 + 0.05 * (i % 5),
                gen_s=0.8 + 0.1 * (i % 4),
                inp=1000 + 100 * (i % 3),
                out=200 + 10 * i,
                cache_read=800 if i % 3 == 0 else 0,
                cache_write=100 if i % 4 == 1 else 0,
            )
        )
    # What made these slow is known by construction:
    out.append(Spec("claude-sonnet-4-5", "anthropic", 470, 6.0, 0.9, 1100, 250))  # long TTFT
    out.append(Spec("claude-sonnet-4-5", "anthropic", 480, 5.5, 0.8, 9800, 240))  # big prompt
    out.append(Spec("acme-ft-1", "openai_compatible", 490, 0.4, 7.5, 1000, 3000))  # long gen.
    # Failures: a rate limit and a server error (no usage, no cost).
    out.append(Spec("acme-ft-1", "openai_compatible", 500, 0.05, 0.0, 0, 0, status=429,
                    error=ErrorType.RATE_LIMIT))  # fmt: skip
    out.append(Spec("claude-sonnet-4-5", "anthropic", 505, 0.1, 0.0, 0, 0, status=500,
                    error=ErrorType.SERVER_ERROR))  # fmt: skip
    return out


def build(s: Spec, i: int) -> LLMFlow:
    created = BASE + s.t
    first = created + s.ttft_s
    done = first + s.gen_s
    usage = (
        Usage(
            input=s.inp,
            output=s.out,
            cache_read=s.cache_read,
            cache_write=s.cache_write,
            source="reported",
        )
        if s.error is None
        else None
    )
    flow = LLMFlow(
        id=f"gen{i:03d}",
        state=FlowState.ERROR if s.error else FlowState.COMPLETED,
        request=LLMRequest(
            host="api.example.com",
            path="/v1/x",
            model=s.model,
            stream=True,
            messages=[Message("user", [Part("text", text=f"question {i}")])],
        ),
        response=LLMResponse(status_code=s.status, usage=usage, text=f"answer {i}"),
        error=FlowError(s.error, "failed", status=s.status) if s.error else None,
        metadata=FlowMetadata(provider=s.provider, api="messages", client="gen"),
        timestamps=FlowTimestamps(
            created=created, request_sent=created, first_byte=first, completed=done
        ),
    )
    flow.metadata.cost_usd = flow_cost(flow)  # what the recorder does
    return flow


def rates(model: str) -> tuple[float, float, float, float]:
    return SONNET if model.startswith("claude") else ACME


def expected_cost(s: Spec) -> float:
    if s.error is not None:
        return math.nan
    i, o, r, w = (x / 1e6 for x in rates(s.model))
    plain = s.inp - s.cache_read - s.cache_write
    return plain * i + s.cache_read * r + s.cache_write * w + s.out * o


@pytest.fixture
def capture(data_dir: Path) -> list[Spec]:
    from flowbook.workspace import current

    fb.config.price_overrides = OVERRIDE
    ws = current()
    ws.store.mark_capturing()
    all_specs = specs()
    for i, s in enumerate(all_specs):
        ws.store.put(build(s, i))
    assert ws.store.wait_idle()
    return all_specs


def frame(all_specs: list[Spec]) -> pd.DataFrame:
    rows = []
    for s in all_specs:
        rows.append(
            {
                "model": s.model,
                "lat": (s.ttft_s + s.gen_s) * 1000,
                "ttft": s.ttft_s * 1000,
                "gen": s.gen_s * 1000,
                "out": s.out if s.error is None else 0,
                "t": BASE + s.t,
                "cost": expected_cost(s),
                "error": str(s.error) if s.error else None,
                "savings": s.cache_read * (rates(s.model)[0] - rates(s.model)[2]) / 1e6,
                "write_cost": s.cache_write * rates(s.model)[3] / 1e6,
                "write_extra": s.cache_write * (rates(s.model)[3] - rates(s.model)[0]) / 1e6,
                "tokens": (s.inp + s.out) if s.error is None else 0,
            }
        )
    return pd.DataFrame(rows)


def test_costs_follow_published_prices_and_the_override(capture: list[Spec]) -> None:
    df = fb.flows(sort_by="id", sort_order="asc")
    want = frame(capture)["cost"].to_numpy()
    np.testing.assert_allclose(df["cost_usd"].to_numpy(), want, rtol=1e-9, equal_nan=True)


def test_cost_by_model_with_cache_savings(capture: list[Spec]) -> None:
    exp = frame(capture)
    got = fb.cost(by="model").set_index("model")
    for model, g in exp.groupby("model"):
        row = got.loc[model]
        assert row["flows"] == len(g)
        assert row["cost_usd"] == pytest.approx(g["cost"].sum(), rel=1e-9)
        assert row["cache_savings_usd"] == pytest.approx(g["savings"].sum(), rel=1e-9)
        assert row["cache_write_cost_usd"] == pytest.approx(g["write_cost"].sum(), rel=1e-9)
        net = g["savings"].sum() - g["write_extra"].sum()
        assert row["net_cache_savings_usd"] == pytest.approx(net, rel=1e-9)
        assert row["cost_without_cache_usd"] == pytest.approx(g["cost"].sum() + net, rel=1e-9)
    # Sonnet's cache reads really are a saving: 800 tokens at $3 - $0.30 per million, 4 times.
    assert got.loc["claude-sonnet-4-5", "cache_savings_usd"] > 0


def test_override_set_later_reprices_history(capture: list[Spec]) -> None:
    fb.config.price_overrides = {"acme-ft-1": {"input": 1, "output": 1}}
    df = fb.flows("model:acme-ft-1 AND is:completed", sort_by="id", sort_order="asc")
    ok = [s for s in capture if s.model == "acme-ft-1" and s.error is None]
    want = [(s.inp + s.out) / 1e6 for s in ok]  # cache rates default to the input rate
    np.testing.assert_allclose(df["cost_usd"].to_numpy(), want, rtol=1e-9)


def test_latency_split_throughput_errors_and_rates(capture: list[Spec]) -> None:
    exp = frame(capture)
    got = fb.stats(by="model").set_index("model")
    for model, g in exp.groupby("model"):
        row = got.loc[model]
        assert row["count"] == len(g)
        assert row["latency_p50"] == pytest.approx(np.percentile(g["lat"], 50))
        assert row["queue_p50"] == pytest.approx(np.percentile(g["ttft"], 50))
        assert row["queue_p95"] == pytest.approx(np.percentile(g["ttft"], 95))
        assert row["generation_p50"] == pytest.approx(np.percentile(g["gen"], 50))
        share = g["ttft"].sum() / (g["ttft"].sum() + g["gen"].sum())
        assert row["queue_share"] == pytest.approx(share)
        timed = g[g["gen"] > 0]
        assert row["throughput_tps"] == pytest.approx(
            timed["out"].sum() / (timed["gen"].sum() / 1000)
        )
        span_min = (g["t"].max() - g["t"].min()) / 60
        assert row["requests_per_min"] == pytest.approx(len(g) / span_min)
        ts = g["t"].to_numpy()
        peak = max(int(((ts > t - 60) & (ts <= t)).sum()) for t in ts)
        assert row["peak_rpm"] == pytest.approx(peak)
    assert got.loc["acme-ft-1", "errors_by_type"] == "rate_limit=1"
    assert got.loc["claude-sonnet-4-5", "errors_by_type"] == "server_error=1"


def test_sliding_request_rate(capture: list[Spec]) -> None:
    rate = fb.rate("120s")
    ts = np.sort(frame(capture)["t"].to_numpy())
    want = [((ts > t - 120) & (ts <= t)).sum() / 2 for t in ts]
    np.testing.assert_allclose(rate["rpm"].to_numpy(), want)


def test_projection_from_hourly_stats(capture: list[Spec]) -> None:
    exp = frame(capture)
    hours = (
        pd.Timestamp(exp["t"].max(), unit="s").floor("h")
        - pd.Timestamp(exp["t"].min(), unit="s").floor("h")
    ) / pd.Timedelta(hours=1) + 1
    p = fb.projection()
    assert p["observed_hours"] == hours
    assert p["cost_usd_per_month"] == pytest.approx(exp["cost"].sum() / hours * 24 * 30)
    assert p["requests_per_day"] == pytest.approx(len(exp) / hours * 24)
    assert p["tokens_per_hour"] == pytest.approx(exp["tokens"].sum() / hours)


def test_slowest_says_what_made_each_slow(capture: list[Spec]) -> None:
    top = fb.slowest(3)
    assert list(top["id"]) == ["gen020", "gen018", "gen019"]  # 7.9 s, 6.9 s, 6.3 s
    causes = dict(zip(top["id"], top["cause"], strict=True))
    assert causes == {
        "gen018": "long TTFT",
        "gen019": "big prompt",
        "gen020": "long generation",
    }
    assert top["outlier"].all()  # each far above its model's own Tukey fence
    normal = fb.slowest(30)
    assert not normal[~normal["id"].isin(["gen018", "gen019", "gen020"])]["outlier"].any()
    sonnet = frame(capture).query("model == 'claude-sonnet-4-5'")["lat"]
    ratio = top.set_index("id").loc["gen018", "vs_model_p50"]
    assert ratio == pytest.approx(6900 / np.percentile(sonnet, 50))
    only = fb.slowest(1, "model:acme*")
    assert list(only["id"]) == ["gen020"]


def test_alert_thresholds_mark_flows(capture: list[Spec]) -> None:
    alerts = fb.alerts()
    # Defaults: 5 s latency, 10,000 tokens, $1, errors.
    assert set(alerts["id"]) == {"gen018", "gen019", "gen020", "gen021", "gen022"}
    marks = dict(zip(alerts["id"], alerts["alert"], strict=True))
    assert marks["gen019"] == "latency,tokens"  # 9,800 in + 240 out = 10,040 tokens
    assert marks["gen021"] == "error"
    fb.config.alert_latency_s = 7.5
    fb.config.alert_on_error = False
    assert set(fb.flows("has:alert")["id"]) == {"gen019", "gen020"}
    fb.config.alert_tokens = 0
    assert set(fb.flows("has:alert")["id"]) == {"gen020"}
    assert fb.flows("NOT has:alert").shape[0] == len(capture) - 1

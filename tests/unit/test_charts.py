"""fb.charts: the kernel-side aggregates checked against values computed here from the raw
numbers, unknown cost kept NaN, and live redraws from the real store's change signal, coalesced.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flowbook as fb
from flowbook.model import (
    ErrorType,
    FlowError,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMResponse,
    Usage,
)
from flowbook.ui import chart_data as cd
from flowbook.ui import charts
from flowbook.workspace import current as _current
from tests.helpers.flows import wait_for

T0 = 1_767_000_000.0  # a fixed minute boundary + offsets below, so buckets are known


def make_flow(
    model: str,
    provider: str,
    *,
    t: float,
    latency_ms: float,
    ttft_ms: float,
    out: int,
    cost: float | None = None,
    error: str | None = None,
) -> LLMFlow:
    f = LLMFlow(state=FlowState.ERROR if error else FlowState.COMPLETED)
    f.request.model = model
    f.metadata.provider = provider
    f.timestamps = FlowTimestamps(
        created=t, request_sent=t, first_token=t + ttft_ms / 1000, completed=t + latency_ms / 1000
    )
    f.response = LLMResponse(
        status_code=429 if error else 200,
        usage=Usage(input=100, output=out, source="reported"),
    )
    f.metadata.cost_usd = cost
    if error:
        f.error = FlowError(type=ErrorType(error), message="boom")
    return f


# (model, provider, seconds after T0, latency, ttft, output tokens, cost, error)
ROWS = [
    ("gpt-4o", "openai", 1, 120.0, 30.0, 10, 0.002, None),
    ("gpt-4o", "openai", 5, 180.0, 40.0, 20, 0.003, None),
    ("gpt-4o", "openai", 70, 900.0, 60.0, 30, 0.004, None),
    ("gpt-4o", "openai", 75, 300.0, 50.0, 15, None, None),
    ("claude-x", "anthropic", 2, 400.0, 90.0, 50, None, None),
    ("claude-x", "anthropic", 80, 500.0, 95.0, 60, None, "rate_limit"),
    ("claude-x", "anthropic", 85, 700.0, 99.0, 70, None, "server_error"),
    ("local", "ollama", 3, 50.0, 10.0, 5, None, None),
]


@pytest.fixture
def flows(data_dir: Path) -> list[LLMFlow]:
    store = _current().store.memory
    out = []
    for model, prov, dt, lat, ttft, n, cost, err in ROWS:
        f = make_flow(model, prov, t=T0 + dt, latency_ms=lat, ttft_ms=ttft, out=n, cost=cost,
                      error=err)  # fmt: skip
        store.put(f)
        out.append(f)
    return out


def test_latency_stats_match_numpy_percentiles(flows: list[LLMFlow]) -> None:
    st = cd.latency_stats(fb.flows(), "model")
    by_model: dict[str, list[float]] = defaultdict(list)
    for model, _p, _dt, lat, *_rest, error in ROWS:
        if error is None:  # failed calls are not latency samples
            by_model[model].append(lat)
    assert list(st.index) == sorted(by_model)
    for model, values in by_model.items():
        row = st.loc[model]
        assert row["count"] == len(values)
        assert row["min"] == pytest.approx(min(values), abs=0.01)
        assert row["max"] == pytest.approx(max(values), abs=0.01)
        assert row["median"] == pytest.approx(float(np.percentile(values, 50)), abs=0.01)
        assert row["q1"] == pytest.approx(float(np.percentile(values, 25)), abs=0.01)
        assert row["q3"] == pytest.approx(float(np.percentile(values, 75)), abs=0.01)
        assert row["mean"] == pytest.approx(sum(values) / len(values), abs=0.01)


def test_usage_series_sums_per_minute_and_keeps_unknown_cost_nan(flows: list[LLMFlow]) -> None:
    df = fb.flows()
    tokens = cd.usage_series(df, "tokens", "model", "1min")
    cost = cd.usage_series(df, "cost", "model", "1min")
    expected_tokens: dict[tuple[pd.Timestamp, str], int] = defaultdict(int)
    expected_cost: dict[tuple[pd.Timestamp, str], list[float]] = defaultdict(list)
    for model, _p, dt, _l, _t, n, c, _e in ROWS:
        minute = pd.Timestamp(math.floor((T0 + dt) / 60) * 60, unit="s", tz="UTC")
        expected_tokens[(minute, model)] += 100 + n  # total = input + output
        if c is not None:
            expected_cost[(minute, model)].append(c)
        else:
            expected_cost.setdefault((minute, model), [])
    for (minute, model), total in expected_tokens.items():
        assert tokens.loc[minute, model] == total
    for (minute, model), known in expected_cost.items():
        got = cost.loc[minute, model]
        if known:
            assert got == pytest.approx(sum(known))
        else:
            assert math.isnan(got), (minute, model, got)  # unknown price: NaN, never 0
    # The minute where gpt-4o had one priced and one unpriced flow sums the known one.
    second_minute = pd.Timestamp(math.floor((T0 + 70) / 60) * 60, unit="s", tz="UTC")
    assert cost.loc[second_minute, "gpt-4o"] == pytest.approx(0.004)


def test_error_counts_per_provider_and_type(flows: list[LLMFlow]) -> None:
    table = cd.error_counts(fb.flows(), "provider")
    assert list(table.index) == ["anthropic", "ollama", "openai"]
    assert table.loc["anthropic", "rate_limit"] == 1
    assert table.loc["anthropic", "server_error"] == 1
    assert table.loc["openai", "rate_limit"] == 0 and table.loc["ollama", "server_error"] == 0
    assert table.loc["anthropic", "flows"] == 3 and table.loc["openai", "flows"] == 4
    assert table.loc["anthropic", "error_rate"] == pytest.approx(2 / 3)
    assert table.loc["openai", "error_rate"] == 0


def test_ttft_points_newest_first_capped(flows: list[LLMFlow]) -> None:
    pts = cd.ttft_points(fb.flows(), "output", limit=3)
    newest = sorted(ROWS, key=lambda r: r[2])[-3:]
    assert pts["tokens"].tolist() == [float(r[5]) for r in newest]
    assert pts["ttft_ms"].round(1).tolist() == [r[4] for r in newest]


def test_bad_arguments_say_what_to_use(flows: list[LLMFlow]) -> None:
    with pytest.raises(ValueError, match="Did you mean 'model'"):
        charts.latency(by="modle")
    with pytest.raises(ValueError, match="'tokens' or 'cost'"):
        charts.usage_over_time(metric="dollars")
    with pytest.raises(ValueError, match="not a pandas frequency"):
        charts.usage_over_time(freq="every minute")


def test_figures_draw_the_aggregates(flows: list[LLMFlow]) -> None:
    lat = fb.charts.latency(by="model")
    assert {t.name for t in lat.data} == {"gpt-4o", "claude-x", "local"}
    box = next(t for t in lat.data if t.name == "local")
    assert box.median[0] == pytest.approx(50.0, abs=0.01)
    usage = fb.charts.usage_over_time(metric="cost")
    claude = next(t for t in usage.data if t.name == "claude-x")
    assert all(v is None for v in claude.y)  # unknown cost: gaps, not zero bars
    err = fb.charts.errors()
    assert {t.name for t in err.data} == {"rate_limit", "server_error"}
    scatter = fb.charts.ttft_vs_tokens()
    assert sum(len(t.x) for t in scatter.data) == len(ROWS)
    bundle = lat._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.plotly.v1+json"]["data"]  # the static fallback
    assert "<table" in bundle["text/html"]
    for chart in (lat, usage, err, scatter):
        chart.stop()


def test_chart_redraws_live_as_flows_arrive(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "MIN_INTERVAL_S", 0.05)
    chart = fb.charts.latency(by="model")
    assert len(chart.data) == 0 and chart.updates == 1
    assert "No flows yet" in chart.layout.annotations[0].text
    chart.layout.height = 280  # the caller's sizing survives live redraws
    store = _current().store.memory
    store.put(make_flow("m1", "openai", t=T0, latency_ms=100, ttft_ms=10, out=5))
    assert wait_for(lambda: len(chart.data) == 1)
    store.put(make_flow("m2", "openai", t=T0 + 1, latency_ms=200, ttft_ms=10, out=5))
    assert wait_for(lambda: {t.name for t in chart.data} == {"m1", "m2"})
    assert chart.data_frame.loc["m2", "count"] == 1
    assert chart.layout.annotations == ()  # the empty-chart note is gone
    assert chart.layout.height == 280 and chart.layout.uirevision == "flowbook"
    chart.stop()
    before = chart.updates
    store.put(make_flow("m3", "openai", t=T0 + 2, latency_ms=300, ttft_ms=10, out=5))
    assert fb.wait_idle()
    assert chart.updates == before and len(chart.data) == 2  # stopped charts stay put


def test_a_burst_of_changes_is_one_redraw() -> None:
    calls = threading.Event()
    throttle = charts.Throttle(calls.set, interval=3600)
    throttle.poke()
    assert calls.wait(10)  # the first poke after a quiet spell fires at once
    for _ in range(1000):
        throttle.poke()
    # Every later poke folds into the one pending redraw (an hour away here).
    assert throttle.pokes == 1001 and throttle.calls == 1
    throttle.cancel()


def test_burst_through_the_store_coalesces(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "MIN_INTERVAL_S", 0.05)
    # Several live charts redraw from their own timer threads: each must end with every flow.
    errs, lat, usage = fb.charts.errors(), fb.charts.latency(), fb.charts.usage_over_time()
    store = _current().store.memory
    for i in range(300):
        store.put(make_flow("m", "openai", t=T0 + i, latency_ms=10, ttft_ms=1, out=1,
                            error="rate_limit" if i % 2 else None))  # fmt: skip
    assert wait_for(lambda: errs.data_frame["flows"].sum() == 300)
    assert wait_for(lambda: lat.data_frame.loc["m", "count"] == 150)
    assert wait_for(lambda: usage.data_frame["m"].sum() == 300 * 101)
    # 300 store updates, far fewer redraws: the store's signal and the throttle coalesce.
    assert errs.updates < 100, errs.updates
    assert errs.throttle.calls <= errs.throttle.pokes < 300
    for chart in (errs, lat, usage):
        chart.stop()


def test_closed_chart_stops_listening(data_dir: Path) -> None:
    chart = fb.charts.latency()
    assert chart._fb_signal is _current().store.changed
    chart.close()
    assert chart._fb_signal is None  # disconnected from the store's signal
    assert chart.comm is None  # and the widget is closed

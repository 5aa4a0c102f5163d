"""fb.stats over the summary DataFrame: rates, percentiles, token sums, cost, shares, buckets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from flowbook.analysis.stats import STAT_COLUMNS, stats
from flowbook.schema import frame_from_rows

T0 = 1_718_000_000.0  # 2024-06-10 06:13:20 UTC


def _row(i: int, model: str | None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"f{i}",
        "timestamp": T0 + i * 60,
        "provider": "openai",
        "model": model,
        "state": "completed",
        "usage_source": "reported",
        "latency_ms": 100.0 * (i + 1),
        "ttft_ms": 10.0 * (i + 1),
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_read_tokens": 40,
        "cache_write_tokens": 0,
        "reasoning_tokens": 2,
        "total_tokens": 110,
        "output_tokens_per_s": 50.0,
        "cost_usd": 0.01,
    }
    row.update(kw)
    return row


@pytest.fixture
def df() -> pd.DataFrame:
    rows = [_row(i, "gpt-4o") for i in range(8)]
    rows[1].update(state="error", error_type="rate_limit", cost_usd=None, usage_source="missing")
    rows[1].update({k: None for k in ("input_tokens", "output_tokens", "total_tokens")})
    rows[2].update(error_type="server_error")  # completed, but an in-stream error
    rows[3].update(state="streaming", latency_ms=None)
    rows += [
        _row(10, "claude-sonnet-4", cost_usd=None, usage_source="estimated"),
        _row(11, "claude-sonnet-4", cost_usd=None, usage_source="estimated"),
        _row(12, None, state="pending", cost_usd=None, usage_source="missing", latency_ms=None),
    ]
    return frame_from_rows(rows)


def test_columns_and_one_row_per_model(df: pd.DataFrame) -> None:
    out = stats(df)
    assert list(out.columns) == ["model", *STAT_COLUMNS]
    assert list(out["model"].astype("object").fillna("<none>")) == [
        "gpt-4o",
        "claude-sonnet-4",
        "<none>",
    ]
    assert list(out["count"]) == [8, 2, 1]


def test_rates_use_finished_flows(df: pd.DataFrame) -> None:
    g = stats(df).set_index("model").loc["gpt-4o"]
    # 7 finished (one streaming): 5 clean completions, 1 error state, 1 in-stream error.
    assert g["success_rate"] == pytest.approx(5 / 7)
    assert g["error_rate"] == pytest.approx(2 / 7)
    pending = stats(df)[stats(df)["model"].isna()].iloc[0]
    assert np.isnan(pending["success_rate"]) and np.isnan(pending["error_rate"])


def test_percentiles_match_numpy(df: pd.DataFrame) -> None:
    g = stats(df).set_index("model").loc["gpt-4o"]
    lat = df.loc[df["model"] == "gpt-4o", "latency_ms"].dropna().to_numpy()
    ttft = df.loc[df["model"] == "gpt-4o", "ttft_ms"].dropna().to_numpy()
    for p in (50, 90, 95, 99):
        assert g[f"latency_p{p}"] == pytest.approx(np.percentile(lat, p))
    assert g["ttft_p50"] == pytest.approx(np.percentile(ttft, 50))
    assert g["ttft_p95"] == pytest.approx(np.percentile(ttft, 95))
    assert g["output_tokens_per_s"] == 50.0


def test_tokens_cost_and_shares(df: pd.DataFrame) -> None:
    out = stats(df).set_index("model")
    g = out.loc["gpt-4o"]
    assert g["input_tokens"] == 700 and g["output_tokens"] == 70  # one flow without usage
    assert g["cache_read_tokens"] == 320 and g["reasoning_tokens"] == 16
    assert g["total_tokens"] == 770
    assert g["cost_usd"] == pytest.approx(0.07)
    assert g["cost_known_share"] == pytest.approx(7 / 8)
    assert g["estimated_share"] == 0.0
    c = out.loc["claude-sonnet-4"]
    assert np.isnan(c["cost_usd"])  # nothing known: NaN, never 0
    assert c["cost_known_share"] == 0.0 and c["estimated_share"] == 1.0


def test_overall_row_and_multi_key(df: pd.DataFrame) -> None:
    overall = stats(df, by=None)
    assert len(overall) == 1 and list(overall.columns) == STAT_COLUMNS
    assert overall["count"].iloc[0] == len(df)
    assert overall["cost_usd"].iloc[0] == pytest.approx(0.07)
    multi = stats(df, by=["provider", "model"])
    assert list(multi.columns[:2]) == ["provider", "model"] and multi["count"].sum() == len(df)


def test_time_buckets(df: pd.DataFrame) -> None:
    hourly = stats(df, by="hour")
    assert hourly["hour"].is_monotonic_increasing
    assert hourly["count"].sum() == len(df)
    assert (hourly["hour"] == hourly["hour"].dt.floor("h")).all()
    assert len(stats(df, by="day")) == 1


def test_empty_and_unknown_key(df: pd.DataFrame) -> None:
    empty = stats(df.iloc[:0])
    assert empty.empty and list(empty.columns) == ["model", *STAT_COLUMNS]
    assert list(stats(frame_from_rows([]), by=None).columns) == STAT_COLUMNS
    with pytest.raises(KeyError):
        stats(df, by="no_such_column")


def test_large_frame_vectorised() -> None:
    n = 200_000
    rng = np.random.default_rng(1)
    big = pd.DataFrame(
        {
            "model": pd.Series(rng.choice(["a", "b"], n), dtype="string[pyarrow]"),
            "state": pd.Series(["completed"] * n, dtype="string[pyarrow]"),
            "error_type": pd.Series([None] * n, dtype="string[pyarrow]"),
            "usage_source": pd.Series(["reported"] * n, dtype="string[pyarrow]"),
            "cost_usd": rng.random(n),
            "latency_ms": rng.random(n) * 1000,
            "ttft_ms": rng.random(n) * 100,
            "output_tokens_per_s": rng.random(n),
            **{
                c: pd.Series(np.ones(n, dtype="int64"), dtype="Int64")
                for c in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "reasoning_tokens",
                    "total_tokens",
                )
            },
        }
    )
    out = stats(big)
    assert out["count"].sum() == n and out["input_tokens"].sum() == n
    assert (out["success_rate"] == 1.0).all()

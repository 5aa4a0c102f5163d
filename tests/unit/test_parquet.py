"""Parquet export: Hive partitions by UTC day, readable by pandas, bodies optional."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flowbook.io.parquet import export_parquet
from flowbook.model import (
    LLMFlow,
    Usage,
)
from flowbook.schema import frame_from_rows, summary_row
from tests.helpers.factories import make_flow

DAY0 = 1_700_000_000.0  # 2023-11-14 22:13 UTC


def _flow(i: int, created: float) -> LLMFlow:
    return make_flow(
        f"p{i}",
        model="gpt-4o" if i % 2 else "o3",
        request_body=b'{"q": "hi"}',
        user=f"hello {i}",
        response_body=b"\x00\xff binary",
        text=f"answer {i}",
        usage=Usage(input=i, output=2 * i, source="reported"),
        cost=None if i == 0 else 0.5,
        created=created,
        latency_s=1.25,
    )


@pytest.fixture
def flows() -> list[LLMFlow]:
    # Three UTC days: 2023-11-14 (2 flows), 2023-11-15 (1), 2023-11-16 (1).
    times = [DAY0, DAY0 + 3600, DAY0 + 86400, DAY0 + 2 * 86400]
    return [_flow(i, t) for i, t in enumerate(times)]


def test_summary_partitioned_by_day_and_read_back_with_pandas(
    tmp_path: Path, flows: list[LLMFlow]
) -> None:
    summary = frame_from_rows([summary_row(f) for f in flows])
    out = export_parquet(summary, tmp_path / "pq")
    days = sorted(p.name for p in out.iterdir())
    assert days == ["date=2023-11-14", "date=2023-11-15", "date=2023-11-16"]
    back = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert len(back) == 4
    assert list(back["id"]) == ["p0", "p1", "p2", "p3"]
    assert [str(d) for d in back["date"]] == [
        "2023-11-14",
        "2023-11-14",
        "2023-11-15",
        "2023-11-16",
    ]
    assert list(back["input_tokens"]) == [0, 1, 2, 3]
    assert pd.isna(back["cost_usd"][0]) and back["cost_usd"][1] == 0.5  # unknown stays NaN
    ts = pd.to_datetime(back["timestamp"], utc=True)
    assert (ts == summary["timestamp"]).all()
    assert back["latency_ms"].tolist() == summary["latency_ms"].tolist()
    # Timestamps in microseconds so Spark can read them.
    schema = pq.read_schema(next(out.rglob("*.parquet")))
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"


def test_bodies_optional_and_reexport_replaces_only_written_days(
    tmp_path: Path, flows: list[LLMFlow]
) -> None:
    summary = frame_from_rows([summary_row(f) for f in flows])
    out = tmp_path / "pq"
    export_parquet(summary, out, flows=flows, include_bodies=True)
    back = pd.read_parquet(out).set_index("id")
    assert back.loc["p1", "request_text"] == "hello 1"
    assert back.loc["p1", "response_text"] == "answer 1"
    assert back.loc["p1", "request_body"] == '{"q": "hi"}'
    assert back.loc["p1", "response_body"].endswith("binary")
    # Export only the last day again (e.g. a nightly job): other days stay as they were.
    export_parquet(summary[summary["id"] == "p3"], out)
    again = pd.read_parquet(out)
    assert sorted(again["id"]) == ["p0", "p1", "p2", "p3"]
    assert len(list(out.rglob("*.parquet"))) == 3
    with pytest.raises(ValueError, match="flows="):
        export_parquet(summary, out, include_bodies=True)


def test_bodies_from_a_getter_function(tmp_path: Path, flows: list[LLMFlow]) -> None:
    summary = frame_from_rows([summary_row(f) for f in flows])
    by_id = {f.id: f for f in flows}
    export_parquet(summary, tmp_path / "pq", flows=lambda i: by_id.get(i), include_bodies=True)
    back = pd.read_parquet(tmp_path / "pq").set_index("id")
    assert back.loc["p2", "response_text"] == "answer 2"

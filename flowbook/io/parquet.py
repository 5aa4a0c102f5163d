"""Columnar export for scale: the summary (optionally with bodies) as Hive-partitioned Parquet.

``export_parquet(fb.flows(), "out/")`` writes ``out/date=YYYY-MM-DD/part-0.parquet`` (UTC days).
DuckDB, pandas, Polars, Spark and Dask read the directory as one table with a ``date`` column
(docs/scale.md). Re-exporting replaces the days written and leaves other days alone, so a nightly
export of the last day appends to a months-long archive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from flowbook.model import LLMFlow

FlowSource = Mapping[str, LLMFlow] | Iterable[LLMFlow] | Callable[[str], LLMFlow | None]
BODY_COLUMNS = ("request_text", "response_text", "request_body", "response_body")


def _flow_getter(flows: FlowSource) -> Callable[[str], LLMFlow | None]:
    if callable(flows) and not isinstance(flows, Mapping):
        return flows
    if isinstance(flows, Mapping):
        return flows.get
    by_id = {f.id: f for f in flows}
    return by_id.get


def _text(data: bytes | None) -> str | None:
    # Parquet strings must be UTF-8; a binary body (an event stream) is kept as replacement
    # characters rather than dropped, the raw bytes stay in the JSONL store.
    return None if data is None else data.decode("utf-8", errors="replace")


def _body_columns(ids: Iterable[str], get: Callable[[str], LLMFlow | None]) -> dict[str, list]:
    out: dict[str, list[Any]] = {c: [] for c in BODY_COLUMNS}
    for flow_id in ids:
        f = get(flow_id)
        resp = f.response if f else None
        out["request_text"].append(f.request.plain_text() if f else None)
        out["response_text"].append(resp.plain_text() if resp else None)
        out["request_body"].append(_text(f.request.body) if f else None)
        out["response_body"].append(_text(resp.body) if resp else None)
    return out


def export_parquet(
    summary_df: pd.DataFrame,
    out_dir: str | Path,
    *,
    flows: FlowSource | None = None,
    include_bodies: bool = False,
    compression: str = "zstd",
) -> Path:
    """Write the summary rows as ``out_dir/date=YYYY-MM-DD/part-0.parquet``; return out_dir.

    ``flows`` (a dict id→flow, an iterable of flows, or a function like ``fb.get_flow``) is
    needed with ``include_bodies=True``, which adds request/response text and bodies.
    Timestamps are stored as microseconds (UTC): Spark and older readers reject nanoseconds.
    """
    out = Path(out_dir).expanduser()
    if "timestamp" not in summary_df.columns:
        raise ValueError("summary_df needs a 'timestamp' column (use fb.flows())")
    df = summary_df.reset_index(drop=True)
    if include_bodies:
        if flows is None:
            raise ValueError("include_bodies=True needs flows= (a dict, a list or fb.get_flow)")
        extra = pd.DataFrame(_body_columns(df["id"], _flow_getter(flows)), dtype="string")
        df = pd.concat([df, extra], axis=1)
    ts = pd.to_datetime(df["timestamp"], utc=True)
    df = df.assign(date=ts.dt.strftime("%Y-%m-%d").astype("string"))
    table = pa.Table.from_pandas(df, preserve_index=False)
    # `date` becomes the directory name only, as in every Hive-partitioned dataset.
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    options = ds.ParquetFileFormat().make_write_options(
        compression=compression, coerce_timestamps="us", allow_truncated_timestamps=True
    )
    out.mkdir(parents=True, exist_ok=True)
    ds.write_dataset(
        table,
        out,
        format="parquet",
        partitioning=partitioning,
        basename_template="part-{i}.parquet",
        existing_data_behavior="delete_matching",
        file_options=options,
    )
    return out


def read_parquet(out_dir: str | Path) -> pd.DataFrame:
    """Read an export back into pandas (``date`` as a string column)."""
    table = pq.read_table(Path(out_dir), partitioning="hive")
    return table.to_pandas()

"""CSV (the ``fb.flows()`` columns) and Parquet exports of a selection's summary rows."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pandas as pd

from flowbook.redact import RedactionRules


def _masked(df: pd.DataFrame, rules: RedactionRules | None) -> pd.DataFrame:
    """Text columns (preview, tags, comment-like strings) through the redaction rules."""
    out = df.copy()
    if "tags" in out.columns:
        out["tags"] = out["tags"].map(lambda v: ";".join(v) if isinstance(v, list | tuple) else v)
    if rules is None:
        return out
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith("string"):
            # Paths carry query strings (Gemini's ?key=): masked as URLs, the rest as text.
            mask = rules.mask_url if col in ("path", "url") else rules.mask_text
            out[col] = out[col].map(lambda v, m=mask: m(v) if isinstance(v, str) else v)
    return out


def write_csv(df: pd.DataFrame, out: TextIO, rules: RedactionRules | None) -> int:
    """The summary rows as CSV (RFC 4180 quoting, timestamps in ISO 8601 UTC)."""
    _masked(df, rules).to_csv(
        out, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return len(df)


def write_parquet(df: pd.DataFrame, path: Path, rules: RedactionRules | None,
                  flows: object | None, include_bodies: bool) -> Path:  # fmt: skip
    """Day-partitioned Parquet (see :mod:`flowbook.io.parquet`)."""
    from flowbook.io.parquet import export_parquet

    masked = _masked(df, rules)
    if "tags" in df.columns:  # Parquet keeps the list type
        masked["tags"] = df["tags"].values
    return export_parquet(masked, path, flows=flows if include_bodies else None,  # type: ignore[arg-type]
                          include_bodies=include_bodies)  # fmt: skip

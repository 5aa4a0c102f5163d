"""The one place export, import and code generation reach flowbook's store.

Everything else in ``flowbook.io`` calls these functions, so when the store's internals move
only this module changes. It reads through the public API and the current workspace's store
façade (docs/architecture.md).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.model import LLMFlow

if TYPE_CHECKING:
    import pandas as pd


def query(filter_expr: str | None, *, include_history: bool) -> pd.DataFrame:
    """Summary rows matching ``filter_expr``, oldest first (exports read chronologically)."""
    from flowbook import api

    return api.flows(filter_expr, sort_by="timestamp", sort_order="asc",
                     include_history=include_history)  # fmt: skip


def get_flow(flow_id: str) -> LLMFlow | None:
    """The full flow, or None when no flow has that id."""
    from flowbook import api

    try:
        return api.get_flow(flow_id)
    except KeyError:
        return None


def iter_flows(ids: Iterable[str]) -> Iterator[LLMFlow]:
    """Full flows for ``ids`` one at a time (missing ids are skipped), so large selections never
    sit in memory together."""
    for flow_id in ids:
        flow = get_flow(flow_id)
        if flow is not None:
            yield flow


def summary_frame(flows: list[LLMFlow]) -> pd.DataFrame:
    """Summary rows (the ``fb.flows()`` columns) for flows that are not in the store."""
    from flowbook.schema import frame_from_rows, summary_row

    return frame_from_rows([summary_row(f) for f in flows])


def data_dir() -> Path:
    """The current data dir."""
    from flowbook.workspace import current

    return Path(current().data_dir)


def config() -> Any:
    """The live configuration (``fb.config``) of the current data dir."""
    from flowbook.workspace import current

    return current().config


def add_flows(flows: Iterable[LLMFlow]) -> list[str]:
    """Store imported flows; returns the ids added (ids already stored are skipped).

    The flows go through the store's own JSONL import, so dedup, indexing and retention treat
    them exactly like a loaded flowbook file.
    """
    from flowbook.store.records import dumps_line
    from flowbook.workspace import current

    fd, name = tempfile.mkstemp(prefix="flowbook-import-", suffix=".jsonl")
    try:
        wrote = False
        with os.fdopen(fd, "wb") as f:
            for flow in flows:
                f.write(dumps_line(flow.to_dict()))
                wrote = True
        if not wrote:
            return []
        return list(current().store.load(Path(name)))
    finally:
        os.unlink(name)


def load_jsonl(path: Path) -> list[str]:
    """Import a flowbook JSONL file through the store."""
    from flowbook.workspace import current

    return list(current().store.load(path))

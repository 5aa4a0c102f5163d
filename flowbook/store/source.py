"""StoreFlowSource: answers the filter terms the summary cannot (text search, headers, bodies).

Literal ``content:``/``request:``/``response:`` terms go to the file store's FTS5 index, plus a
per-flow check of the flows still in progress (they are not on disk yet); everything else is
evaluated flow by flow on the rows that are still candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from flowbook.filters.ast import FlowTerm
from flowbook.model import LLMFlow

if TYPE_CHECKING:
    from flowbook.runtime import Runtime


class StoreFlowSource:
    """A ``flowbook.filters.source.FlowSource`` over a runtime's memory and file stores."""

    def __init__(self, runtime: Runtime, include_history: bool) -> None:
        self.runtime = runtime
        self.include_history = include_history

    def ids_matching(self, term: FlowTerm) -> set[str] | None:
        literal = term.literal
        if not term.is_text_search or literal is None:
            return None
        rt = self.runtime
        rt.flush()
        ids = rt.file_store.ids_matching_text(term.kind, literal)
        from flowbook.filters.per_flow import flow_term_matches

        for fid in rt.recorder.active_ids():
            flow = rt.store.get(fid)
            if flow is not None and flow_term_matches(term, flow):
                ids.add(fid)
        return ids

    def get_flows(self, ids: Iterable[str]) -> Iterator[LLMFlow]:
        for fid in ids:
            flow = self.runtime.store.get(fid)
            if flow is not None:
                yield flow

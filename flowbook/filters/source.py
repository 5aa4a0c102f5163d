"""Where the vectorised evaluator gets answers the summary cannot give.

Terms like ``content:"hello"``, ``~b``, ``~h`` or ``tool:get_weather`` need the full flow. The
store passes a ``FlowSource`` to ``Filter.mask`` (``flowbook.store.facade.Store`` is one): it may
answer a term wholesale (literal ``content:``/``request:``/``response:`` terms from SQLite FTS5),
or decline, in which case the evaluator fetches the candidate flows and evaluates the term on
each. The protocol lives here so that the filters never import the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from flowbook.filters.ast import FlowTerm
from flowbook.model import LLMFlow


@runtime_checkable
class FlowSource(Protocol):
    """What ``Filter.mask`` needs from a store to answer full-flow terms."""

    def ids_matching(self, term: FlowTerm) -> set[str] | None:
        """Every flow id that matches ``term`` (a superset of the frame is fine), or None when
        the source cannot answer this term quickly (the evaluator then uses ``get_flows``).

        An FTS-backed store should answer only terms whose ``term.is_text_search`` is true and
        whose ``term.literal`` is a plain substring, and must give exactly the per-flow meaning:
        a case-insensitive substring of ``request_text``/``response_text`` in
        ``flowbook.filters.per_flow``. Return None for anything it cannot answer exactly.
        """
        ...

    def get_flows(self, ids: Iterable[str]) -> Iterable[LLMFlow]:
        """The full flows for these ids (missing ids are skipped: they count as not matching)."""
        ...


class MemoryFlowSource:
    """A FlowSource over flows held in memory: it never answers wholesale, so every full-flow
    term is evaluated flow by flow on the rows that are still candidates."""

    def __init__(self, flows: Mapping[str, LLMFlow] | Iterable[LLMFlow]) -> None:
        if isinstance(flows, Mapping):
            self._flows: Mapping[str, LLMFlow] = flows
        else:
            self._flows = {f.id: f for f in flows}

    def ids_matching(self, term: FlowTerm) -> set[str] | None:
        # Scanning here would visit every flow; get_flows on the candidates visits fewer.
        return None

    def get_flows(self, ids: Iterable[str]) -> Iterator[LLMFlow]:
        for flow_id in ids:
            flow = self._flows.get(flow_id)
            if flow is not None:
                yield flow

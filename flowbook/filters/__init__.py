"""flowbook's filter language (docs/filters.md): parse once, evaluate on a DataFrame or a flow.

>>> f = parse("model:gpt-4 AND tokens:>1k")
>>> f.mask(df)          # vectorised over the summary DataFrame of fb.flows()
>>> f.matches(flow)     # one LLMFlow (live rules, intercept)

Both styles mix freely: the brief's ``key:value`` terms and mitmproxy's ``~`` operators (with
mitmproxy's meaning) plus the reference's LLM ones. See docs/filters.md for the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from flowbook.filters import per_flow, vectorized
from flowbook.filters.ast import FlowTerm, Node
from flowbook.filters.errors import FilterError
from flowbook.filters.parser import parse_tree
from flowbook.filters.source import FlowSource, MemoryFlowSource
from flowbook.model import LLMFlow

__all__ = [
    "Filter",
    "FilterError",
    "FlowSource",
    "FlowTerm",
    "MemoryFlowSource",
    "parse",
    "validate",
]


@dataclass(frozen=True)
class Filter:
    """A parsed filter expression. Immutable and cheap to keep (compile once, apply often)."""

    expression: str
    root: Node
    _flow_terms: tuple[FlowTerm, ...] = field(default=(), repr=False, compare=False)

    def mask(self, df: pd.DataFrame, source: FlowSource | None = None) -> pd.Series:
        """A bool Series (aligned with ``df.index``) of the summary rows that match.

        ``source`` answers terms that need the full flow (see ``needs_full_flow``); without one
        such a term raises FilterError.
        """
        return vectorized.mask(self.root, df, source)

    def matches(self, flow: LLMFlow) -> bool:
        """Whether one flow matches (same answer as ``mask`` gives for its summary row)."""
        return per_flow.matches(self.root, flow)

    def __call__(self, flow: LLMFlow) -> bool:
        return self.matches(flow)

    @property
    def needs_full_flow(self) -> bool:
        """True if some term needs more than the summary (text search, bodies, headers…)."""
        return bool(self._flow_terms)

    @property
    def flow_terms(self) -> list[FlowTerm]:
        """Every term that needs the full flow."""
        return list(self._flow_terms)

    @property
    def text_terms(self) -> list[FlowTerm]:
        """The ``content:``/``request:``/``response:`` terms (``.kind``, ``.matcher``,
        ``.literal``), which a store may answer with its full-text index."""
        return [t for t in self._flow_terms if t.is_text_search]

    def __str__(self) -> str:
        """The filter in canonical, fully explicit form (parses back to the same filter)."""
        return str(self.root)


def parse(expression: str) -> Filter:
    """Parse a filter expression. An empty or blank expression matches every flow.

    Raises FilterError (a ValueError) with ``.position`` and ``.hint`` when it is invalid.
    """
    if not isinstance(expression, str):
        raise FilterError(f"a filter must be a string, not {type(expression).__name__}", 0)
    root = parse_tree(expression)
    flow_terms = tuple(n for n in root.walk() if isinstance(n, FlowTerm))
    return Filter(expression, root, flow_terms)


def validate(expression: str) -> FilterError | None:
    """The error an expression would raise, or None if it is valid (for live input boxes)."""
    try:
        parse(expression)
    except FilterError as exc:
        return exc
    return None

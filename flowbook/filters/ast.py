"""The parsed form of a filter: a small tree of boolean nodes over terms.

Terms come in two kinds. *Summary terms* (``TextTerm``, ``NumTerm``, ``FlagTerm``) read only the
columns of the summary DataFrame (``flowbook.schema.COLUMNS``), so the vectorised
evaluator answers them with pandas/numpy. ``FlowTerm`` needs the full flow (bodies, headers,
message text, tool names); a store answers it through a ``FlowSource``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from flowbook.filters.matchers import NumCondition, TextMatcher


class Node:
    """Base of every node; ``walk`` yields the node and everything below it."""

    def walk(self) -> Iterator[Node]:
        yield self


@dataclass(frozen=True)
class And(Node):
    children: tuple[Node, ...]

    def walk(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.walk()

    def __str__(self) -> str:
        return " AND ".join(_wrap(c) for c in self.children)


@dataclass(frozen=True)
class Or(Node):
    children: tuple[Node, ...]

    def walk(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.walk()

    def __str__(self) -> str:
        return " OR ".join(_wrap(c) for c in self.children)


@dataclass(frozen=True)
class Not(Node):
    child: Node

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.child.walk()

    def __str__(self) -> str:
        return f"NOT {_wrap(self.child)}"


@dataclass(frozen=True)
class Const(Node):
    """A term whose answer does not depend on the flow (``~all``, ``~http``, ``~tcp``)."""

    value: bool
    label: str

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class TextTerm(Node):
    """A text field of the summary (``model:gpt-4``, ``~d openai``, bare URL regex)."""

    key: str
    matcher: TextMatcher

    def __str__(self) -> str:
        return f"{self.key}:{self.matcher}"


@dataclass(frozen=True)
class NumTerm(Node):
    """A numeric field of the summary (``tokens:>1.5k``, ``latency:>2s``, ``~c 429``)."""

    key: str
    condition: NumCondition

    def __str__(self) -> str:
        return f"{self.key}:{self.condition}"


@dataclass(frozen=True)
class FlagTerm(Node):
    """A yes/no property of the summary (``is:error``, ``has:thinking``, ``~q``)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class FlowTerm(Node):
    """A term that needs the full flow.

    ``kind`` is ``content``/``request``/``response`` (text search), ``tool`` (a tool the model
    called), ``has_tools`` (the request offers tools), or a mitmproxy operator name (``b``,
    ``bq``, ``bs``, ``h``, ``hq``, ``hs``, ``t``, ``tq``, ``ts``, ``a``, ``comment``,
    ``marker``, ``src``, ``dst``, ``meta``).
    """

    kind: str
    matcher: TextMatcher | None = None
    # Column in the expression, so "needs flow bodies" errors can point at the term.
    pos: int = field(default=0, compare=False)

    @property
    def is_text_search(self) -> bool:
        """True for ``content:``/``request:``/``response:``: what a store's FTS index answers."""
        return self.kind in TEXT_SEARCH_KINDS

    @property
    def literal(self) -> str | None:
        """The plain substring of a text search, if it is one (FTS can answer those)."""
        return self.matcher.literal if self.matcher is not None else None

    def __str__(self) -> str:
        if self.kind in TEXT_SEARCH_KINDS or self.kind == "tool":
            return f"{self.kind}:{self.matcher}"
        if self.kind == "has_tools":
            return "has:tools"
        if self.matcher is None:
            return f"~{self.kind}"
        return f"~{self.kind} {_mitm_arg(self.matcher.pattern)}"


TEXT_SEARCH_KINDS = frozenset({"content", "request", "response"})


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, And | Or) else str(node)


def _mitm_arg(pattern: str) -> str:
    """Print a regex as a mitmproxy operator argument that reads back unchanged."""
    if pattern and not any(c in pattern for c in "()~'\"\\ \t\r\n&|!"):
        return pattern
    return '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'

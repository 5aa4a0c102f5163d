"""Per-flow evaluator: does one ``LLMFlow`` match? (live rules, intercept, the FlowSource fallback)

Summary terms read ``summary_row(flow)`` (computed once per call, only if needed) through the
same field definitions and matchers as the vectorised evaluator, so both always agree.
"""

from __future__ import annotations

from typing import Any

from flowbook.filters.ast import And, Const, FlagTerm, FlowTerm, Node, Not, NumTerm, Or, TextTerm
from flowbook.filters.fields import FLAGS, row_number, row_text, tag_list
from flowbook.filters.matchers import TextMatcher
from flowbook.model import LLMFlow
from flowbook.schema import summary_row

_ASSET_TYPES = TextMatcher(
    "regex",
    r"text/javascript|application/x-javascript|application/javascript|text/css|image/.*"
    r"|font/.*|application/font.*",
)


class _RowCache:
    """The flow's summary row, built on first use."""

    def __init__(self, flow: LLMFlow) -> None:
        self.flow = flow
        self._row: dict[str, Any] | None = None

    @property
    def row(self) -> dict[str, Any]:
        if self._row is None:
            self._row = summary_row(self.flow)
        return self._row


def matches(node: Node, flow: LLMFlow) -> bool:
    """Evaluate a parsed filter against one flow."""
    return _eval(node, _RowCache(flow))


def _eval(node: Node, ctx: _RowCache) -> bool:
    if isinstance(node, And):
        return all(_eval(c, ctx) for c in node.children)
    if isinstance(node, Or):
        return any(_eval(c, ctx) for c in node.children)
    if isinstance(node, Not):
        return not _eval(node.child, ctx)
    if isinstance(node, Const):
        return node.value
    if isinstance(node, TextTerm):
        return match_text_value(node.key, node.matcher, row_text(ctx.row, node.key))
    if isinstance(node, NumTerm):
        return node.condition(row_number(ctx.row, node.key))
    if isinstance(node, FlagTerm):
        return FLAGS[node.name].row(ctx.row)
    if isinstance(node, FlowTerm):
        return flow_term_matches(node, ctx.flow)
    raise TypeError(f"unknown filter node {node!r}")


def match_text_value(key: str, matcher: TextMatcher, value: str | None) -> bool:
    """Match one summary text value; ``tag`` and ``session`` values are comma-joined (a flow
    may have several tags and belong to several sessions) and matched one by one."""
    if key not in ("tag", "session"):
        return matcher(value)
    if value is None:
        return False
    tags = tag_list(value)
    if matcher.mode == "not_exact":
        # tag:!=x means "has no tag x" (untagged flows included), not "has some other tag".
        return not any(t.lower() == matcher.pattern.lower() for t in tags)
    return any(matcher(t) for t in tags)


def request_text(flow: LLMFlow) -> str:
    """What ``request:`` searches: system prompt, messages and offered tools."""
    return flow.request.plain_text()


def response_text(flow: LLMFlow) -> str:
    """What ``response:`` searches: text, thinking, tool calls and the error message."""
    chunks = [flow.response.plain_text() if flow.response else ""]
    if flow.error is not None:
        chunks.append(flow.error.message or "")
    return "\n".join(c for c in chunks if c)


def _decode(body: bytes | None) -> str | None:
    return None if body is None else body.decode("utf-8", errors="replace")


def _header_lines(headers: dict[str, str] | None) -> str:
    return "\r\n".join(f"{k}: {v}" for k, v in (headers or {}).items())


def _content_type(headers: dict[str, str] | None) -> list[str]:
    return [v for k, v in (headers or {}).items() if k.lower() == "content-type"]


def flow_term_matches(term: FlowTerm, flow: LLMFlow) -> bool:
    """Evaluate a term that needs the full flow (mitmproxy semantics for the ~ operators)."""
    m = term.matcher
    req, resp, kind = flow.request, flow.response, term.kind
    if kind == "has_tools":
        return bool(req.tools)
    if kind == "a":
        return resp is not None and any(_ASSET_TYPES(v) for v in _content_type(resp.headers))
    assert m is not None
    if kind == "content":
        return m(request_text(flow)) or m(response_text(flow))
    if kind == "request":
        return m(request_text(flow))
    if kind == "response":
        return m(response_text(flow))
    if kind == "tool":
        return resp is not None and any(m(c.name) for c in resp.tool_calls)
    if kind in ("b", "bq", "bs"):
        bodies = [req.body if kind != "bs" else None, resp.body if resp and kind != "bq" else None]
        return any(m(_decode(b)) for b in bodies if b is not None)
    if kind in ("h", "hq", "hs"):
        if kind != "hs" and m(_header_lines(req.headers)):
            return True
        return kind != "hq" and resp is not None and m(_header_lines(resp.headers))
    if kind in ("t", "tq", "ts"):
        values = _content_type(req.headers) if kind != "ts" else []
        if resp is not None and kind != "tq":
            values += _content_type(resp.headers)
        return any(m(v) for v in values)
    if kind == "comment":
        return m(flow.annotations.comment or "")
    if kind == "marker":
        return m(flow.annotations.marker or "")
    if kind == "src":
        return m(flow.metadata.client_address)
    if kind == "dst":
        return m(flow.metadata.server_address)
    if kind == "meta":
        return m("\n".join(f"{k}: {v}" for k, v in flow.metadata.extra.items()))
    raise TypeError(f"unknown flow term {kind!r}")

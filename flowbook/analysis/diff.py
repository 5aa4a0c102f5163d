"""Compare two flows (``fb.diff``): parameters, tools, system prompt, aligned messages, response.

Works on the provider-neutral model, so an OpenAI and an Anthropic call carrying the same
conversation differ only where they really do (provider, parameters). Messages are aligned by
content, not by index: the common prefix is matched first (agents append to their history),
then an LCS over ``(role, tool_call_id, content hash)`` aligns the rest, so one inserted message
is one insertion instead of a cascade of changes. Pure Python; the widget lives in
:mod:`flowbook.ui.diff`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flowbook.analysis.diff_text import (
    FieldChange,
    TextDiff,
    diff_text,
    diff_values,
    similarity,
)
from flowbook.model import LLMFlow, Message, Part, message_hash

IGNORABLE = frozenset({"ids", "timestamps", "usage"})
DEFAULT_IGNORE = ("ids", "timestamps")
# Beyond this many cells the exact LCS table costs too much; difflib's matcher (longest blocks
# first) aligns instead — still by content, just not guaranteed minimal.
MAX_LCS_CELLS = 1_000_000
# Two messages in the same gap count as "one changed message" from this similarity up.
PAIR_SIMILARITY = 0.5

MessageKind = Literal["equal", "insert", "delete", "change"]


@dataclass
class MessageOp:
    """One row of the aligned conversation. ``a_index``/``b_index`` index the flows'
    ``request.messages`` (a message holding several tool results shows as one row each)."""

    kind: MessageKind
    a_index: int | None
    b_index: int | None
    a: Message | None
    b: Message | None
    text: TextDiff | None = None  # word diff of the rendered message, for "change"

    @property
    def role(self) -> str:
        m = self.b or self.a
        return m.role if m else ""


@dataclass
class ToolChange:
    """A tool offered in one flow and not the other, or offered in both with a different
    description or schema (``changes`` holds the paths, e.g. ``parameters.properties.city``)."""

    name: str
    kind: Literal["added", "removed", "changed"]
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class Changes:
    """Everything that differs between two flows, section by section."""

    overview: list[FieldChange] = field(default_factory=list)
    params: list[FieldChange] = field(default_factory=list)
    tools: list[ToolChange] = field(default_factory=list)
    system: TextDiff = field(default_factory=TextDiff)
    messages: list[MessageOp] = field(default_factory=list)
    response_text: TextDiff = field(default_factory=TextDiff)
    response_thinking: TextDiff = field(default_factory=TextDiff)
    response: list[FieldChange] = field(default_factory=list)

    @property
    def message_changes(self) -> list[MessageOp]:
        """The aligned messages that are not equal."""
        return [op for op in self.messages if op.kind != "equal"]

    def sections(self) -> list[str]:
        """Names of the sections that hold a difference."""
        present = {
            "overview": bool(self.overview),
            "params": bool(self.params),
            "tools": bool(self.tools),
            "system": bool(self.system),
            "messages": bool(self.message_changes),
            "response_text": bool(self.response_text),
            "response_thinking": bool(self.response_thinking),
            "response": bool(self.response),
        }
        return [name for name, on in present.items() if on]

    @property
    def empty(self) -> bool:
        return not self.sections()


class FlowDiff:
    """The difference between two flows: structured ``.changes``, ``.to_markdown()``, and a
    side-by-side widget when displayed in a notebook (static HTML where widgets do not run)."""

    def __init__(self, a: LLMFlow, b: LLMFlow, changes: Changes, ignore: frozenset[str]) -> None:
        self.a = a
        self.b = b
        self.changes = changes
        self.ignore = ignore

    def __bool__(self) -> bool:
        return not self.changes.empty

    def summary(self) -> list[str]:
        """One line per difference, e.g. ``params.temperature: 0.2 → 0.7``."""
        from flowbook.analysis.diff_markdown import summary_lines

        return summary_lines(self)

    def to_markdown(self) -> str:
        """The diff as Markdown; captured text sits in fenced blocks, so it renders inert."""
        from flowbook.analysis.diff_markdown import to_markdown

        return to_markdown(self)

    def widget(self) -> Any:
        """The side-by-side widget (an anywidget)."""
        from flowbook.ui.diff import DiffWidget

        return DiffWidget(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from flowbook.ui.diff import mimebundle

        return mimebundle(self)

    def __repr__(self) -> str:
        what = ", ".join(self.changes.sections()) or "no differences"
        return f"<FlowDiff {self.a.id} → {self.b.id}: {what}>"


def diff_flows(a: LLMFlow, b: LLMFlow, *, ignore: Iterable[str] = DEFAULT_IGNORE) -> FlowDiff:
    """Compare two flows. ``ignore`` leaves out volatile fields: ``"ids"`` (flow, response and
    tool call ids), ``"timestamps"`` (times, latency, TTFT), ``"usage"`` (tokens and cost)."""
    ign = frozenset([ignore] if isinstance(ignore, str) else ignore)
    unknown = ign - IGNORABLE
    if unknown:
        raise ValueError(
            f"cannot ignore {sorted(unknown)}: choose from {sorted(IGNORABLE)} "
            f"(default {DEFAULT_IGNORE})"
        )
    ra, rb = a.request, b.request
    changes = Changes(
        overview=diff_values(_overview(a, ign), _overview(b, ign)),
        params=diff_values(ra.params, rb.params),
        tools=diff_tools(ra.tools, rb.tools),
        system=diff_text(ra.system, rb.system),
        messages=align_messages(ra.messages, rb.messages, use_ids="ids" not in ign),
    )
    pa, pb = a.response, b.response
    changes.response_text = diff_text(pa.text if pa else "", pb.text if pb else "")
    changes.response_thinking = diff_text(pa.thinking if pa else "", pb.thinking if pb else "")
    changes.response = diff_values(_response_fields(a, ign), _response_fields(b, ign))
    return FlowDiff(a, b, changes, ign)


# ---- overview and response fields ---------------------------------------------------------------


def _overview(f: LLMFlow, ignore: frozenset[str]) -> dict[str, Any]:
    r = f.response
    out: dict[str, Any] = {
        "provider": f.metadata.provider,
        "api": f.metadata.api,
        "model": f.model,
        "method": f.request.method,
        "host": f.request.host,
        "path": f.request.path.split("?", 1)[0],
        "stream": f.request.stream,
        "state": str(f.state),
        "status_code": r.status_code if r else None,
        "stop_reason": r.stop_reason if r else None,
    }
    if "ids" not in ignore:
        out["id"] = f.id
        out["response_id"] = r.response_id if r else None
    if "timestamps" not in ignore:
        out["created"] = f.timestamps.created
        out["latency_ms"] = f.timestamps.latency_ms
        out["ttft_ms"] = f.timestamps.ttft_ms
    if "usage" not in ignore:
        u = f.usage
        for name in ("input", "output", "cache_read", "cache_write", "reasoning"):
            out[f"{name}_tokens"] = getattr(u, name) if u and u.source != "missing" else None
        out["cost_usd"] = f.metadata.cost_usd
    return out


def _response_fields(f: LLMFlow, ignore: frozenset[str]) -> dict[str, Any]:
    """Response parts besides text and thinking: tool calls (by name), refusal, error."""
    out: dict[str, Any] = {}
    r = f.response
    if r is not None:
        seen: dict[str, int] = {}
        for call in r.tool_calls:
            n = seen.get(call.name, 0)
            seen[call.name] = n + 1
            key = f"tool_calls[{call.name}]" if n == 0 else f"tool_calls[{call.name}#{n + 1}]"
            entry: dict[str, Any] = {"arguments": call.arguments}
            if "ids" not in ignore:
                entry["id"] = call.id
            out[key] = entry
        if r.refusal:
            out["refusal"] = r.refusal
    if f.error is not None:
        out["error"] = {"type": str(f.error.type), "message": f.error.message}
    return out


# ---- tools --------------------------------------------------------------------------------------


def diff_tools(a: Sequence[Any], b: Sequence[Any]) -> list[ToolChange]:
    """Tools by name: added, removed, or changed (description, type, schema by key)."""
    ta = {t.name: t for t in a}
    tb = {t.name: t for t in b}
    out: list[ToolChange] = []
    for name in list(ta) + [n for n in tb if n not in ta]:
        if name not in tb:
            out.append(ToolChange(name, "removed"))
        elif name not in ta:
            out.append(ToolChange(name, "added"))
        else:
            x, y = ta[name], tb[name]
            fields = diff_values(
                {"description": x.description, "type": x.type, "parameters": x.parameters},
                {"description": y.description, "type": y.type, "parameters": y.parameters},
            )
            if fields:
                out.append(ToolChange(name, "changed", fields))
    return out


# ---- messages -----------------------------------------------------------------------------------


def _units(messages: Sequence[Message]) -> list[tuple[int, Message]]:
    """Messages as alignment units: each tool result becomes its own ``tool`` unit.

    OpenAI sends one ``tool`` message per result, Anthropic one ``user`` message holding every
    ``tool_result`` block; splitting both the same way makes the same conversation align.
    """
    out: list[tuple[int, Message]] = []
    for i, m in enumerate(messages):
        results = [p for p in m.parts if p.type == "tool_result"]
        if not results:
            out.append((i, m))
            continue
        out += [(i, Message(role="tool", parts=[p])) for p in results]
        rest = [p for p in m.parts if p.type != "tool_result"]
        if rest:
            out.append((i, Message(role=m.role, parts=rest, name=m.name)))
    return out


def _tool_call_id(m: Message) -> str | None:
    for p in m.parts:
        if p.type == "tool_result" and p.tool_call_id:
            return p.tool_call_id
    return None


def _key(m: Message, use_ids: bool) -> tuple[str, str | None, str]:
    return (m.role, _tool_call_id(m) if use_ids else None, message_hash(m))


def align_messages(
    a: Sequence[Message], b: Sequence[Message], *, use_ids: bool = False
) -> list[MessageOp]:
    """Align two conversations by content: common prefix, common suffix, LCS for the middle;
    in each gap, messages of the same role that are alike (or answer the same tool call) are
    paired as one changed message."""
    ua, ub = _units(a), _units(b)
    ka = [_key(m, use_ids) for _, m in ua]
    kb = [_key(m, use_ids) for _, m in ub]
    lo = 0
    while lo < len(ka) and lo < len(kb) and ka[lo] == kb[lo]:
        lo += 1
    hi_a, hi_b = len(ka), len(kb)
    while hi_a > lo and hi_b > lo and ka[hi_a - 1] == kb[hi_b - 1]:
        hi_a, hi_b = hi_a - 1, hi_b - 1
    matches = [(i, i) for i in range(lo)]
    matches += [(lo + i, lo + j) for i, j in _lcs(ka[lo:hi_a], kb[lo:hi_b])]
    matches += [(hi_a + k, hi_b + k) for k in range(len(ka) - hi_a)]
    ops: list[MessageOp] = []
    pi = pj = 0
    for i, j in [*matches, (len(ua), len(ub))]:
        ops += _gap(ua, ub, list(range(pi, i)), list(range(pj, j)))
        if i < len(ua) and j < len(ub):
            ops.append(MessageOp("equal", ua[i][0], ub[j][0], ua[i][1], ub[j][1]))
        pi, pj = i + 1, j + 1
    return ops


def _lcs(ka: Sequence[Any], kb: Sequence[Any]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of two key lists."""
    n, m = len(ka), len(kb)
    if not n or not m:
        return []
    if n * m > MAX_LCS_CELLS:
        import difflib

        blocks = difflib.SequenceMatcher(None, list(ka), list(kb), autojunk=False)
        return [
            (blk.a + k, blk.b + k) for blk in blocks.get_matching_blocks() for k in range(blk.size)
        ]
    # Suffix table: L[i][j] = LCS length of ka[i:], kb[j:]; then walk forward.
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if ka[i] == kb[j] else max(below[j], row[j + 1])
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if ka[i] == kb[j]:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _gap(
    ua: list[tuple[int, Message]],
    ub: list[tuple[int, Message]],
    deleted: list[int],
    inserted: list[int],
) -> list[MessageOp]:
    """Ops for a run of unmatched units: pairs become changes, the rest deletes and inserts."""
    if not deleted and not inserted:
        return []
    pairs = _pair(
        [ua[d][1] for d in deleted], [ub[i][1] for i in inserted]
    )  # positions within the gap
    ops: list[MessageOp] = []
    di = ii = 0
    for pd, pi in [*pairs, (len(deleted), len(inserted))]:
        for d in deleted[di:pd]:
            ops.append(MessageOp("delete", ua[d][0], None, ua[d][1], None))
        for i in inserted[ii:pi]:
            ops.append(MessageOp("insert", None, ub[i][0], None, ub[i][1]))
        if pd < len(deleted) and pi < len(inserted):
            ma, mb = ua[deleted[pd]][1], ub[inserted[pi]][1]
            text = diff_text(message_text(ma), message_text(mb))
            ops.append(MessageOp("change", ua[deleted[pd]][0], ub[inserted[pi]][0], ma, mb, text))
        di, ii = pd + 1, pi + 1
    return ops


def _pair(da: list[Message], db: list[Message]) -> list[tuple[int, int]]:
    """Monotonic pairs (i in da, j in db) of messages that are one changed message."""
    if len(da) == len(db) and all(x.role == y.role for x, y in zip(da, db, strict=True)):
        return list(zip(range(len(da)), range(len(db)), strict=True))
    pairs: list[tuple[int, int]] = []
    start = 0
    for i, x in enumerate(da):
        best, best_score = None, PAIR_SIMILARITY
        x_id, x_text = _tool_call_id(x), message_text(x)
        for j in range(start, len(db)):
            y = db[j]
            if y.role != x.role:
                continue
            if x_id is not None and x_id == _tool_call_id(y):
                best = j
                break
            score = similarity(x_text, message_text(y))
            if score >= best_score:
                best, best_score = j, score
        if best is not None:
            pairs.append((i, best))
            start = best + 1
    return pairs


# ---- rendering a message as text ----------------------------------------------------------------


def part_text(p: Part) -> str:
    """One part as a line of readable text (what the diff of a changed message compares)."""
    if p.type == "text":
        return p.text or ""
    if p.type == "thinking":
        return "[thinking redacted]" if p.redacted else f"[thinking] {p.text or ''}"
    if p.type == "tool_call":
        args = p.arguments
        shown = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, indent=1)
        return f"→ {p.name}({shown})"
    if p.type == "tool_result":
        return f"← {'error: ' if p.is_error else ''}{p.plain_text()}"
    if p.type in ("image", "document"):
        where = p.media_type or (p.url or "")[:60]
        return f"[{p.type} {where}]".replace(" ]", "]")
    return p.plain_text() or f"[{p.type}]"


def message_text(m: Message) -> str:
    """A message's parts as text, one part per paragraph."""
    return "\n".join(part_text(p) for p in m.parts)

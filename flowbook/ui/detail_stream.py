"""The Stream tab's data: every event with its arrival offset, and tokens over time.

Token counts per event are estimated from the text the event carries (the heuristic counter of
:mod:`flowbook.analysis.tokens`: no tokenizer download, cheap enough for thousands of events), so
the sparkline shows the shape of the stream, stalls included, not exact counts. Summary events
that repeat the whole answer (OpenAI Responses' ``*.done``/``response.completed``) carry no new
tokens and are not counted.
"""

from __future__ import annotations

import json
from typing import Any

from flowbook.analysis.tokens import heuristic_count
from flowbook.model import StreamEvent
from flowbook.redact import DEFAULT as REDACT

MAX_EVENTS = 3000  # events listed; the series covers all of them
EVENT_PREVIEW = 400  # characters of one event's data
MAX_POINTS = 600  # points of the tokens-over-time series
# Keys whose string values are generated text in some provider's stream events.
TEXT_KEYS = frozenset(
    {
        "text",
        "content",
        "delta",
        "thinking",
        "partial_json",
        "arguments",
        "reasoning_content",
        "reasoning",
        "refusal",
        "thought",
    }
)


def event_text(data: Any, depth: int = 0) -> str:
    """The generated text an event carries, found under :data:`TEXT_KEYS` at any depth."""
    if depth > 8:
        return ""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in TEXT_KEYS and isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict | list):
                found.append(event_text(value, depth + 1))
    elif isinstance(data, list):
        found += [event_text(v, depth + 1) for v in data]
    return "".join(found)


def _repeats_answer(ev: StreamEvent) -> bool:
    name = ev.event or (ev.data.get("type") if isinstance(ev.data, dict) else None) or ""
    if not isinstance(name, str):
        return False
    return name.startswith("response.") and "delta" not in name


def _label(ev: StreamEvent) -> str:
    """The event's SSE name, else the ``type`` its data declares (OpenAI Chat has neither)."""
    if ev.event:
        return ev.event
    kind = ev.data.get("type") if isinstance(ev.data, dict) else None
    if isinstance(kind, str):
        return kind
    if isinstance(ev.data, str) and ev.data.strip() == "[DONE]":
        return "[DONE]"
    return "data"


def _preview(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= EVENT_PREVIEW else text[:EVENT_PREVIEW] + "…"


_SEP = "\n\x00\n"  # no secret pattern spans a NUL


def _mask_all(previews: list[str]) -> list[str]:
    """Mask every preview with one pass of the redaction rules (one pass per event costs ~40 µs
    each: a few thousand events would make every refresh of a streaming flow slow)."""
    if not previews:
        return previews
    masked = REDACT.mask_text(_SEP.join(p.replace("\x00", "") for p in previews)).split(_SEP)
    return masked if len(masked) == len(previews) else [REDACT.mask_text(p) for p in previews]


def stream_section(events: list[StreamEvent], start: float) -> dict[str, Any]:
    """Events (first :data:`MAX_EVENTS`), the cumulative token series, the longest gap, and
    ``last_token_t`` (epoch seconds of the last event with text; the caller pops it)."""
    rows: list[dict[str, Any]] = []
    series: list[tuple[float, int]] = []
    total = 0
    last_token_t: float | None = None
    gap, gap_at, prev = 0.0, None, start
    for i, ev in enumerate(events):
        n = 0 if _repeats_answer(ev) else heuristic_count(event_text(ev.data))
        offset = round(max(0.0, (ev.t - start) * 1000.0), 1)
        if ev.t - prev > gap:
            gap, gap_at = ev.t - prev, round(max(0.0, (prev - start) * 1000.0), 1)
        prev = ev.t
        total += n
        if n:
            last_token_t = ev.t
        series.append((offset, total))
        if i < MAX_EVENTS:
            rows.append(
                {
                    "i": i,
                    "offset_ms": offset,
                    "event": _label(ev),
                    "tokens": n,
                    "data": _preview(ev.data),
                }
            )
    for row, text in zip(rows, _mask_all([r["data"] for r in rows]), strict=True):
        row["data"] = text
    if len(series) > MAX_POINTS:
        step = len(series) / MAX_POINTS
        series = [series[int(k * step)] for k in range(MAX_POINTS)] + [series[-1]]
    return {
        "events": rows,
        "total": len(events),
        "shown": len(rows),
        "series": [list(p) for p in series],
        "tokens_estimated": True,
        "tokens": total,
        "longest_gap_ms": round(gap * 1000.0, 1) if events else None,
        "longest_gap_at_ms": gap_at,
        "last_token_t": last_token_t,
    }

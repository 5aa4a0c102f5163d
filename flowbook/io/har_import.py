"""Read HAR files (browser DevTools, other tools, flowbook's own) into LLMFlows.

Every entry goes through :func:`flowbook.io.builder.build_flow`, so an LLM call in a HAR is
detected and rebuilt exactly as live traffic is; other entries (pages, images, analytics) are
skipped. An entry written by flowbook carries ``_llm``: its id, timestamps, metadata,
annotations, state and each stream event's arrival offset are restored from it, so a flowbook
HAR loads back into the flows it was written from.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flowbook.io.builder import Exchange, build_flow
from flowbook.model import (
    FlowAnnotations,
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _num(d: dict[str, Any], key: str) -> float:
    v = d.get(key)
    return float(v) if isinstance(v, int | float) and v > 0 else 0.0


def _headers(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in items or []:
        if isinstance(h, dict) and "name" in h:
            name, value = str(h["name"]), str(h.get("value", ""))
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _text(holder: dict[str, Any] | None, enc_key: str) -> bytes | None:
    if not holder or holder.get("text") is None:
        return None
    text = str(holder["text"])
    if holder.get(enc_key) == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def exchange(entry: dict[str, Any]) -> Exchange:
    """The HTTP exchange one HAR entry records (times from ``startedDateTime`` + timings)."""
    req, resp = entry.get("request") or {}, entry.get("response") or {}
    t = entry.get("timings") or {}
    created = _epoch(str(entry["startedDateTime"]))
    before = sum(_num(t, k) for k in ("blocked", "dns", "connect", "ssl")) + _num(t, "send")
    sent = created + before / 1000.0
    first = sent + _num(t, "wait") / 1000.0
    done = first + _num(t, "receive") / 1000.0
    status = int(resp.get("status") or 0)
    body = _text(resp.get("content"), "encoding")
    ext: dict[str, Any] = entry["_llm"] if isinstance(entry.get("_llm"), dict) else {}
    flow_id = ext.get("flow_id") if isinstance(ext.get("flow_id"), str) else None
    raw_body = _text(req.get("postData"), "_encoding") or b""
    if flow_id is None:  # stable ids: loading the same file twice does not duplicate flows
        key = f"{entry['startedDateTime']}\0{req.get('method')}\0{req.get('url')}\0".encode()
        flow_id = hashlib.sha256(key + raw_body).hexdigest()[:16]
    error = resp.get("_error") or (None if status else "no response")
    return Exchange(
        method=str(req.get("method", "GET")),
        url=str(req.get("url", "")),
        request_headers=_headers(req.get("headers")),
        request_body=raw_body,
        status=status if status else None,
        reason=str(resp.get("statusText") or ""),
        response_headers=_headers(resp.get("headers")),
        response_body=body,
        response_body_decoded=True,  # HAR content.text is the decoded body
        created=created,
        request_sent=sent,
        first_byte=first if status else None,
        completed=done,
        error=str(error) if error else None,
        server_address=entry.get("serverIPAddress"),
        flow_id=flow_id,
    )


def _restore(flow: LLMFlow, ext: dict[str, Any]) -> None:
    """Put back what only flowbook knew (times, metadata, annotations, outcome)."""
    if isinstance(ext.get("timestamps"), dict):
        flow.timestamps = FlowTimestamps.from_dict(ext["timestamps"])
    if isinstance(ext.get("metadata"), dict):
        flow.metadata = FlowMetadata.from_dict(ext["metadata"])
    if isinstance(ext.get("annotations"), dict):
        flow.annotations = FlowAnnotations.from_dict(ext["annotations"])
    if ext.get("state"):
        flow.state = FlowState(ext["state"])
    flow.error = FlowError.from_dict(ext["error"]) if isinstance(ext.get("error"), dict) else None
    if ext.get("flow_type"):
        flow.flow_type = str(ext["flow_type"])
    events = ext.get("stream_events")
    resp = flow.response
    if resp is not None and isinstance(events, list) and len(events) == len(resp.events):
        start = flow.timestamps.created
        for ev, saved in zip(resp.events, events, strict=True):
            ev.t = round(start + float(saved.get("offset_ms", 0.0)) / 1000.0, 6)


def read(doc: dict[str, Any]) -> Iterator[LLMFlow]:
    """LLM flows in a parsed HAR document, in file order."""
    log = doc.get("log")
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise ValueError("not a HAR file: it needs a log object with an entries list")
    for entry in log["entries"]:
        if not isinstance(entry, dict) or "startedDateTime" not in entry:
            continue
        flow = build_flow(exchange(entry))
        if flow is None:
            continue
        ext = entry.get("_llm")
        if isinstance(ext, dict) and ext.get("flow_id"):
            _restore(flow, ext)
        elif entry.get("comment"):
            flow.annotations.comment = str(entry["comment"])
        yield flow

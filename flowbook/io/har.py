"""HAR 1.2 export (http://www.softwareishard.com/blog/har-12-spec/) with an ``_llm`` extension.

Field names are the spec's (``redirectURL``, ``serverIPAddress`` — the reference got them
wrong). A streamed response's body is the bytes the client received (``content.text``: the SSE
text, or base64 for binary AWS event streams); what flowbook rebuilt from it and each event with
its arrival offset go in the entry's ``_llm`` object, which browsers ignore and
:mod:`flowbook.io.har_import` reads back.

Timings: ``send`` is the time from the request reaching flowbook to it leaving for the upstream
(interception holds included), ``wait`` the time to the first response byte, ``receive`` the
rest of the body; ``time`` is their sum, as the spec requires.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

import flowbook
from flowbook.model import LLMFlow

CREATOR = {"name": "flowbook", "version": flowbook.__version__, "comment": "LLM API flows"}


def iso(t: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0
    return round(max(0.0, (b - a) * 1000.0), 3)


def _headers(headers: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers.items()]


def _content_type(headers: dict[str, str], default: str) -> str:
    for k, v in headers.items():
        if k.lower() == "content-type":
            return v
    return default


def _body_text(body: bytes) -> tuple[str, str | None]:
    """(text, encoding): UTF-8 text as is, anything else as base64."""
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def timings(flow: LLMFlow) -> dict[str, float]:
    ts = flow.timestamps
    sent = ts.request_sent or ts.created
    first = ts.first_byte
    end = ts.completed
    send = _ms(ts.created, ts.request_sent)
    wait = _ms(sent, first if first is not None else end)
    receive = _ms(first, end) if first is not None else 0.0
    return {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1,
            "send": send, "wait": wait, "receive": receive}  # fmt: skip


def _request(flow: LLMFlow) -> dict[str, Any]:
    req = flow.request
    url = req.url or f"http://{req.host or 'localhost'}{req.path}"
    out: dict[str, Any] = {
        "method": req.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(req.headers),
        "queryString": [{"name": k, "value": v}
                        for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": len(req.body) if req.body is not None else 0,
    }  # fmt: skip
    if req.body is not None:
        text, enc = _body_text(req.body)
        post: dict[str, Any] = {
            "mimeType": _content_type(req.headers, "application/json"),
            "params": [],
            "text": text,
        }
        if enc:
            post["_encoding"] = enc  # HAR 1.2 has no postData.encoding; flowbook's import reads it
        out["postData"] = post
    return out


def _response(flow: LLMFlow) -> dict[str, Any]:
    resp = flow.response
    if resp is None:
        out: dict[str, Any] = {
            "status": 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [],
            "headers": [], "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "", "headersSize": -1, "bodySize": -1,
        }  # fmt: skip
        if flow.error is not None:
            out["_error"] = flow.error.message
        return out
    content: dict[str, Any] = {
        "size": len(resp.body or b""),
        "mimeType": _content_type(resp.headers, "application/json"),
    }
    if resp.body is not None:
        text, enc = _body_text(resp.body)
        content["text"] = text
        if enc:
            content["encoding"] = enc
    encoded = any(k.lower() == "content-encoding" for k in resp.headers)
    return {
        "status": resp.status_code,
        "statusText": resp.reason or "",
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(resp.headers),
        "content": content,
        "redirectURL": resp.headers.get("location", ""),
        "headersSize": -1,
        # The body is kept decoded; its size on the wire is unknown when it was compressed.
        "bodySize": -1 if encoded or resp.body is None else len(resp.body),
    }


def llm_extension(flow: LLMFlow) -> dict[str, Any]:
    """What flowbook knows beyond HTTP: provider, API, model, usage, cost, TTFT, tool calls,
    thinking, errors and every stream event with its arrival offset (ms after the request)."""
    resp = flow.response
    start = flow.timestamps.created
    ext: dict[str, Any] = {
        "flow_id": flow.id,
        "provider": flow.provider,
        "api": flow.api,
        "flow_type": flow.flow_type,
        "model": flow.model,
        "state": str(flow.state),
        "stream": flow.request.stream,
        "usage": flow.usage.to_dict() if flow.usage else None,
        "cost_usd": flow.metadata.cost_usd,
        "ttft_ms": flow.timestamps.ttft_ms,
        "latency_ms": flow.timestamps.latency_ms,
        "stop_reason": resp.stop_reason if resp else None,
        "text": resp.text if resp else None,
        "thinking": (resp.thinking or None) if resp else None,
        "tool_calls": [c.to_dict() for c in resp.tool_calls] if resp else [],
        "stream_events": [
            {"offset_ms": round((e.t - start) * 1000.0, 3), "event": e.event, "data": e.data}
            | ({"headers": e.headers} if e.headers else {})
            for e in (resp.events if resp else [])
        ],
        "error": flow.error.to_dict() if flow.error else None,
        "timestamps": flow.timestamps.to_dict(),
        "metadata": flow.metadata.to_dict(),
        "annotations": flow.annotations.to_dict(),
    }
    return ext


def entry(flow: LLMFlow) -> dict[str, Any]:
    """One HAR entry for a flow."""
    t = timings(flow)
    out: dict[str, Any] = {
        "startedDateTime": iso(flow.timestamps.created),
        "time": round(t["send"] + t["wait"] + t["receive"], 3),
        "request": _request(flow),
        "response": _response(flow),
        "cache": {},
        "timings": t,
    }
    server = (flow.metadata.server_address or "").rsplit(":", 1)[0].strip("[]")
    try:
        out["serverIPAddress"] = str(ipaddress.ip_address(server))
    except ValueError:
        pass
    if flow.annotations.comment:
        out["comment"] = flow.annotations.comment
    out["_llm"] = llm_extension(flow)
    return out


def write(flows: Iterable[LLMFlow], out: TextIO) -> int:
    """Write a HAR document entry by entry (never the whole log in memory); returns the count."""
    n = 0
    head = {"version": "1.2", "creator": CREATOR, "pages": []}
    out.write('{"log": ' + json.dumps(head, ensure_ascii=False)[:-1] + ', "entries": [\n')
    for flow in flows:
        if n:
            out.write(",\n")
        out.write(json.dumps(entry(flow), ensure_ascii=False, default=str))
        n += 1
    comment = json.dumps(f"{n} LLM API flows exported by flowbook")
    out.write(f'\n], "comment": {comment}}}}}\n')
    return n

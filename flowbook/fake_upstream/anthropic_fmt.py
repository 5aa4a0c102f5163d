"""Anthropic Messages wire format (§3 of docs/wire-formats.md), modelled on
``tests/fixtures/real/anthropic/``: ``event:`` + ``data:`` pairs, whitespace padding inside the
JSON before its closing brace, a ``ping`` after the first block start, the full usage object in
``message_start`` (``output_tokens: 1`` placeholder) and cumulative usage in ``message_delta``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from flowbook.fake_upstream.common import (
    ERROR_STATUSES,
    TOOL_ARG_FRAGMENTS,
    FakeRequest,
    Plan,
    Reply,
    fresh_id,
    json_reply,
    make_plan,
    padded_json,
    split_words,
    stable_id,
    text_of,
)
from flowbook.streams.sse import encode_sse

_ERRORS = {
    400: ("invalid_request_error", "max_tokens: Field required (fake 400)"),
    401: ("authentication_error", "invalid x-api-key"),
    404: ("not_found_error", "model: {m}"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
}


def _headers(req_id: str) -> dict[str, str]:
    return {
        "request-id": req_id,
        "anthropic-organization-id": "00000000-0000-0000-0000-00000000fake",
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
    }


def _plan(body: dict[str, Any]) -> Plan:
    messages = body.get("messages") or []
    user_text: str | None = None
    tool_result: str | None = None
    if messages and messages[-1].get("role") == "user":
        content = messages[-1].get("content")
        if isinstance(content, list):
            results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if results:
                tool_result = text_of(results[-1].get("content"))
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            blocks = c if isinstance(c, list) else [c]
            texts = [text_of(b) for b in blocks if isinstance(b, str) or b.get("type") == "text"]
            if texts:
                user_text = "".join(texts)
                break
    names = [str(t.get("name", "")) for t in body.get("tools") or [] if "name" in t]
    choice = body.get("tool_choice") or {}
    forced: str | bool = choice.get("type") == "any"
    if choice.get("type") == "tool":
        forced = str(choice.get("name") or True)
    thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    return make_plan(
        str(body.get("model", "")),
        user_text,
        tool_result=tool_result,
        tool_names=names,
        forced_tool=forced,
        thinking=thinking,
        prompt=[body.get("system"), messages],
    )


def _signature(text: str) -> str:
    return "Ev" + base64.b64encode(("fake-signature:" + text).encode()).decode()


def _blocks(p: Plan, mid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if p.thinking is not None:
        out.append(
            {"type": "thinking", "thinking": p.thinking, "signature": _signature(p.thinking)}
        )
    if p.tool_name:
        tid = stable_id("toolu_", mid, 24)
        out.append(
            {"type": "tool_use", "id": tid, "name": p.tool_name, "input": json.loads(p.tool_args)}
        )
    else:
        out.append({"type": "text", "text": p.text})
    return out


def _usage(p: Plan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": p.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def messages(req: FakeRequest) -> Reply:
    """``POST /v1/messages`` (``?beta=true`` too), streamed or not."""
    body = req.json_dict
    model = str(body.get("model", ""))
    mid = fresh_id("msg_01", req, 22)
    req_id = stable_id("req_011", mid, 21)
    if model in ERROR_STATUSES:
        status = ERROR_STATUSES[model]
        etype, msg = _ERRORS[status]
        err = {"type": etype, "message": msg.format(m=model)}
        return json_reply(
            status, {"type": "error", "error": err, "request_id": req_id}, _headers(req_id)
        )
    p = _plan(body)
    stop = "tool_use" if p.tool_name else "end_turn"
    if not body.get("stream"):
        out = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": _blocks(p, mid),
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": _usage(p, p.output_tokens),
        }
        return json_reply(200, out, _headers(req_id))
    headers = {"Content-Type": "text/event-stream; charset=utf-8", **_headers(req_id)}
    return Reply(headers=headers, events=_events(p, mid, stop))


def _events(p: Plan, mid: str, stop: str) -> Iterator[bytes]:
    n = 0

    def ev(obj: dict[str, Any]) -> bytes:
        nonlocal n
        n += 7
        return encode_sse(padded_json(obj, n), obj["type"])

    start: dict[str, Any] = {"model": p.model, "id": mid, "type": "message", "role": "assistant"}
    start["content"] = []
    start |= {"stop_reason": None, "stop_sequence": None, "usage": _usage(p, 1)}
    yield ev({"type": "message_start", "message": start})
    for idx, block in enumerate(_blocks(p, mid)):
        kind = block["type"]
        if kind == "thinking":
            empty: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "tool_use":
            empty = {**block, "input": {}, "caller": {"type": "direct"}}
        else:
            empty = {"type": "text", "text": ""}
        yield ev({"type": "content_block_start", "index": idx, "content_block": empty})
        if idx == 0:
            yield encode_sse({"type": "ping"}, "ping")
        deltas: list[dict[str, Any]] = []
        if kind == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": w} for w in split_words(block["thinking"])
            ]
            deltas.append({"type": "thinking_delta", "thinking": ""})
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            frags = ["", *TOOL_ARG_FRAGMENTS]
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in frags]
        else:
            deltas = [{"type": "text_delta", "text": w} for w in split_words(block["text"])]
        for i, d in enumerate(deltas):
            if p.midstream_error and kind == "text" and i == 2:
                err = {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                }
                yield encode_sse(err, "error")
                return
            yield ev({"type": "content_block_delta", "index": idx, "delta": d})
        yield ev({"type": "content_block_stop", "index": idx})
    usage = {"input_tokens": p.input_tokens, "cache_creation_input_tokens": 0}
    usage |= {"cache_read_input_tokens": 0, "output_tokens": p.output_tokens}
    delta = {"stop_reason": stop, "stop_sequence": None}
    yield ev({"type": "message_delta", "delta": delta, "usage": usage})
    yield ev({"type": "message_stop"})

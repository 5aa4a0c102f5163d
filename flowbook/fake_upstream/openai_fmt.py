"""OpenAI wire formats: Chat Completions (§1) and Responses (§2) of docs/wire-formats.md,
plus ``/v1/models`` and ``/v1/embeddings``. Responses lives in
``openai_responses`` (module size) and shares this module's headers and error bodies.

Bodies copy the recorded fixtures (``tests/fixtures/real/openai/``): chunk fields, the
``obfuscation`` padding, the ``choices: []`` usage chunk (only with
``stream_options.include_usage``), ``data: [DONE]``; Responses events with ``event:`` =
``data.type`` and a ``sequence_number``, usage only in ``response.completed``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

from flowbook.fake_upstream.common import (
    ERROR_STATUSES,
    TOOL_ARG_FRAGMENTS,
    FakeRequest,
    Plan,
    Reply,
    chat_turn,
    fresh_id,
    json_reply,
    make_plan,
    split_words,
    stable_id,
    tokens,
)
from flowbook.streams.sse import encode_sse

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", "invalid_value", "Invalid value for 'model' (fake 400)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: fake."),
    404: ("invalid_request_error", "model_not_found", "The model `{m}` does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for {m} (fake 429)."),
    500: ("server_error", None, "The server had an error while processing your request."),
}


def openai_headers(req_id: str) -> dict[str, str]:
    """The response headers OpenAI sends with every answer (Responses shares them)."""
    return {"x-request-id": req_id, "openai-processing-ms": "12", "openai-version": "2020-10-01"}


def error_reply(status: int, model: str, req_id: str) -> Reply:
    """OpenAI's HTTP error envelope ``{"error": {message, type, param, code}}``."""
    etype, code, msg = _ERRORS[status]
    body = {"error": {"message": msg.format(m=model), "type": etype, "param": None, "code": code}}
    return json_reply(status, body, openai_headers(req_id))


def obfuscation(seq: int) -> str:
    """The ``obfuscation`` padding field of a streamed chunk or delta event."""
    # Real values are random padding of varying length; ours vary deterministically.
    return hashlib.md5(str(seq).encode()).hexdigest()[: 3 + seq % 12]


def _chat_plan(body: dict[str, Any]) -> Plan:
    messages = body.get("messages") or []
    user_text, tool_result = chat_turn(messages)
    names = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    choice = body.get("tool_choice")
    forced: str | bool = choice == "required"
    if isinstance(choice, dict):
        forced = choice.get("function", {}).get("name") or True
    return make_plan(
        str(body.get("model", "")),
        user_text,
        tool_result=tool_result,
        tool_names=names,
        forced_tool=forced,
        thinking=bool(body.get("reasoning_effort")),
        prompt=messages,
    )


def _chat_usage(p: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": p.input_tokens,
        "completion_tokens": p.output_tokens,
        "total_tokens": p.input_tokens + p.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": p.thinking_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat(req: FakeRequest) -> Reply:
    """``POST /v1/chat/completions``, streamed or not."""
    body = req.json_dict
    model = str(body.get("model", ""))
    cid = fresh_id("chatcmpl-", req, 29)
    req_id = stable_id("req_", cid, 32)
    if model in ERROR_STATUSES:
        return error_reply(ERROR_STATUSES[model], model, req_id)
    p = _chat_plan(body)
    call_id = stable_id("call_", cid, 24)
    if not body.get("stream"):
        msg: dict[str, Any] = {"role": "assistant", "content": p.text or None, "refusal": None}
        if p.tool_name:
            fn = {"name": p.tool_name, "arguments": p.tool_args}
            msg["tool_calls"] = [{"id": call_id, "type": "function", "function": fn}]
        msg["annotations"] = []
        out = {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": msg,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if p.tool_name else "stop",
                }
            ],
            "usage": _chat_usage(p),
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
        }
        return json_reply(200, out, openai_headers(req_id))
    opts = body.get("stream_options") or {}
    return Reply(
        headers={**SSE_HEADERS, **openai_headers(req_id)},
        events=_chat_events(p, cid, call_id, opts),
    )


def _chat_events(p: Plan, cid: str, call_id: str, opts: dict[str, Any]) -> Iterator[bytes]:
    include_usage = bool(opts.get("include_usage"))
    obfuscate = opts.get("include_obfuscation", True) is not False
    created = int(time.time())
    seq = 0

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        nonlocal seq
        seq += 1
        c: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": p.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
            "choices": [],
        }
        if delta is not None:
            c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if include_usage:
            c["usage"] = usage
        if obfuscate:
            c["obfuscation"] = obfuscation(seq)
        return encode_sse(json.dumps(c, separators=(",", ":"), ensure_ascii=False))

    if p.tool_name:
        first = {"index": 0, "id": call_id, "type": "function"}
        first["function"] = {"name": p.tool_name, "arguments": ""}
        yield chunk({"role": "assistant", "content": None, "tool_calls": [first], "refusal": None})
        for frag in TOOL_ARG_FRAGMENTS:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]})
        yield chunk({}, "tool_calls")
    else:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for i, word in enumerate(split_words(p.text)):
            if p.midstream_error and i == 2:
                msg = "The server had an error while processing your request."
                err = {"message": msg, "type": "server_error", "param": None, "code": None}
                yield encode_sse(json.dumps({"error": err}))
                return
            yield chunk({"content": word})
        yield chunk({}, "stop")
    if include_usage:
        yield chunk(None, usage=_chat_usage(p))
    yield encode_sse("[DONE]")


# --- models / embeddings -----------------------------------------------------------------

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-5", "o3-mini", "text-embedding-3-small"]


def models(req: FakeRequest) -> Reply:
    """``GET /v1/models``."""
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"} for m in MODELS
    ]
    return json_reply(200, {"object": "list", "data": data}, openai_headers("req_models"))


def embeddings(req: FakeRequest) -> Reply:
    """``POST /v1/embeddings``: 8-dim vectors derived from the input text."""
    body = req.json_dict
    model = str(body.get("model", ""))
    if model in ERROR_STATUSES:
        return error_reply(ERROR_STATUSES[model], model, "req_embed")
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(x) for x in inputs or []]
    data = []
    for i, t in enumerate(texts):
        digest = hashlib.sha256(t.encode()).digest()
        vec = [b / 255.0 for b in digest[:8]]
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            # The openai SDK asks for base64 by default and decodes little-endian float32.
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    n = sum(tokens(t) for t in texts)
    usage = {"prompt_tokens": n, "total_tokens": n}
    out = {"object": "list", "data": data, "model": model, "usage": usage}
    return json_reply(200, out, openai_headers("req_embed"))

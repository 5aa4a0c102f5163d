"""Ollama native API (§8 of docs/wire-formats.md): ``/api/chat`` and ``/api/generate``.

NDJSON (``application/x-ndjson``), one object per line, no ``data:`` and no ``[DONE]``; streaming
is the default (``"stream": false`` turns it off). Deltas in ``message.content`` (``response`` for
``/api/generate``), ``message.thinking`` when ``think`` is set, tool calls whole with an
``arguments`` object; the final ``done: true`` line carries ``done_reason`` and the counters
(``prompt_eval_count`` = input tokens, ``eval_count`` = output tokens, durations in ns).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

from flowbook.fake_upstream.common import (
    ERROR_STATUSES,
    TOOL_ARGS,
    FakeRequest,
    Plan,
    Reply,
    chat_turn,
    make_plan,
    split_words,
)
from flowbook.streams.ndjson import encode_ndjson

NDJSON = {"Content-Type": "application/x-ndjson"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _plan(body: dict[str, Any], generate: bool) -> Plan:
    model = str(body.get("model", ""))
    if generate:
        return make_plan(model, str(body.get("prompt", "")), thinking=bool(body.get("think")))
    messages = body.get("messages") or []
    user_text, tool_result = chat_turn(messages)
    names = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    return make_plan(
        model,
        user_text,
        tool_result=tool_result,
        tool_names=names,
        thinking=bool(body.get("think")),
        prompt=messages,
    )


def _final_stats(p: Plan) -> dict[str, Any]:
    return {
        "total_duration": 123_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": p.input_tokens,
        "prompt_eval_duration": 20_000_000,
        "eval_count": p.output_tokens,
        "eval_duration": 100_000_000,
    }


def chat(req: FakeRequest) -> Reply:
    """``POST /api/chat`` or ``/api/generate``."""
    body = req.json_dict
    model = str(body.get("model", ""))
    generate = req.path == "/api/generate"
    if model in ERROR_STATUSES:
        status = ERROR_STATUSES[model]
        err = {"error": f"model '{model}' not found" if status == 404 else f"fake error {status}"}
        return Reply(
            status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(err).encode()
        )
    p = _plan(body, generate)
    lines = list(_lines(p, generate))
    if body.get("stream", True) is False:
        merged = _merge(lines, generate)
        h = {"Content-Type": "application/json; charset=utf-8"}
        return Reply(headers=h, body=json.dumps(merged).encode())
    return Reply(headers=NDJSON, events=(encode_ndjson(x) for x in lines))


def _lines(p: Plan, generate: bool) -> Iterator[dict[str, Any]]:
    def line(content: str = "", thinking: str | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"model": p.model, "created_at": _now()}
        if generate:
            out["response"] = content
            if thinking is not None:
                out["thinking"] = thinking
        else:
            msg: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking is not None:
                msg["thinking"] = thinking
            msg.update(extra)
            out["message"] = msg
        out["done"] = False
        return out

    if p.thinking is not None:
        for w in split_words(p.thinking):
            yield line(thinking=w)
    if p.tool_name:
        call = {"function": {"name": p.tool_name, "arguments": dict(TOOL_ARGS)}}
        yield line(tool_calls=[call])
    else:
        for i, w in enumerate(split_words(p.text)):
            if p.midstream_error and i == 2:
                yield {"error": "an unknown error was encountered while running the model"}
                return
            yield line(w)
    last = line()
    last.update({"done": True, "done_reason": "stop", **_final_stats(p)})
    yield last


def _merge(lines: list[dict[str, Any]], generate: bool) -> dict[str, Any]:
    """The non-streamed body: the stream's deltas joined into the final line."""
    final = dict(lines[-1])
    if "error" in final:
        return final
    key = "response" if generate else "content"
    text = "".join(str((x if generate else x["message"]).get(key, "")) for x in lines)
    thinking = "".join(str((x if generate else x["message"]).get("thinking", "")) for x in lines)
    if generate:
        final["response"] = text
        if thinking:
            final["thinking"] = thinking
        return final
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        msg["thinking"] = thinking
    calls = [c for x in lines for c in x["message"].get("tool_calls", [])]
    if calls:
        msg["tool_calls"] = calls
    final["message"] = msg
    return final

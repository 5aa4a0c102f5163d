"""OpenAI Responses API (§2 of docs/wire-formats.md), modelled on
``tests/fixtures/real/openai/responses-*``: ``event:`` equal to ``data.type``, a
``sequence_number`` on every event, ``obfuscation`` on deltas, no ``[DONE]``; usage only in the
terminal ``response.completed``. A reasoning item (with a streamed summary when
``reasoning.summary`` is set) comes first when the request has ``reasoning``.
"""

from __future__ import annotations

import base64
import json
import time
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
    split_words,
    stable_id,
    text_of,
)
from flowbook.fake_upstream.openai_fmt import SSE_HEADERS, error_reply, obfuscation, openai_headers
from flowbook.streams.sse import encode_sse


def _responses_plan(body: dict[str, Any]) -> Plan:
    inp = body.get("input")
    user_text: str | None = inp if isinstance(inp, str) else None
    tool_result: str | None = None
    if isinstance(inp, list):
        if inp and inp[-1].get("type") == "function_call_output":
            tool_result = text_of(inp[-1].get("output"))
        for item in reversed(inp):
            if item.get("role") == "user":
                user_text = text_of(item.get("content"))
                break
    names = [t.get("name", "") for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    forced: str | bool = choice == "required"
    if isinstance(choice, dict):
        forced = choice.get("name") or True
    return make_plan(
        str(body.get("model", "")),
        user_text,
        tool_result=tool_result,
        tool_names=names,
        forced_tool=forced,
        thinking=bool(body.get("reasoning")),
        prompt=[body.get("instructions"), inp],
    )


def responses(req: FakeRequest) -> Reply:
    """``POST /v1/responses``, streamed or not."""
    body = req.json_dict
    model = str(body.get("model", ""))
    rid = fresh_id("resp_", req, 48)
    req_id = stable_id("req_", rid, 32)
    if model in ERROR_STATUSES:
        return error_reply(ERROR_STATUSES[model], model, req_id)
    r = ResponsesRenderer(_responses_plan(body), body, rid)
    if not body.get("stream"):
        return json_reply(200, r.final_response(), openai_headers(req_id))
    return Reply(headers={**SSE_HEADERS, **openai_headers(req_id)}, events=r.events())


class ResponsesRenderer:
    """Renders a Plan as a Responses object and as its event sequence."""

    def __init__(self, plan: Plan, body: dict[str, Any], rid: str) -> None:
        self.p = plan
        self.body = body
        self.rid = rid
        self.created = int(time.time())
        self.seq = -1
        reasoning = body.get("reasoning") or {}
        self.summary = bool(reasoning.get("summary")) and plan.thinking is not None
        self.encrypted = "reasoning.encrypted_content" in (body.get("include") or [])

    def _response(self, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
        b = self.body
        return {
            "id": self.rid,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "completed_at": self.created if status == "completed" else None,
            "error": None,
            "incomplete_details": None,
            "instructions": b.get("instructions"),
            "max_output_tokens": b.get("max_output_tokens"),
            "model": self.p.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": b.get("previous_response_id"),
            "reasoning": {"effort": (b.get("reasoning") or {}).get("effort"), "summary": None},
            "service_tier": "default",
            "store": b.get("store", True),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": b.get("tool_choice", "auto"),
            "tools": b.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }

    def _usage(self) -> dict[str, Any]:
        p = self.p
        return {
            "input_tokens": p.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": p.output_tokens,
            "output_tokens_details": {"reasoning_tokens": p.thinking_tokens},
            "total_tokens": p.input_tokens + p.output_tokens,
        }

    def _items(self) -> list[dict[str, Any]]:
        """The finished output items, in order."""
        p, items = self.p, []
        if p.thinking is not None:
            rs: dict[str, Any] = {"id": stable_id("rs_", self.rid, 48), "type": "reasoning"}
            if self.encrypted:
                rs["encrypted_content"] = "gAAAAAB" + base64.b64encode(p.thinking.encode()).decode()
            rs["summary"] = [{"type": "summary_text", "text": p.thinking}] if self.summary else []
            items.append(rs)
        if p.tool_name:
            fc: dict[str, Any] = {"id": stable_id("fc_", self.rid, 48), "type": "function_call"}
            fc |= {"status": "completed", "arguments": p.tool_args}
            fc |= {"call_id": stable_id("call_", self.rid, 24), "name": p.tool_name}
            items.append(fc)
        else:
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": p.text}
            msg: dict[str, Any] = {"id": stable_id("msg_", self.rid, 48), "type": "message"}
            msg |= {"status": "completed", "content": [part], "phase": "final_answer"}
            items.append(msg | {"role": "assistant"})
        return items

    def final_response(self) -> dict[str, Any]:
        """The non-streamed body (also ``response.completed.response``)."""
        return self._response("completed", self._items(), self._usage())

    def _ev(self, type_: str, **fields: Any) -> bytes:
        self.seq += 1
        data = {"type": type_, **fields, "sequence_number": self.seq}
        return encode_sse(json.dumps(data, separators=(",", ":"), ensure_ascii=False), event=type_)

    def events(self) -> Iterator[bytes]:
        """The streamed event sequence, as recorded."""
        yield self._ev("response.created", response=self._response("in_progress", [], None))
        yield self._ev("response.in_progress", response=self._response("in_progress", [], None))
        for idx, item in enumerate(self._items()):
            if item["type"] == "reasoning":
                yield from self._reasoning(idx, item)
            elif item["type"] == "function_call":
                added = item | {"status": "in_progress", "arguments": ""}
                yield self._ev("response.output_item.added", item=added, output_index=idx)
                common = {"item_id": item["id"], "output_index": idx}
                for i, frag in enumerate(TOOL_ARG_FRAGMENTS):
                    ob = obfuscation(i)
                    yield self._ev(
                        "response.function_call_arguments.delta",
                        delta=frag,
                        **common,
                        obfuscation=ob,
                    )
                yield self._ev(
                    "response.function_call_arguments.done", arguments=item["arguments"], **common
                )
                yield self._ev("response.output_item.done", item=item, output_index=idx)
            else:
                yield from self._message(idx, item)
                if self.p.midstream_error:
                    return
        yield self._ev("response.completed", response=self.final_response())

    def _reasoning(self, idx: int, item: dict[str, Any]) -> Iterator[bytes]:
        yield self._ev("response.output_item.added", item=item | {"summary": []}, output_index=idx)
        if self.summary:
            text = self.p.thinking or ""
            common = {"item_id": item["id"], "output_index": idx, "summary_index": 0}
            empty = {"type": "summary_text", "text": ""}
            yield self._ev("response.reasoning_summary_part.added", **common, part=empty)
            for i, word in enumerate(split_words(text)):
                ob = obfuscation(i)
                yield self._ev(
                    "response.reasoning_summary_text.delta", **common, delta=word, obfuscation=ob
                )
            yield self._ev("response.reasoning_summary_text.done", **common, text=text)
            full = {"type": "summary_text", "text": text}
            yield self._ev("response.reasoning_summary_part.done", **common, part=full)
        yield self._ev("response.output_item.done", item=item, output_index=idx)

    def _message(self, idx: int, item: dict[str, Any]) -> Iterator[bytes]:
        added = item | {"status": "in_progress", "content": []}
        yield self._ev("response.output_item.added", item=added, output_index=idx)
        common = {"content_index": 0, "item_id": item["id"], "output_index": idx}
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        yield self._ev("response.content_part.added", **common, part=empty)
        for i, word in enumerate(split_words(self.p.text)):
            if self.p.midstream_error and i == 2:
                msg = "The server had an error while processing your request."
                yield self._ev("error", code="server_error", message=msg, param=None)
                return
            ob = obfuscation(i)
            yield self._ev(
                "response.output_text.delta", **common, delta=word, logprobs=[], obfuscation=ob
            )
        yield self._ev("response.output_text.done", **common, logprobs=[], text=self.p.text)
        yield self._ev("response.content_part.done", **common, part=item["content"][0])
        yield self._ev("response.output_item.done", item=item, output_index=idx)

"""Kiro / CodeWhisperer ``GenerateAssistantResponse`` (§5–6 of docs/wire-formats.md), modelled on
``tests/fixtures/real/kiro/*.bin``: AWS event-stream frames, ``initial-response`` first (its
``:content-type`` is ``application/x-amz-json-1.0``), then ``assistantResponseEvent`` /
``reasoningContentEvent`` / ``toolUseEvent`` fragments, then ``contextUsageEvent`` and
``meteringEvent``; no stop event (the body just ends). No token counts, as in the recordings.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from flowbook.fake_upstream.common import (
    ERROR_STATUSES,
    TOOL_ARG_FRAGMENTS,
    FakeRequest,
    Plan,
    Reply,
    make_plan,
    split_words,
    stable_id,
    text_of,
)
from flowbook.streams.eventstream_encode import event_frame, exception_frame

CONTEXT_WINDOW = 200_000
_ERRORS = {
    400: ("ValidationException", "Improperly formed request."),
    401: ("AccessDeniedException", "The bearer token included in the request is invalid."),
    404: ("ResourceNotFoundException", "Model {m} not found."),
    429: ("ThrottlingException", "Rate exceeded"),
    500: ("InternalServerException", "Encountered an unexpected error, please try again."),
}


def _user_message(body: dict[str, Any]) -> dict[str, Any]:
    state = body.get("conversationState") or {}
    current = state.get("currentMessage") or {}
    msg = current.get("userInputMessage")
    return msg if isinstance(msg, dict) else {}


def model_id(body: dict[str, Any]) -> str | None:
    """``conversationState.currentMessage.userInputMessage.modelId``."""
    mid = _user_message(body).get("modelId")
    return str(mid) if mid is not None else None


def _plan(body: dict[str, Any]) -> Plan:
    msg = _user_message(body)
    ctx = msg.get("userInputMessageContext") or {}
    tool_result: str | None = None
    results = ctx.get("toolResults") or []
    if results:
        pieces = results[-1].get("content") or []
        tool_result = "".join(json.dumps(p["json"]) if "json" in p else text_of(p) for p in pieces)
    names = [
        str((t.get("toolSpecification") or {}).get("name", "")) for t in ctx.get("tools") or []
    ]
    content = text_of(msg.get("content"))
    mid = model_id(body) or ""
    return make_plan(
        mid,
        content or None,
        tool_result=tool_result,
        tool_names=[n for n in names if n],
        thinking=mid.endswith("-thinking") or "<thinking_mode>enabled" in content,
        prompt=body.get("conversationState"),
    )


def _events(p: Plan, seed: str) -> Iterator[bytes]:
    yield event_frame(
        "initial-response", {"conversationId": ""}, content_type="application/x-amz-json-1.0"
    )
    if p.thinking is not None:
        for w in split_words(p.thinking):
            yield event_frame("reasoningContentEvent", {"text": w})
    if p.tool_name:
        tid = stable_id("tooluse_", seed, 22)
        ident = {"name": p.tool_name, "toolUseId": tid}
        yield event_frame("toolUseEvent", ident)
        for frag in ["", *TOOL_ARG_FRAGMENTS]:
            yield event_frame("toolUseEvent", {"input": frag, **ident})
        yield event_frame("toolUseEvent", {"name": p.tool_name, "stop": True, "toolUseId": tid})
    else:
        for i, w in enumerate(split_words(p.text)):
            if p.midstream_error and i == 2:
                msg = (
                    "Encountered an unexpected error when processing the request, please try again."
                )
                yield exception_frame("InternalServerException", msg)
                return
            yield event_frame("assistantResponseEvent", {"content": w, "modelId": p.model})
    pct = 100.0 * p.input_tokens / CONTEXT_WINDOW
    yield event_frame("contextUsageEvent", {"contextUsagePercentage": pct})
    credits = round(0.01 + p.output_tokens * 0.0005, 6)
    metering = {"unit": "credit", "unitPlural": "credits", "usage": credits}
    yield event_frame("meteringEvent", metering)


def generate(req: FakeRequest) -> Reply:
    """``POST /generateAssistantResponse`` or ``POST /`` + ``x-amz-target``."""
    body = req.json_dict
    request_id = str(uuid.uuid4())
    model = model_id(body) or ""
    if model in ERROR_STATUSES:
        status = ERROR_STATUSES[model]
        name, msg = _ERRORS[status]
        err = {"__type": f"com.amazon.kiro.runtimeservice#{name}", "message": msg.format(m=model)}
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-requestid": request_id,
            "x-amzn-errortype": name,
        }
        return Reply(status, headers, json.dumps(err).encode())
    headers = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-requestid": request_id}
    return Reply(headers=headers, events=_events(_plan(body), request_id))

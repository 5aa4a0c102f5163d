"""Gemini ``generateContent`` / ``streamGenerateContent`` (§4 of docs/wire-formats.md), modelled on
``tests/fixtures/real/gemini/``.

* ``?alt=sse``: ``data: <json>\\r\\n\\r\\n`` (CRLF separators, ``", "``-free compact JSON with
  ``": "`` after keys, as recorded).
* no ``alt``: one JSON array that grows: ``[{…}`` then ``\\n,\\r\\n{…}`` … ``\\n]``, each element
  pretty-printed with two-space indent, ``Content-Type: application/json; charset=UTF-8``.

Every chunk carries only the new parts and a cumulative ``usageMetadata`` (no
``candidatesTokenCount`` before the first visible output, ``thoughtsTokenCount`` apart).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flowbook.fake_upstream.common import (
    ERROR_STATUSES,
    TOOL_ARGS,
    FakeRequest,
    Plan,
    Reply,
    fresh_id,
    json_reply,
    make_plan,
    split_words,
    stable_id,
    text_of,
    tokens,
)
from flowbook.streams.json_array import encode_json_array
from flowbook.streams.sse import encode_sse

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "API key not valid. Please pass a valid API key.",
    404: "models/{m} is not found for API version v1beta, or is not supported for generateContent.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
}


def error_body(status: int, model: str) -> dict[str, Any]:
    """The google.rpc error envelope."""
    msg = _MESSAGES[status].format(m=model)
    return {"error": {"code": status, "message": msg, "status": _STATUS[status]}}


def model_of(path: str) -> str:
    """The model name from ``…/models/{model}:method``."""
    return path.rsplit("/models/", 1)[-1].split(":", 1)[0]


def _get(d: Any, camel: str) -> Any:
    """``d[camel]`` or its snake_case spelling (the API accepts both; SDKs send both)."""
    if not isinstance(d, dict):
        return None
    if camel in d:
        return d[camel]
    return d.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


def _plan(model: str, body: dict[str, Any]) -> Plan:
    contents = body.get("contents") or []
    user_text: str | None = None
    tool_result: str | None = None
    if contents:
        parts = contents[-1].get("parts") or []
        responses = [_get(p, "functionResponse") for p in parts if _get(p, "functionResponse")]
        if responses:
            tool_result = json.dumps(responses[-1].get("response"))
    for c in reversed(contents):
        if c.get("role", "user") == "user":
            texts = [text_of(p) for p in c.get("parts") or [] if "text" in p]
            if texts:
                user_text = "".join(texts)
                break
    names = [
        str(d.get("name", ""))
        for t in body.get("tools") or []
        for d in _get(t, "functionDeclarations") or []
    ]
    fcc = _get(_get(body, "toolConfig"), "functionCallingConfig") or {}
    forced: str | bool = fcc.get("mode") == "ANY"
    allowed = _get(fcc, "allowedFunctionNames")
    if forced and allowed:
        forced = str(allowed[0])
    thinking_cfg = _get(_get(body, "generationConfig"), "thinkingConfig")
    thinking = bool(_get(thinking_cfg, "includeThoughts"))
    return make_plan(
        model,
        user_text,
        tool_result=tool_result,
        tool_names=names,
        forced_tool=forced,
        thinking=thinking,
        prompt=[_get(body, "systemInstruction"), contents],
    )


class _Chunks:
    """Builds the GenerateContentResponse objects of one answer."""

    def __init__(self, p: Plan, rid: str) -> None:
        self.p, self.rid = p, rid
        self.visible = ""  # visible output so far, for cumulative candidatesTokenCount

    def usage(self) -> dict[str, Any]:
        p = self.p
        u: dict[str, Any] = {"promptTokenCount": p.input_tokens}
        cand = 0
        if p.tool_name:
            cand = tokens(p.tool_args) if self.visible else 0
        elif self.visible:
            cand = tokens(self.visible)
        if cand:
            u["candidatesTokenCount"] = cand
        u["totalTokenCount"] = p.input_tokens + cand + p.thinking_tokens
        u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": p.input_tokens}]
        if p.thinking_tokens:
            u["thoughtsTokenCount"] = p.thinking_tokens
        return u

    def chunk(self, parts: list[dict[str, Any]], finish: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            cand["finishReason"] = "STOP"
        cand["index"] = 0
        if finish and self.p.tool_name:
            cand["finishMessage"] = "Model generated function call(s)."
        return {
            "candidates": [cand],
            "usageMetadata": self.usage(),
            "modelVersion": self.p.model,
            "responseId": self.rid,
        }

    def stream(self) -> Iterator[dict[str, Any]]:
        p = self.p
        if p.thinking is not None:
            yield self.chunk([{"text": p.thinking, "thought": True}], False)
        # 2 + 42 characters: a valid base64 string, as the google-genai SDK decodes it to bytes.
        sig = {"thoughtSignature": "Cs" + stable_id("", self.rid, 42)} if p.thinking else {}
        if p.tool_name:
            self.visible = p.tool_args
            call = {"functionCall": {"name": p.tool_name, "args": dict(TOOL_ARGS)}, **sig}
            yield self.chunk([call], True)
            return
        words = split_words(p.text)
        for i, w in enumerate(words):
            if p.midstream_error and i == 2:
                yield error_body(500, p.model)
                return
            self.visible += w
            yield self.chunk([{"text": w}], i == len(words) - 1)

    def whole(self) -> dict[str, Any]:
        p = self.p
        parts: list[dict[str, Any]] = []
        if p.thinking is not None:
            parts.append({"text": p.thinking, "thought": True})
        if p.tool_name:
            self.visible = p.tool_args
            parts.append({"functionCall": {"name": p.tool_name, "args": dict(TOOL_ARGS)}})
        else:
            self.visible = p.text
            parts.append({"text": p.text})
        return self.chunk(parts, True)


def generate(req: FakeRequest) -> Reply:
    """``:generateContent`` and ``:streamGenerateContent`` (SSE with ``alt=sse``, else array)."""
    body = req.json_dict
    model = model_of(req.path)
    stream = req.path.endswith(":streamGenerateContent")
    headers = {"server-timing": "gfet4t7; dur=42", "Vary": "Origin, X-Origin, Referer"}
    if model in ERROR_STATUSES:
        status = ERROR_STATUSES[model]
        return json_reply(status, error_body(status, model), {**headers})
    rid = fresh_id("", req, 22)
    chunks = _Chunks(_plan(model, body), rid)
    if not stream:
        h = {**headers, "Content-Type": "application/json; charset=UTF-8"}
        return Reply(headers=h, body=json.dumps(chunks.whole(), indent=2).encode())
    if req.query.get("alt") == "sse":
        h = {**headers, "Content-Type": "text/event-stream"}
        return Reply(headers=h, events=_sse(chunks))
    h = {**headers, "Content-Type": "application/json; charset=UTF-8"}
    return Reply(headers=h, events=_array(chunks))


def _sse(chunks: _Chunks) -> Iterator[bytes]:
    for c in chunks.stream():
        if "error" in c:
            # A failed stream sends the error as bare pretty-printed lines, no "data: ".
            yield (json.dumps(c, indent=2) + "\r\n").encode()
            return
        yield encode_sse(c, sep="\r\n", separators=(",", ": "))


def _array(chunks: _Chunks) -> Iterator[bytes]:
    return encode_json_array(chunks.stream())

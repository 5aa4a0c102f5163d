"""AWS Bedrock runtime: Converse, ConverseStream and InvokeModel (docs/wire-formats.md §7, §3.7).

* ``/model/{id}/converse`` and ``/converse-stream`` (api ``converse``): Bedrock's own message
  shape; the stream is an AWS event-stream (§5) of ``messageStart``, ``contentBlockStart``,
  ``contentBlockDelta``, ``contentBlockStop``, ``messageStop`` and ``metadata`` (usage) events,
  each payload padded with a ``"p"`` field that means nothing.
* ``/model/{id}/invoke`` and ``/invoke-with-response-stream`` with an Anthropic body (api
  ``messages``): the Anthropic Messages body and events; streamed events arrive base64-encoded in
  ``chunk`` frames and are handed to the Anthropic assembler.

The model is the URL-decoded ``{id}`` of the path (the bodies carry none). The assemblers live
in :mod:`flowbook.providers.bedrock_stream` and are re-exported here.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from flowbook.model import Api, FlowError, LLMRequest, LLMResponse, Message, Tool
from flowbook.providers.base import (
    EVENTSTREAM,
    HOST,
    PATH,
    SHAPE,
    Assembler,
    Detection,
    Provider,
    RequestView,
    framing_for_content_type,
    wire_request,
)
from flowbook.providers.bedrock_encode import CONVERSE, INVOKE_MESSAGES
from flowbook.providers.bedrock_stream import ConverseAssembler, InvokeAssembler, converse_part
from flowbook.providers.codec import WireCodec
from flowbook.providers.kiro import aws_error
from flowbook.providers.registry import register

__all__ = ["BedrockProvider", "ConverseAssembler", "InvokeAssembler"]

_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$", re.IGNORECASE)
_PATH = re.compile(
    r"/model/(?P<id>[^/]+)/"
    r"(?P<op>converse-stream|converse|invoke-with-response-stream|invoke|count-tokens)/?$"
)
_STREAM_OPS = ("converse-stream", "invoke-with-response-stream")
_INFERENCE_PARAMS = {
    "maxTokens": "max_tokens",
    "temperature": "temperature",
    "topP": "top_p",
    "stopSequences": "stop",
}


def _op(req: RequestView) -> tuple[str, str] | None:
    """(model id, operation) from a ``/model/{id}/{op}`` path."""
    m = _PATH.search(req.path_only)
    return (unquote(m["id"]), m["op"]) if m else None


def _is_anthropic_body(body: Any) -> bool:
    return isinstance(body, dict) and (
        "anthropic_version" in body or ("messages" in body and "max_tokens" in body)
    )


def _is_converse_body(body: Any) -> bool:
    if not isinstance(body, dict) or "inferenceConfig" not in body:
        return False
    msgs = body.get("messages")
    return isinstance(msgs, list) and all(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and all(isinstance(b, dict) and "type" not in b for b in m["content"])
        for m in msgs
    )


class BedrockProvider(Provider):
    """Bedrock runtime (SigV4 or API-key auth; any model family behind Converse)."""

    name = "bedrock"

    def detect(self, req: RequestView) -> Detection | None:
        on_host = bool(_HOST.match(req.host.split(":")[0]))
        found = _op(req)
        if found is not None:
            return Detection(self.name, self._api(found[1], req), HOST if on_host else PATH)
        if on_host:
            return Detection(self.name, Api.OTHER, HOST)
        if _is_converse_body(req.json()):
            return Detection(self.name, Api.CONVERSE, SHAPE)
        return None

    @staticmethod
    def _api(op: str, req: RequestView) -> Api:
        if op.startswith("converse"):
            return Api.CONVERSE
        if op.startswith("invoke") and _is_anthropic_body(req.json()):
            return Api.MESSAGES
        return Api.OTHER

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        model, op = _op(req) or (None, "")
        body = req.json()
        out = wire_request(req)
        if api == "messages" and isinstance(body, dict):
            # Imported here, not at the top: importing flowbook.providers.anthropic registers
            # it, and the registry breaks detection ties by registration order (bedrock first).
            from flowbook.providers.anthropic import parse_messages_body

            parse_messages_body(body, out)  # the Anthropic Messages body, model in the path
            out.params.setdefault("anthropic_version", body.get("anthropic_version"))
        elif api == "converse" and isinstance(body, dict):
            _parse_converse(body, out)
        out.model = model or out.model
        out.stream = op in _STREAM_OPS
        return out

    def framing(self, req: RequestView, api: str, content_type: str) -> str:
        found = _op(req)
        ct = content_type.lower()
        if found and found[1] in _STREAM_OPS and "json" not in ct:
            return EVENTSTREAM
        return framing_for_content_type(content_type)

    def codec(self, api: str) -> WireCodec | None:
        """Converse, or InvokeModel with an Anthropic body; other model families have none."""
        return {Api.MESSAGES: INVOKE_MESSAGES, Api.CONVERSE: CONVERSE}.get(Api(api))

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        if api == "messages":
            return InvokeAssembler(request, response, anthropic=True)
        if api == "converse":
            return ConverseAssembler(request, response)
        return InvokeAssembler(request, response, anthropic=False)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        return aws_error(status, body, headers)


# ---------------------------------------------------------------- Converse request


def _parse_converse(body: dict[str, Any], out: LLMRequest) -> None:
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            parts = [converse_part(b) for b in m.get("content") or [] if isinstance(b, dict)]
            out.messages.append(Message(str(m.get("role", "user")), [p for p in parts if p]))
    system = [b["text"] for b in body.get("system") or [] if isinstance(b, dict) and "text" in b]
    out.system = "\n\n".join(system) if system else None
    for key, value in (body.get("inferenceConfig") or {}).items():
        out.params[_INFERENCE_PARAMS.get(key, key)] = value
    for key in ("additionalModelRequestFields", "guardrailConfig", "performanceConfig"):
        if body.get(key):
            out.params[key] = body[key]
    tool_config = body.get("toolConfig") or {}
    if tool_config.get("toolChoice"):
        out.params["tool_choice"] = tool_config["toolChoice"]
    for t in tool_config.get("tools") or []:
        spec = t.get("toolSpec") if isinstance(t, dict) else None
        if isinstance(spec, dict) and spec.get("name"):
            schema = spec.get("inputSchema") or {}
            out.tools.append(
                Tool(spec["name"], spec.get("description"), schema.get("json", schema))
            )


register(BedrockProvider())

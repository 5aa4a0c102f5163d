"""Wire codecs: one object per wire format that reads it and writes it (docs/wire-formats.md).

A :class:`Provider` (``flowbook.providers.base``) knows *who* is called: hosts, paths, auth,
which API a request speaks and which framing carries its response. A :class:`WireCodec` knows
*what* is on the wire for one API: how its request and response bodies map onto the neutral
model (:class:`~flowbook.model.LLMRequest`, :class:`~flowbook.model.LLMResponse`) and back.
Several providers share a codec (every OpenAI-compatible vendor uses :class:`ChatCodec`);
``provider.codec(api)`` picks it.

Reading is the assembler (``new_assembler``) fed by a framing decoder from ``flowbook.streams``.
Writing has three layers, so interception can edit the middle one:

* :meth:`WireCodec.response_body`: neutral response → the non-streamed body object (a dict), the
  form a user edits in the approval panel;
* :meth:`WireCodec.stream_chunks`: such a body → the pieces of the equivalent stream (SSE
  events, event-stream frames, NDJSON lines, JSON-array elements), each one flushable;
* :meth:`WireCodec.encode_response` composes the two, streamed or not.

``encode_request`` is the request-side inverse of parsing (for code generation and replay).
Encoders write what the assembler needs and what the official SDKs accept; fields the neutral
model does not keep (ids of content blocks, logprobs, safety ratings) are made up or left out.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from flowbook.model import Api, LLMRequest, LLMResponse, ToolCall, Usage

SSE_TYPE = "text/event-stream; charset=utf-8"
JSON_TYPE = "application/json"
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"
NDJSON_TYPE = "application/x-ndjson"


class EditError(ValueError):
    """An edit that cannot be applied; the message says what to fix."""


@dataclass
class Encoded:
    """An encoded response body: its content type and its pieces (one flush each)."""

    content_type: str
    chunks: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def new_id(prefix: str) -> str:
    """A fresh id shaped like a provider's (``msg_…``, ``call_…``)."""
    return prefix + uuid.uuid4().hex[:24]


def dumps(obj: Any) -> bytes:
    """JSON as providers send it: UTF-8, non-ASCII kept."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def call_dicts(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Tool calls as ``{id, name, arguments}`` with dict arguments (what body builders take).

    Arguments that did not parse as a JSON object (a string, a list) become ``{}``: every
    provider's non-streamed form wants an object there.
    """
    return [
        {
            "id": c.id,
            "name": c.name,
            "arguments": c.arguments if isinstance(c.arguments, dict) else {},
        }
        for c in calls
    ]


def usage_pair(usage: Usage | None) -> dict[str, int] | None:
    """``{"input", "output"}`` token counts of a usage, or None."""
    if usage is None:
        return None
    return {"input": usage.input, "output": usage.output}


class WireCodec(ABC):
    """Reads and writes one API's bodies. Stateless: one shared instance per format."""

    api: ClassVar[Api]
    #: The top-level request key that holds the conversation (validated on edit), if any.
    messages_key: ClassVar[str | None] = None
    #: The top-level response key an edited non-streamed body must hold as a list, if any.
    response_list_key: ClassVar[str | None] = None
    #: Where a named parameter lives in this API's request body (``name -> a.b.c``).
    param_paths: ClassVar[dict[str, str]] = {}
    #: Content type of an error body.
    error_content_type: ClassVar[str] = JSON_TYPE

    # ------------------------------------------------------------------ reading

    @abstractmethod
    def new_assembler(self, request: LLMRequest, response: LLMResponse) -> Any:
        """A fresh :class:`~flowbook.providers.base.Assembler` for one response."""

    # ------------------------------------------------------------------ writing

    @abstractmethod
    def encode_request(self, request: LLMRequest) -> bytes:
        """The request body for ``request`` (model, messages, system, tools, params, stream)."""

    def body_from_parts(
        self,
        *,
        text: str = "",
        model: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        thinking: str = "",
        stop_reason: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """A non-streamed response body. ``tool_calls``: ``[{id, name, arguments (dict)}]``."""
        resp = LLMResponse(
            model=model,
            text=text,
            thinking=thinking,
            stop_reason=stop_reason,
            tool_calls=[
                ToolCall(c.get("id"), c["name"], c.get("arguments") or {}) for c in tool_calls or []
            ],
            usage=Usage(input=usage["input"], output=usage["output"], source="reported")
            if usage
            else None,
        )
        return self.response_body(resp)

    @abstractmethod
    def response_body(self, response: LLMResponse, *, model: str | None = None) -> dict[str, Any]:
        """The non-streamed body of ``response`` (``model`` when the response names none)."""

    @abstractmethod
    def stream_chunks(
        self, body: dict[str, Any], request: LLMRequest | None = None
    ) -> Iterator[bytes]:
        """The stream equivalent of a non-streamed ``body``, one piece per event."""

    def stream_content_type(self, request: LLMRequest | None = None) -> str:
        """Content type of the stream :meth:`stream_chunks` writes."""
        return SSE_TYPE

    def encode_stream(self, body: dict[str, Any], request: LLMRequest | None = None) -> Encoded:
        """A non-streamed body turned into this API's stream."""
        return Encoded(self.stream_content_type(request), list(self.stream_chunks(body, request)))

    def encode_response(
        self, response: LLMResponse, *, stream: bool, request: LLMRequest | None = None
    ) -> Encoded:
        """The body a client would receive for ``response``, streamed or not.

        ``request`` decides details the response cannot (Gemini streams SSE only for
        ``alt=sse``).
        """
        body = self.response_body(response, model=request.model if request else None)
        if stream:
            return self.encode_stream(body, request)
        return Encoded(JSON_TYPE, [dumps(body)])

    @abstractmethod
    def error_body(self, status: int, message: str, *, code: str) -> dict[str, Any]:
        """This API's HTTP error envelope, so the client's SDK raises a readable error."""

    # ------------------------------------------------------------------ editing

    def param_path(self, name: str, body: dict[str, Any]) -> str:
        """The JSON path of a neutral parameter (``temperature``, ``max_tokens``…) in ``body``."""
        return self.param_paths.get(name, name)

    def model_in_body(self) -> bool:
        """Does the request body name the model? (Gemini names it in the URL path.)"""
        return True

    def model_path(self, path: str, model: str) -> str:
        """The request path with ``model`` in it (unchanged when the body names the model)."""
        return path

    @abstractmethod
    def set_system(self, body: dict[str, Any], system: str) -> None:
        """Replace (or add) the system prompt in this API's own field."""

    def validate_request(self, body: dict[str, Any]) -> None:
        """Raise :class:`EditError` when an edited request body has the wrong shape."""
        key = self.messages_key
        if key and key in body:
            items = body[key]
            if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
                raise EditError(f"request_body: '{key}' must be a list of objects")

    def validate_response(self, body: dict[str, Any]) -> None:
        """Raise :class:`EditError` when an edited response body lacks what SDKs need."""
        need = self.response_list_key
        if need and not isinstance(body.get(need), list) and "error" not in body:
            raise EditError(
                f"response_body: expected a list in '{need}' for this {self.api} response"
            )


def check_roles(items: list[dict[str, Any]]) -> None:
    """Every message of an edited ``messages`` list names its role."""
    for i, m in enumerate(items):
        if "role" not in m:
            raise EditError(f"request_body: messages[{i}] has no 'role'")

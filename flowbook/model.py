"""The flow model: one LLM API call as flowbook sees it.

Every provider's wire format is mapped onto these provider-neutral types so that filters, diff,
exports, code generation and search work the same for OpenAI, Anthropic, Gemini, Kiro and the
rest. Everything here is plain data: JSON round-trips through ``to_dict``/``from_dict`` (the file
store and the exporters rely on it) and nothing imports mitmproxy, pandas or widgets.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FlowState(StrEnum):
    """Lifecycle of a flow. Values are the lowercase strings shown in tables and filters."""

    PENDING = "pending"
    STREAMING = "streaming"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"
    INTERCEPTED = "intercepted"

    # The design names the states in CamelCase; keep those spellings working too.
    Pending = "pending"
    Streaming = "streaming"
    Completed = "completed"
    Error = "error"
    Cancelled = "cancelled"
    Intercepted = "intercepted"

    @property
    def is_final(self) -> bool:
        return self in (FlowState.COMPLETED, FlowState.ERROR, FlowState.CANCELLED)


class ErrorType(StrEnum):
    """What went wrong, in one vocabulary for every provider."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    AUTHENTICATION = "authentication"
    RATE_LIMIT = "rate_limit"
    CONTENT_FILTER = "content_filter"
    SERVER_ERROR = "server_error"
    BAD_REQUEST = "bad_request"
    MODEL_UNAVAILABLE = "model_unavailable"
    CANCELLED = "cancelled"
    PARSE = "parse"
    OTHER = "other"


RETRYABLE_ERRORS = frozenset(
    {ErrorType.NETWORK, ErrorType.TIMEOUT, ErrorType.RATE_LIMIT, ErrorType.SERVER_ERROR}
)


def _bytes_to_json(data: bytes | None) -> Any:
    """Bodies are kept as text when they are UTF-8 and as base64 otherwise (binary streams)."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _bytes_from_json(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return str(value).encode("utf-8")


@dataclass
class Part:
    """One piece of a message.

    ``type`` is one of ``text``, ``image``, ``tool_call``, ``tool_result``, ``thinking``,
    ``document`` or ``other``. Only the fields that belong to the type are set.
    """

    type: str
    text: str | None = None
    # tool_call
    id: str | None = None
    name: str | None = None
    arguments: Any = None
    # tool_result
    tool_call_id: str | None = None
    content: Any = None
    is_error: bool = False
    # image / document
    media_type: str | None = None
    url: str | None = None
    data: str | None = None
    # thinking
    signature: str | None = None
    redacted: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key, value in self.__dict__.items():
            if key == "type" or value is None or value is False:
                continue
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Part:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def plain_text(self) -> str:
        """Text used for search, previews and token estimates."""
        if self.type in ("text", "thinking"):
            return self.text or ""
        if self.type == "tool_call":
            import json

            args = self.arguments
            return f"{self.name}({args if isinstance(args, str) else json.dumps(args)})"
        if self.type == "tool_result":
            c = self.content
            if isinstance(c, str):
                return c
            import json

            return json.dumps(c, ensure_ascii=False) if c is not None else ""
        return self.text or ""


@dataclass
class Message:
    """A provider-neutral chat message: a role and a list of parts."""

    role: str
    parts: list[Part] = field(default_factory=list)
    name: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text or "" for p in self.parts if p.type == "text")

    def plain_text(self) -> str:
        return "\n".join(t for t in (p.plain_text() for p in self.parts) if t)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "parts": [p.to_dict() for p in self.parts]}
        if self.name:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(
            role=d["role"],
            parts=[Part.from_dict(p) for p in d.get("parts", [])],
            name=d.get("name"),
        )


# Provider-specific identifiers a content hash leaves out: tool call ids and thinking signatures
# differ between runs and providers while the turn's content is the same.
_HASH_IGNORED = frozenset({"id", "tool_call_id", "signature"})


def message_hash(message: Message) -> str:
    """A stable SHA-256 (hex) of a message's role and parts, ignoring provider-specific ids.

    The same turn hashes alike in every request that resends it; diff alignment, correlation and
    content-addressed storage all use this one function.
    """
    import hashlib
    import json

    parts = [
        {k: v for k, v in p.to_dict().items() if k not in _HASH_IGNORED} for p in message.parts
    ]
    blob = json.dumps(
        [message.role, message.name, parts],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Tool:
    """A tool (function) the request offers the model."""

    name: str
    description: str | None = None
    parameters: Any = None
    type: str = "function"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tool:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class ToolCall:
    """A tool call the model made. ``arguments`` is parsed JSON when it parses, else the string."""

    id: str | None
    name: str
    arguments: Any = None
    arguments_raw: str = ""
    type: str = "function"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCall:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Usage:
    """Token usage with one meaning for every provider (the one genai-prices uses).

    ``input`` counts every prompt token, cached ones included; ``cache_read`` and ``cache_write``
    are parts of ``input``. ``output`` counts every generated token, reasoning included;
    ``reasoning`` is part of ``output``. ``source`` is ``reported`` (the provider said so),
    ``estimated`` (flowbook counted) or ``missing``.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    total: int = 0
    source: str = "missing"
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.total:
            self.total = self.input + self.output

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if not d["details"]:
            d.pop("details")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class StreamEvent:
    """One decoded event of a streamed response, stamped with its arrival time (epoch seconds)."""

    t: float
    event: str | None
    data: Any
    headers: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t": self.t, "event": self.event, "data": self.data}
        if self.headers:
            d["headers"] = self.headers
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamEvent:
        return cls(t=d["t"], event=d.get("event"), data=d.get("data"), headers=d.get("headers"))


@dataclass
class FlowError:
    """An error, from the provider's error body, the network, the client or flowbook's parser."""

    type: ErrorType
    message: str
    status: int | None = None
    retryable: bool | None = None
    raw: Any = None
    code: str | None = None

    def __post_init__(self) -> None:
        self.type = ErrorType(self.type)
        if self.retryable is None:
            self.retryable = self.type in RETRYABLE_ERRORS

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["type"] = str(self.type)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowError:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class LLMRequest:
    """The request as sent upstream. Secret headers are masked before a flow is stored."""

    method: str = "POST"
    url: str = ""
    host: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    model: str | None = None
    messages: list[Message] = field(default_factory=list)
    system: str | None = None
    tools: list[Tool] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False

    @property
    def size(self) -> int:
        return len(self.body or b"")

    def plain_text(self) -> str:
        """System prompt, message text and tool names: what ``request:`` searches."""
        chunks = [self.system or ""]
        chunks += [m.plain_text() for m in self.messages]
        chunks += [f"{t.name} {t.description or ''}" for t in self.tools]
        return "\n".join(c for c in chunks if c)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "host": self.host,
            "path": self.path,
            "headers": dict(self.headers),
            "body": _bytes_to_json(self.body),
            "model": self.model,
            "messages": [m.to_dict() for m in self.messages],
            "system": self.system,
            "tools": [t.to_dict() for t in self.tools],
            "params": self.params,
            "stream": self.stream,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LLMRequest:
        return cls(
            method=d.get("method", "POST"),
            url=d.get("url", ""),
            host=d.get("host", ""),
            path=d.get("path", ""),
            headers=dict(d.get("headers") or {}),
            body=_bytes_from_json(d.get("body")),
            model=d.get("model"),
            messages=[Message.from_dict(m) for m in d.get("messages") or []],
            system=d.get("system"),
            tools=[Tool.from_dict(t) for t in d.get("tools") or []],
            params=d.get("params") or {},
            stream=bool(d.get("stream")),
        )


@dataclass
class LLMResponse:
    """The response as the client received it, plus what flowbook rebuilt from it.

    ``body`` is the body with its content-encoding removed (for a stream: every byte of it).
    ``text``, ``thinking``, ``tool_calls``, ``stop_reason`` and ``usage`` are reconstructed from
    the body or the stream events; ``events`` keeps each decoded stream event with its arrival.
    """

    status_code: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    model: str | None = None
    response_id: str | None = None
    text: str = ""
    thinking: str = ""
    thinking_signature: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    usage: Usage | None = None
    events: list[StreamEvent] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.body or b"")

    def plain_text(self) -> str:
        """Text, thinking and tool calls: what ``response:`` searches."""
        chunks = [self.text, self.thinking, self.refusal or ""]
        chunks += [f"{c.name}({c.arguments_raw})" for c in self.tool_calls]
        return "\n".join(c for c in chunks if c)

    def to_dict(self, *, include_events: bool = True) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "reason": self.reason,
            "headers": dict(self.headers),
            "body": _bytes_to_json(self.body),
            "model": self.model,
            "response_id": self.response_id,
            "text": self.text,
            "thinking": self.thinking,
            "thinking_signature": self.thinking_signature,
            "refusal": self.refusal,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_dict() if self.usage else None,
            "events": [e.to_dict() for e in self.events] if include_events else [],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LLMResponse:
        return cls(
            status_code=d.get("status_code", 0),
            reason=d.get("reason", ""),
            headers=dict(d.get("headers") or {}),
            body=_bytes_from_json(d.get("body")),
            model=d.get("model"),
            response_id=d.get("response_id"),
            text=d.get("text") or "",
            thinking=d.get("thinking") or "",
            thinking_signature=d.get("thinking_signature"),
            refusal=d.get("refusal"),
            tool_calls=[ToolCall.from_dict(c) for c in d.get("tool_calls") or []],
            stop_reason=d.get("stop_reason"),
            usage=Usage.from_dict(d["usage"]) if d.get("usage") else None,
            events=[StreamEvent.from_dict(e) for e in d.get("events") or []],
            extra=d.get("extra") or {},
        )


@dataclass
class FlowTimestamps:
    """Wall-clock times (epoch seconds). Stream times are stamped by flowbook's tee."""

    created: float = field(default_factory=time.time)
    request_sent: float | None = None
    first_byte: float | None = None
    first_token: float | None = None
    completed: float | None = None

    @property
    def latency_ms(self) -> float | None:
        start = self.request_sent or self.created
        if self.completed is None:
            return None
        return max(0.0, (self.completed - start) * 1000.0)

    @property
    def ttft_ms(self) -> float | None:
        start = self.request_sent or self.created
        first = self.first_token or self.first_byte
        if first is None:
            return None
        return max(0.0, (first - start) * 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowTimestamps:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class FlowAnnotations:
    """What the user added: bookmark, marker, tags, comment."""

    bookmarked: bool = False
    marker: str | None = None
    tags: list[str] = field(default_factory=list)
    comment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowAnnotations:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class FlowMetadata:
    """Where the flow came from and what flowbook did with it."""

    provider: str = "unknown"
    api: str = "other"
    client: str | None = None
    user_agent: str | None = None
    client_address: str | None = None
    server_address: str | None = None
    session: str | None = None
    cost_usd: float | None = None
    parse_errors: list[str] = field(default_factory=list)
    rules_applied: list[str] = field(default_factory=list)
    intercepted: list[dict[str, Any]] = field(default_factory=list)
    original_request: dict[str, Any] | None = None
    original_response: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowMetadata:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def new_flow_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class LLMFlow:
    """One LLM API call: request, response, error, timings, metadata and annotations."""

    id: str = field(default_factory=new_flow_id)
    flow_type: str = "other"
    state: FlowState = FlowState.PENDING
    request: LLMRequest = field(default_factory=LLMRequest)
    response: LLMResponse | None = None
    error: FlowError | None = None
    metadata: FlowMetadata = field(default_factory=FlowMetadata)
    timestamps: FlowTimestamps = field(default_factory=FlowTimestamps)
    annotations: FlowAnnotations = field(default_factory=FlowAnnotations)

    def __post_init__(self) -> None:
        self.state = FlowState(self.state)

    @property
    def provider(self) -> str:
        return self.metadata.provider

    @property
    def api(self) -> str:
        return self.metadata.api

    @property
    def model(self) -> str | None:
        return self.request.model or (self.response.model if self.response else None)

    @property
    def usage(self) -> Usage | None:
        return self.response.usage if self.response else None

    def to_dict(self, *, include_events: bool = True) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow_type": self.flow_type,
            "state": str(self.state),
            "request": self.request.to_dict(),
            "response": self.response.to_dict(include_events=include_events)
            if self.response
            else None,
            "error": self.error.to_dict() if self.error else None,
            "metadata": self.metadata.to_dict(),
            "timestamps": self.timestamps.to_dict(),
            "annotations": self.annotations.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LLMFlow:
        return cls(
            id=d["id"],
            flow_type=d.get("flow_type", "other"),
            state=FlowState(d.get("state", "pending")),
            request=LLMRequest.from_dict(d.get("request") or {}),
            response=LLMResponse.from_dict(d["response"]) if d.get("response") else None,
            error=FlowError.from_dict(d["error"]) if d.get("error") else None,
            metadata=FlowMetadata.from_dict(d.get("metadata") or {}),
            timestamps=FlowTimestamps.from_dict(d.get("timestamps") or {}),
            annotations=FlowAnnotations.from_dict(d.get("annotations") or {}),
        )

    def __repr__(self) -> str:
        u = self.usage
        tokens = f" tokens={u.input}/{u.output}" if u else ""
        return (
            f"<LLMFlow {self.id} {self.provider}/{self.api} {self.model or '?'} "
            f"{self.state}{tokens}>"
        )

    def _repr_html_(self) -> str:
        from flowbook.ui.flow_repr import flow_html  # escaped summary, no widgets

        return flow_html(self)

    def _repr_markdown_(self) -> str:
        from flowbook.ui.flow_repr import flow_markdown

        return flow_markdown(self)

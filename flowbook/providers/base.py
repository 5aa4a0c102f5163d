"""The provider interface: detect a call, parse its request, rebuild and write its bodies.

A provider module defines one :class:`Provider` subclass and registers it with
:func:`flowbook.providers.registry.register`. Through :meth:`Provider.codec` it names the
:class:`~flowbook.providers.codec.WireCodec` of each API it serves, which encodes requests and
responses (streamed or not) and edits bodies for interception. Detection returns a
:class:`Detection` with a strength (host match beats path/header match beats body shape), so
official endpoints and custom base URLs both work (docs/wire-formats.md §9).

Response reconstruction is split in two layers that know nothing of mitmproxy:

* a *framing decoder* (``flowbook.streams``) turns raw bytes into :class:`StreamEvent` objects
  (SSE, AWS event-stream, JSON-array, NDJSON, or one whole JSON body);
* an :class:`Assembler` (one per provider API) folds those events into an :class:`LLMResponse`:
  text, thinking, tool calls, stop reason, usage and in-stream errors.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from flowbook import jsonfast
from flowbook.model import Api, ErrorType, FlowError, LLMRequest, LLMResponse, StreamEvent

if TYPE_CHECKING:
    from flowbook.providers.codec import Encoded, WireCodec

# Framing names understood by flowbook.streams.make_decoder.
SSE = "sse"
EVENTSTREAM = "eventstream"
JSON_ARRAY = "json_array"
NDJSON = "ndjson"
JSON = "json"

# Detection strengths.
HOST = 3  # host (and path) of an official endpoint
PATH = 2  # path or headers alone (custom base URL, local server)
SHAPE = 1  # only the body's shape


@dataclass
class RequestView:
    """What a provider sees of a request: no mitmproxy types, header names lowercased."""

    method: str
    url: str
    host: str
    path: str  # path with query string, as on the wire
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    port: int | None = None
    _json: Any = field(default=None, repr=False)
    _json_done: bool = field(default=False, repr=False)

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON. Parsed once."""
        if not self._json_done:
            self._json_done = True
            try:
                self._json = jsonfast.loads(self.body) if self.body else None
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json


@dataclass
class Detection:
    """Which provider and API a request belongs to, and how sure detection is."""

    provider: str
    api: Api
    strength: int

    def __post_init__(self) -> None:
        self.api = Api(self.api)


class Assembler(ABC):
    """Folds a response (streamed events or one whole body) into ``self.response``.

    ``feed`` returns True when the event carried model output (text, thinking or a tool call
    fragment): the first such event stamps time to first token.
    """

    def __init__(self, request: LLMRequest, response: LLMResponse) -> None:
        self.request = request
        self.response = response
        self.error: FlowError | None = None
        # True once a stream carried its protocol's end ([DONE], message_stop, …): the answer is
        # complete whatever happens to the connection afterwards (the capture relies on it).
        self.finished = False

    @abstractmethod
    def feed(self, event: StreamEvent) -> bool:
        """Fold one decoded stream event into the response."""

    @abstractmethod
    def feed_body(self, body: Any) -> None:
        """Fold a whole non-streamed body (parsed JSON, or bytes if it did not parse)."""

    def finish(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last event: finalise tool-call arguments, stop reason, usage."""


class Provider(ABC):
    """One provider (OpenAI, Anthropic, Gemini, Kiro, …): detection, parsing, framing, codecs.

    Subclasses implement ``detect``, ``parse_request`` and ``codec``; ``assembler`` comes from
    the codec unless a provider needs its own.
    """

    name: ClassVar[str]

    @abstractmethod
    def detect(self, req: RequestView) -> Detection | None:
        """Recognise a request as this provider's, or return None."""

    @abstractmethod
    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        """Map the request onto LLMRequest (model, messages, system, tools, params, stream)."""

    def framing(self, req: RequestView, api: str, content_type: str) -> str:
        """Which framing decoder reads the response body. Content type decides by default."""
        return framing_for_content_type(content_type)

    def codec(self, api: str) -> WireCodec | None:
        """The codec that reads and writes ``api``'s bodies here; None when flowbook has none
        (``other``, embeddings): such flows are kept but not rebuilt or rewritten."""
        return None

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        """A fresh assembler for one response (the codec's, by default)."""
        codec = self.codec(api)
        if codec is None:
            raise ValueError(f"provider {self.name!r} has no codec for api {api!r}")
        asm: Assembler = codec.new_assembler(request, response)
        return asm

    def encode_request(self, request: LLMRequest, api: str) -> bytes:
        """The request body that ``request`` stands for, in this provider's ``api`` format."""
        return self._codec(api).encode_request(request)

    def encode_response(
        self, response: LLMResponse, api: str, *, stream: bool, request: LLMRequest | None = None
    ) -> Encoded:
        """The response body a client of ``api`` would receive, streamed or not."""
        return self._codec(api).encode_response(response, stream=stream, request=request)

    def _codec(self, api: str) -> WireCodec:
        codec = self.codec(api)
        if codec is None:
            raise ValueError(f"provider {self.name!r} cannot encode api {api!r}")
        return codec

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        """Map an error response (status >= 400, body parsed JSON or bytes) to a FlowError."""
        return generic_error(status, body)


def wire_request(req: RequestView) -> LLMRequest:
    """An LLMRequest holding only the wire facts of ``req`` (method, URL, headers, body).

    Every provider's ``parse_request`` starts from this and fills in what its body says.
    """
    return LLMRequest(
        method=req.method,
        url=req.url,
        host=req.host,
        path=req.path,
        headers=dict(req.headers),
        body=req.body,
    )


def framing_for_content_type(content_type: str) -> str:
    ct = content_type.lower()
    if "text/event-stream" in ct:
        return SSE
    if "vnd.amazon.eventstream" in ct:
        return EVENTSTREAM
    if "ndjson" in ct or "jsonl" in ct:
        return NDJSON
    return JSON


def error_type_for_status(status: int | None) -> ErrorType:
    """The reference's status mapping, extended: 408/504 time out, 529 is overload."""
    if status is None:
        return ErrorType.OTHER
    if status in (401, 403):
        return ErrorType.AUTHENTICATION
    if status == 429:
        return ErrorType.RATE_LIMIT
    if status in (408, 504):
        return ErrorType.TIMEOUT
    if status == 404:
        return ErrorType.MODEL_UNAVAILABLE
    if status in (400, 409, 413, 415, 422):
        return ErrorType.BAD_REQUEST
    if status >= 500:
        return ErrorType.SERVER_ERROR
    return ErrorType.OTHER


def generic_error(status: int | None, body: Any, message: str | None = None) -> FlowError:
    """A FlowError from a status and whatever the body says (``error.message`` or ``message``)."""
    msg = message
    code = None
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = msg or err.get("message") or err.get("status")
            raw_code = err.get("code") or err.get("type") or err.get("status")
            code = str(raw_code) if raw_code is not None else None
        elif isinstance(err, str):
            msg = msg or err
    elif isinstance(body, (bytes, str)) and body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        msg = msg or text[:500]
    return FlowError(
        type=error_type_for_status(status),
        message=msg or f"HTTP {status}",
        status=status,
        raw=body if not isinstance(body, bytes) else body.decode("utf-8", "replace")[:2000],
        code=code,
    )


def truncated_error(expected: str) -> FlowError:
    """A stream that ended cleanly but before its provider's end marker (``expected``).

    The connection closed without an error, so only the missing marker shows that the answer
    is incomplete; it is reported like a dropped connection (retryable).
    """
    return FlowError(
        type=ErrorType.NETWORK,
        message=f"stream ended before {expected}: the response is incomplete",
        code="truncated_stream",
    )


def loads_or_raw(data: bytes | str) -> Any:
    """JSON when it parses, otherwise the input unchanged."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data


def token_count(u: dict[str, Any], key: str) -> int:
    """A token count from a usage object: numbers only (not bools), anything else is 0."""
    v = u.get(key)
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0


def parse_arguments(raw: str) -> Any:
    """Tool-call arguments: parsed JSON; an empty string is ``{}``; unparseable stays a string."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw

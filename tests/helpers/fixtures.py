"""Load recorded traffic and replay it through a provider, whole or in random chunks.

Used by every provider's tests. The typical test::

    from tests.helpers.fixtures import load_cassette, run_interaction, canonical

    [ia1, ia2] = load_cassette("openai/chat-stream-toolcalls-include-usage.cassette.yaml")
    whole = run_interaction(provider, ia1)                 # body fed in one piece
    for seed in range(5):
        assert canonical(run_interaction(provider, ia1, seed=seed)) == canonical(whole)
    assert whole.response.tool_calls[0].arguments == {"country": "UK"}

What is here:

* :func:`load_cassette` reads a VCR cassette (pydantic-ai's ``parsed_body`` form, simonw's raw
  ``body.string`` form, ``!!binary`` bodies, byte-string headers) into :class:`Interaction`
  objects with bytes bodies exactly as they crossed the wire (still gzip when the recorded
  ``Content-Encoding`` says so; pydantic-ai's cassettes were stored decoded and carry no such
  header).
* :func:`read_fixture` reads an extracted body (``*.sse.txt``, ``*.bin``, ``*.decoded.json``).
* :func:`split_random` cuts bytes at random boundaries (seeded, so failures reproduce).
* :func:`feed_in_random_chunks` / :func:`feed_whole` run ContentDecoder → framing decoder →
  assembler the way the capture pipeline does, and return a :class:`FeedResult`.
* :func:`run_interaction` does the whole thing for one recorded interaction: request view →
  detection → ``parse_request`` → response (or ``parse_error`` for status >= 400).
* :func:`canonical` gives a comparable dict of what was rebuilt (no event times).
"""

from __future__ import annotations

import base64
import functools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

from flowbook.model import FlowError, LLMRequest, LLMResponse, StreamEvent
from flowbook.providers.base import JSON, Assembler, Provider, RequestView
from flowbook.streams import make_decoder
from flowbook.streams.content_encoding import ContentDecoder

#: Root of the real recorded traffic (see its SOURCES.md).
REAL = Path(__file__).resolve().parent.parent / "fixtures" / "real"


def fixture_path(relative: str | Path) -> Path:
    """``relative`` under ``tests/fixtures/real``; absolute or existing paths stay unchanged."""
    p = Path(relative)
    if p.is_absolute() or (not (REAL / p).exists() and p.exists()):
        return p
    return REAL / p


def read_fixture(relative: str | Path) -> bytes:
    """The exact bytes of an extracted body such as ``openai/…response-1.sse.txt``."""
    return fixture_path(relative).read_bytes()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _headers(raw: dict[str, Any] | None) -> dict[str, str]:
    """VCR headers map a name to a list of values; flowbook wants one lowercased name → str."""
    out: dict[str, str] = {}
    for name, values in (raw or {}).items():
        vals = values if isinstance(values, list) else [values]
        out[_text(name).lower()] = ", ".join(_text(v) for v in vals)
    return out


def _body(section: dict[str, Any]) -> bytes:
    """A recorded body as bytes: ``parsed_body`` → compact JSON, else ``body``/``body.string``."""
    if "parsed_body" in section:
        return json.dumps(section["parsed_body"], ensure_ascii=False).encode("utf-8")
    body = section.get("body")
    if isinstance(body, dict):
        if "base64_string" in body:  # VCR's other way of keeping binary bodies
            return base64.b64decode(body["base64_string"])
        body = body.get("string")
    if body is None:
        return b""
    if isinstance(body, bytes):  # !!binary
        return body
    return str(body).encode("utf-8")


@dataclass
class RecordedRequest:
    """One recorded request. ``headers`` are lowercased; ``body`` is bytes (JSON for parsed)."""

    method: str
    uri: str
    headers: dict[str, str]
    body: bytes

    def view(self) -> RequestView:
        """The :class:`RequestView` a provider's ``detect``/``parse_request`` expects."""
        parts = urlsplit(self.uri)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return RequestView(
            method=self.method,
            url=self.uri,
            host=parts.hostname or self.headers.get("host", ""),
            path=path or "/",
            headers=dict(self.headers),
            body=self.body,
            port=port,
        )

    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class RecordedResponse:
    """One recorded response; ``body`` is as on the wire (still content-encoded if recorded so)."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def content_encoding(self) -> str | None:
        return self.headers.get("content-encoding") or None

    def decoded_body(self) -> bytes:
        """The body with its content-encoding removed."""
        return ContentDecoder(self.content_encoding).feed(self.body)


@dataclass
class Interaction:
    request: RecordedRequest
    response: RecordedResponse


@functools.lru_cache(maxsize=64)
def _load_yaml(path: Path) -> Any:
    # Parsing YAML is the slow part; the objects built from it below are fresh on every call.
    return YAML(typ="safe", pure=True).load(path.read_bytes().decode("utf-8"))


def load_cassette(relative: str | Path) -> list[Interaction]:
    """Every interaction of a VCR cassette under ``tests/fixtures/real`` (or an absolute path)."""
    data = _load_yaml(fixture_path(relative))
    out: list[Interaction] = []
    for item in data["interactions"]:
        rq, rs = item["request"], item["response"]
        status = rs.get("status") or {}
        out.append(
            Interaction(
                request=RecordedRequest(
                    method=_text(rq.get("method", "POST")).upper(),
                    uri=_text(rq["uri"]),
                    headers=_headers(rq.get("headers")),
                    body=_body(rq),
                ),
                response=RecordedResponse(
                    status=int(status.get("code", 200)),
                    reason=_text(status.get("message", "")),
                    headers=_headers(rs.get("headers")),
                    body=_body(rs),
                ),
            )
        )
    return out


def split_random(data: bytes, seed: int, min_size: int = 1, max_size: int = 64) -> list[bytes]:
    """``data`` cut into pieces of random length in ``[min_size, max_size]`` (seeded)."""
    rng = random.Random(seed)
    pieces: list[bytes] = []
    i = 0
    while i < len(data):
        n = rng.randint(min_size, max_size)
        pieces.append(data[i : i + n])
        i += n
    return pieces


@dataclass
class FeedResult:
    """What replaying one response body produced.

    ``response`` is the rebuilt LLMResponse (``body`` set to the decoded bytes); ``error`` is the
    assembler's in-stream error (or the parse_error FlowError for status >= 400);
    ``decoder_errors`` holds framing/content-decoding problems; ``events`` every decoded event
    (the helper does not copy them into ``response.events``); ``first_output`` the index of the
    first event for which ``feed`` returned True (None when none did); ``streamed`` whether a
    framing decoder ran (False: the body went to ``feed_body``).
    """

    response: LLMResponse
    request: LLMRequest
    assembler: Assembler | None
    error: FlowError | None
    framing: str
    streamed: bool
    events: list[StreamEvent] = field(default_factory=list)
    decoder_errors: list[str] = field(default_factory=list)
    first_output: int | None = None


def _as_request(
    provider: Provider, api: str, request: LLMRequest | RequestView
) -> tuple[LLMRequest, RequestView]:
    if isinstance(request, RequestView):
        return provider.parse_request(request, api), request
    view = RequestView(
        method=request.method,
        url=request.url,
        host=request.host,
        path=request.path,
        headers=dict(request.headers),
        body=request.body or b"",
    )
    return request, view


def feed_in_random_chunks(
    provider: Provider,
    api: str,
    request: LLMRequest | RequestView,
    content_type: str,
    content_encoding: str | None,
    body_bytes: bytes,
    seed: int | None,
    *,
    min_size: int = 1,
    max_size: int = 64,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> FeedResult:
    """Replay a response body (as on the wire) through ``provider`` like the capture pipeline.

    ``request`` is an LLMRequest, or a RequestView (then ``provider.parse_request`` runs).
    The body is cut with :func:`split_random` (``seed=None``: one piece), content-decoded
    chunk by chunk, then either framed and fed event by event (``assembler.feed``) or, when
    ``provider.framing`` says ``json``, joined and passed to ``assembler.feed_body`` (parsed
    JSON, or the bytes when they do not parse). ``assembler.finish()`` always runs.
    Never raises for bad data: problems land in ``FeedResult.decoder_errors``/``error``.
    """
    llm_request, view = _as_request(provider, api, request)
    framing = provider.framing(view, api, content_type)
    response = LLMResponse(status_code=status, headers=dict(headers or {}))
    response.headers.setdefault("content-type", content_type)
    asm = provider.assembler(api, llm_request, response)
    pieces = [body_bytes] if seed is None else split_random(body_bytes, seed, min_size, max_size)
    content = ContentDecoder(content_encoding)
    result = FeedResult(response, llm_request, asm, None, framing, framing != JSON)
    decoded = bytearray()
    decoder = make_decoder(framing) if result.streamed else None
    for i, piece in enumerate(pieces):
        try:
            plain = content.feed(piece)
        except ValueError as exc:
            result.decoder_errors.append(str(exc))
            break
        decoded += plain
        if decoder is not None and plain:
            _feed_events(result, decoder.feed(plain, float(i)))
    if decoder is not None:
        _feed_events(result, decoder.close(float(len(pieces))))
        result.decoder_errors += decoder.errors
    else:
        raw = bytes(decoded)
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        asm.feed_body(parsed)
    asm.finish()
    response.body = bytes(decoded)
    result.error = asm.error
    return result


def _feed_events(result: FeedResult, events: list[StreamEvent]) -> None:
    assert result.assembler is not None
    for ev in events:
        result.events.append(ev)
        if result.assembler.feed(ev) and result.first_output is None:
            result.first_output = len(result.events) - 1


def feed_whole(
    provider: Provider,
    api: str,
    request: LLMRequest | RequestView,
    content_type: str,
    content_encoding: str | None,
    body_bytes: bytes,
    **kwargs: Any,
) -> FeedResult:
    """:func:`feed_in_random_chunks` with the body in one piece."""
    return feed_in_random_chunks(
        provider, api, request, content_type, content_encoding, body_bytes, None, **kwargs
    )


def feed_body(
    provider: Provider,
    api: str,
    request: LLMRequest | RequestView,
    body: Any,
) -> FeedResult:
    """A non-streamed response: ``body`` (dict, or bytes/str JSON) straight to ``feed_body``."""
    llm_request, _ = _as_request(provider, api, request)
    response = LLMResponse(status_code=200)
    asm = provider.assembler(api, llm_request, response)
    if isinstance(body, (bytes, str)):
        raw = body.encode("utf-8") if isinstance(body, str) else body
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        response.body = raw
    asm.feed_body(body)
    asm.finish()
    return FeedResult(response, llm_request, asm, asm.error, JSON, False)


def run_interaction(
    provider: Provider,
    interaction: Interaction,
    *,
    seed: int | None = None,
    api: str | None = None,
    min_size: int = 1,
    max_size: int = 64,
) -> FeedResult:
    """Replay one recorded interaction through ``provider``.

    ``api`` defaults to what ``provider.detect`` says (the test fails if it does not detect).
    Status >= 400 goes to ``provider.parse_error`` (result.error, no assembler); otherwise the
    body is fed whole (``seed=None``) or in random chunks.
    """
    view = interaction.request.view()
    if api is None:
        det = provider.detect(view)
        assert det is not None, f"{provider.name} did not detect {interaction.request.uri}"
        api = det.api
    rs = interaction.response
    if rs.status >= 400:
        llm_request = provider.parse_request(view, api)
        body = rs.decoded_body()
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        err = provider.parse_error(rs.status, parsed, rs.headers)
        response = LLMResponse(status_code=rs.status, headers=rs.headers, body=body)
        return FeedResult(response, llm_request, None, err, JSON, False)
    return feed_in_random_chunks(
        provider,
        api,
        view,
        rs.content_type,
        rs.content_encoding,
        rs.body,
        seed,
        min_size=min_size,
        max_size=max_size,
        status=rs.status,
        headers=rs.headers,
    )


def canonical(result: FeedResult) -> dict[str, Any]:
    """A comparable summary of a replay: the rebuilt response without events, and the error."""
    d = result.response.to_dict(include_events=False)
    d.pop("headers", None)
    return {
        "response": d,
        "error": result.error.to_dict() if result.error else None,
        "events": len(result.events),
        "first_output": result.first_output,
    }

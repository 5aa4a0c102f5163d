"""A fake LLM upstream that speaks each provider's real wire format (docs/wire-formats.md).

The official SDKs (openai, anthropic, google-genai) can be pointed at it, directly or through
flowbook's proxy. Bodies are modelled on the recordings in ``tests/fixtures/real/``.

Routes::

    POST /v1/chat/completions (any prefix …/chat/completions)  OpenAI Chat (SSE + [DONE])
    POST /v1/responses                                          OpenAI Responses (SSE)
    GET  /v1/models, POST /v1/embeddings                        OpenAI
    POST /v1/messages (?beta=true too)                          Anthropic Messages (SSE)
    POST /v1beta/models/{m}:generateContent                     Gemini, one JSON object
    POST /v1beta/models/{m}:streamGenerateContent?alt=sse       Gemini SSE, CRLF separators
    POST /v1beta/models/{m}:streamGenerateContent               Gemini JSON-array stream
    POST /generateAssistantResponse, or POST / with
         x-amz-target: …GenerateAssistantResponse               Kiro, AWS event-stream frames
    POST /api/chat, /api/generate                               Ollama native NDJSON

Deterministic behaviour, driven by the request:

* Reply text: ``"Echo: <last user text>"``; after a tool result (OpenAI ``tool`` message,
  Anthropic ``tool_result``, Gemini ``functionResponse``, Responses ``function_call_output``,
  Kiro ``toolResults``, Ollama ``tool`` message) it is ``"The tool said: <result text>"``; with
  no user text, ``DEFAULT_TEXT``. Streams send one delta per word (``split_words``).
* Tool call: when tools are offered and the last user text contains "weather", or tool_choice
  forces a tool (OpenAI ``required``/named, Anthropic ``any``/``tool``, Gemini mode ``ANY``).
  The tool is the forced one, else ``get_weather`` if offered, else the first; the arguments are
  always ``{"city": "Paris"}``, streamed as ``TOOL_ARG_FRAGMENTS`` (Gemini: whole). Never right
  after a tool result, so agent loops end.
* Thinking: Anthropic ``thinking`` param (enabled/adaptive), OpenAI ``reasoning_effort`` (Chat:
  only ``reasoning_tokens`` in usage) or ``reasoning`` (Responses: a reasoning item, with a
  summary when ``reasoning.summary`` is set), Gemini ``thinkingConfig.includeThoughts``, Ollama
  ``think``, Kiro modelId ending ``-thinking``. Text: ``thinking_text(user_text)``.
* Usage: ``tokens(s) = ceil(len(s)/4)``; input = tokens of the JSON of the prompt messages;
  output = tokens of the visible text (or tool args) + thinking tokens. Reported where the
  provider reports it (OpenAI Chat: non-stream, or stream with ``stream_options.include_usage``;
  Anthropic: message_start + message_delta; Gemini: cumulative usageMetadata on every chunk;
  Responses: response.completed; Ollama: final line; Kiro: contextUsageEvent + meteringEvent).
* Model name ``error-400|401|404|429|500``: that status with the provider's own error body.
  ``error-midstream``: a 200 stream that breaks after two text deltas with the provider's
  in-stream error (OpenAI ``data: {"error":…}``, Responses ``event: error``, Anthropic
  ``event: error`` overloaded_error, Gemini an error object chunk, Kiro an exception frame,
  Ollama ``{"error":…}``).
* Model ``slow`` (or header ``x-fake-delay: <seconds>``, or ``chunk_delay``): sleep between
  stream events. Header ``x-fake-die-midstream: 1``: the connection drops after 3 events,
  without the terminating chunk. Header ``x-fake-gzip: 1``: gzip the body (a stream is
  compressed with a sync flush per event) and send ``Content-Encoding: gzip``.
* The model is echoed (Kiro: ``modelId``). ``fake.requests`` records every request.
* ``fake.script(path, …)`` overrides the next request to ``path`` with exact bytes.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
from collections import deque
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from flowbook.fake_upstream import server as _server
from flowbook.fake_upstream import tls as _tls
from flowbook.fake_upstream.common import DEFAULT_TEXT, TOOL_ARGS, FakeRequest, thinking_text


class FakeUpstream:
    """A fake LLM API server in a background thread. Use as a context manager or start()/stop()."""

    DISCONNECT = _server.DISCONNECT

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False, chunk_delay: float = 0.0
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.chunk_delay = chunk_delay
        self.ca_cert_path: Path | None = None
        self.requests: list[FakeRequest] = []
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[_server._Script]] = {}
        self._srv: _server._Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (``https://`` with ``tls=True``)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> FakeUpstream:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._srv is not None:
            return self
        ctx: ssl.SSLContext | None = None
        if self.tls:
            self._tmp = tempfile.mkdtemp(prefix="fake-upstream-tls-")
            files = _tls.generate(Path(self._tmp), hosts=_tls_hosts(self.host))
            self.ca_cert_path = files.ca_cert
            ctx = _tls.server_context(files)
        self._srv, self._thread = _server.serve(self.host, self.port, self, ctx)
        self.port = int(self._srv.server_address[1])
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, delete the TLS temp dir."""
        if self._srv is not None and self._thread is not None:
            _server.shutdown(self._srv, self._thread)
        self._srv = self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(
        self,
        path: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        chunks: list[bytes | object] | None = None,
        delay: float = 0.0,
        repeat: bool = False,
    ) -> None:
        """Make the next request to ``path`` (query ignored, %-escapes decoded) get these bytes.

        Each item of ``chunks`` is sent as one HTTP chunk (chunked transfer-encoding), with
        ``delay`` seconds between chunks; ``FakeUpstream.DISCONNECT`` drops the connection
        there. If ``headers`` has a Content-Length, the chunks are written raw instead (lets a
        test send a wrong length). Scripts for one path queue up; ``repeat`` keeps serving it.
        """
        items = _server.chunks_of(chunks or [])  # type: ignore[arg-type]
        s = _server._Script(status, dict(headers or {}), items, delay, repeat)
        # Requests are matched on their URL-decoded path without query, so key scripts the same
        # way: "/model/a%3A0/converse-stream" must match the request for that exact URL.
        key = unquote(urlsplit(path).path)
        with self._lock:
            self._scripts.setdefault(key, deque()).append(s)

    def clear(self) -> None:
        """Forget recorded requests and pending scripts."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()

    def _record(self, req: FakeRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _take_script(self, path: str) -> _server._Script | None:
        with self._lock:
            q = self._scripts.get(path)
            if not q:
                return None
            s = q[0]
            if not s.repeat:
                q.popleft()
            return s


def _tls_hosts(host: str) -> tuple[str, ...]:
    hosts = [host, "127.0.0.1", "localhost"]
    return tuple(dict.fromkeys(h for h in hosts if h not in ("", "0.0.0.0", "::")))


__all__ = ["DEFAULT_TEXT", "TOOL_ARGS", "FakeRequest", "FakeUpstream", "thinking_text"]

"""The fake upstream HTTP(S) server: a ThreadingHTTPServer speaking HTTP/1.1 with keep-alive and
chunked transfer-encoding, one thread per connection (so a slow stream never blocks others).

Each streamed event is written as its own HTTP chunk and flushed, optionally with a sleep before
it; the request headers ``x-fake-delay``, ``x-fake-die-midstream`` and ``x-fake-gzip`` and the
model name ``slow`` change how a reply is written (see ``flowbook.fake_upstream``).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flowbook.fake_upstream import (
    anthropic_fmt,
    gemini_fmt,
    kiro_fmt,
    ollama_fmt,
    openai_fmt,
    openai_responses,
)
from flowbook.fake_upstream.common import FakeRequest, Reply, json_reply

SLOW_DELAY = 0.1  # seconds between events for model "slow"
DIE_AFTER = 3  # events written before x-fake-die-midstream drops the connection


class _Disconnect:
    """Sentinel: close the connection abruptly at this point of a scripted body."""

    def __repr__(self) -> str:
        return "FakeUpstream.DISCONNECT"


DISCONNECT = _Disconnect()


class _Script:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        chunks: list[bytes | _Disconnect],
        delay: float,
        repeat: bool,
    ) -> None:
        self.status, self.headers, self.chunks = status, headers, chunks
        self.delay, self.repeat = delay, repeat


Route = Callable[[FakeRequest], Reply]


def route(req: FakeRequest) -> Route | None:
    """Pick the provider handler for a request by method, path and ``x-amz-target``."""
    p = req.path
    if req.method == "GET" and p.rstrip("/").endswith("/v1/models"):
        return openai_fmt.models
    if req.method != "POST":
        return None
    if p.endswith("/chat/completions"):
        return openai_fmt.chat
    if p.endswith("/v1/responses"):
        return openai_responses.responses
    if p.endswith("/v1/embeddings"):
        return openai_fmt.embeddings
    if p.endswith("/v1/messages"):
        return anthropic_fmt.messages
    if p.endswith(":generateContent") or p.endswith(":streamGenerateContent"):
        return gemini_fmt.generate
    target = req.headers.get("x-amz-target", "")
    if p.endswith("/generateAssistantResponse") or target.endswith("GenerateAssistantResponse"):
        return kiro_fmt.generate
    if p in ("/api/chat", "/api/generate"):
        return ollama_fmt.chat
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], owner: Any, ctx: ssl.SSLContext | None) -> None:
        self.owner = owner
        self.ssl_ctx = ctx
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a stalled client
        # cannot block accept() for everyone else.
        if self.ssl_ctx is not None:
            try:
                request.settimeout(10)
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ssl.SSLError):
                return
        with self.conns_lock:
            self.conns.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.conns_lock:
                self.conns.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-stream are normal here; keep test output quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "fake-upstream/1.0"
    # Each event goes out as soon as it is written (no Nagle delay between small chunks).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        req = FakeRequest(
            method=self.command,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query)),
            headers=headers,
            body=body,
            json=parsed,
            client_port=int(self.client_address[1]) if self.client_address else 0,
        )
        owner = self.server.owner
        owner._record(req)
        script = owner._take_script(req.path)
        if script is not None:
            self._write_script(script)
            return
        handler = route(req)
        if handler is None:
            self._write(json_reply(404, {"error": f"fake upstream: no route {req.path}"}), req)
            return
        try:
            reply = handler(req)
        except Exception as e:  # a bug in a format module must surface, not hang the client
            reply = json_reply(500, {"error": f"fake upstream crashed: {e!r}"})
        self._write(reply, req)

    # --- writing -----------------------------------------------------------------------

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _die(self) -> None:
        """Drop the connection without the terminating chunk (an upstream that crashed)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, reply: Reply, req: FakeRequest) -> None:
        h = req.headers
        gz = h.get("x-fake-gzip", "") not in ("", "0")
        die = h.get("x-fake-die-midstream", "") not in ("", "0")
        headers = dict(reply.headers)
        if gz:
            headers["Content-Encoding"] = "gzip"
        if reply.events is None:
            body = reply.body
            if gz:
                body = gzip_bytes(body)
            headers["Content-Length"] = str(len(body))
            self._start(reply.status, headers)
            if die:
                # A truncated fixed-length body: half of it, then the connection drops.
                self.wfile.write(body[: len(body) // 2])
                self._die()
                return
            self.wfile.write(body)
            self.wfile.flush()
            return
        delay = self.server.owner.chunk_delay
        model = _model_of(req)
        if model == "slow":
            delay = SLOW_DELAY
        if "x-fake-delay" in h:
            delay = float(h["x-fake-delay"])
        headers["Transfer-Encoding"] = "chunked"
        self._start(reply.status, headers)
        comp = zlib.compressobj(wbits=31) if gz else None
        for i, event in enumerate(reply.events):
            if die and i == DIE_AFTER:
                self._die()
                return
            if delay and i:
                time.sleep(delay)
            if comp is not None:
                # Z_SYNC_FLUSH so each event is decodable as soon as it arrives.
                event = comp.compress(event) + comp.flush(zlib.Z_SYNC_FLUSH)
            self._chunk(event)
        if comp is not None:
            self._chunk(comp.flush())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_script(self, s: _Script) -> None:
        headers = dict(s.headers)
        raw = any(k.lower() == "content-length" for k in headers)
        if not raw:
            headers["Transfer-Encoding"] = "chunked"
        self._start(s.status, headers)
        for i, c in enumerate(s.chunks):
            if s.delay and i:
                time.sleep(s.delay)
            if isinstance(c, _Disconnect):
                self._die()
                return
            if raw:
                self.wfile.write(c)
                self.wfile.flush()
            else:
                self._chunk(c)
        if not raw:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def gzip_bytes(data: bytes) -> bytes:
    """Gzip a whole body."""
    comp = zlib.compressobj(wbits=31)
    return comp.compress(data) + comp.flush()


def _model_of(req: FakeRequest) -> str:
    body = req.json_dict
    if isinstance(body.get("model"), str):
        return str(body["model"])
    if ":" in req.path and "/models/" in req.path:
        return gemini_fmt.model_of(req.path)
    return kiro_fmt.model_id(body) or ""


def serve(
    host: str, port: int, owner: Any, ctx: ssl.SSLContext | None
) -> tuple[_Server, threading.Thread]:
    """Bind and start serving in a daemon thread."""
    srv = _Server((host, port), owner, ctx)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.name = f"fake-upstream:{srv.server_address[1]}"
    t.start()
    return srv, t


def shutdown(srv: _Server, t: threading.Thread) -> None:
    """Stop accepting, then hang up every open connection so no client waits forever."""
    srv.shutdown()
    with srv.conns_lock:
        conns = list(srv.conns)
    for c in conns:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    srv.server_close()
    t.join(timeout=5)


def chunks_of(items: Iterable[bytes | _Disconnect]) -> list[bytes | _Disconnect]:
    """Validate a script's chunk list."""
    out = list(items)
    for c in out:
        if not isinstance(c, bytes | _Disconnect):
            raise TypeError(f"script chunks must be bytes or DISCONNECT, got {type(c).__name__}")
    return out

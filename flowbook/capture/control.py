"""The control channel of a capture running in its own process (``flowbook capture``).

Kernels attach to it (``fb.attach()``) and see the same store and intercept controller as the
capture process itself. It is plain HTTP/1.1 on loopback, served by the stdlib's
``ThreadingHTTPServer`` (one thread per connection, so a kernel's long poll never blocks
another's call):

- ``POST /v1/call`` ``{"method": ..., "args": {...}}`` → ``{"result": ...}``, or a 400 with
  ``{"error": {"type", "message"}}`` that the client raises again as the same exception type;
- ``POST /v1/query`` (the ``fb.flows()`` arguments) → the summary frame as an Arrow IPC stream
  (dtypes survive the trip), the row count before paging in ``X-Flowbook-Total``;
- ``GET /v1/changes?since=SEQ&wait=S`` → every change after ``SEQ`` (long poll up to ``S``
  seconds). Each store change (the coalesced ``StoreChange``) and each change of the intercept
  queue gets the next sequence number; a kernel that reconnects says which one it saw last and
  gets the rest replayed. When that is older than what the log keeps (``LOG_SIZE`` entries), or
  from another capture (``instance``), the answer says ``reset`` and the kernel re-reads.

Every request needs ``Authorization: Bearer <token>`` (the token is in
``<data_dir>/capture.token``, mode 0600); a request without it, with a wrong one, with an
``Origin`` header (a browser page) or a ``Host`` other than loopback is refused.

A kernel that holds a paused flow (someone is editing it) and then goes away must not leave it
hanging: each kernel sends its id (``X-Flowbook-Client``) and polls at least every few seconds;
when one is silent for ``lease_s``, its holds are released, so the flow's countdown runs again
and its timeout action ends it.
"""

from __future__ import annotations

import collections
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from flowbook.workspace import Workspace

log = logging.getLogger(__name__)

TOKEN_FILE = "capture.token"
LOG_SIZE = 10_000  # changes kept for replay
MAX_ROWS_KEPT = 50_000  # summary rows kept with them
MAX_BODY = 64 << 20
DEFAULT_LEASE_S = 15.0


def write_token(data_dir: Path) -> str:
    """Create a fresh token in ``<data_dir>/capture.token`` (mode 0600, written atomically)."""
    import os

    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token)
    os.replace(tmp, path)
    return token


class ChangeLog:
    """Numbered changes, with a long-poll wait. The last ``size`` entries are kept, and no more
    than ``max_rows`` summary rows in all (busy traffic sends many rows per entry; ~500 bytes
    each, so the default keeps the log near 25 MB at most)."""

    def __init__(self, size: int = LOG_SIZE, max_rows: int = MAX_ROWS_KEPT) -> None:
        self.instance = uuid.uuid4().hex
        self._entries: collections.deque[dict[str, Any]] = collections.deque()
        self._size, self._max_rows, self._rows = size, max_rows, 0
        self._seq = 0
        self._cond = threading.Condition()

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def append(self, **entry: Any) -> None:
        with self._cond:
            self._seq += 1
            self._entries.append({"seq": self._seq, **entry})
            self._rows += len(entry.get("rows") or ())
            # The newest entry always stays, whatever its size.
            while len(self._entries) > 1 and (
                len(self._entries) > self._size or self._rows > self._max_rows
            ):
                self._rows -= len(self._entries.popleft().get("rows") or ())
            self._cond.notify_all()

    def since(self, seq: int, wait: float) -> dict[str, Any]:
        """Entries after ``seq`` (waiting up to ``wait`` s for one); ``reset`` when they are
        no longer all kept (or ``seq`` is from the future: another capture's numbering)."""
        deadline = time.monotonic() + wait
        with self._cond:
            while self._seq == seq:  # nothing new yet
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            first = self._entries[0]["seq"] if self._entries else self._seq + 1
            if seq > self._seq or seq < first - 1:
                return {"instance": self.instance, "seq": self._seq, "reset": True, "changes": []}
            out = [e for e in self._entries if e["seq"] > seq]
            return {"instance": self.instance, "seq": self._seq, "reset": False, "changes": out}


class ControlServer:
    """Serves one workspace (the capture process's) to attached kernels."""

    def __init__(
        self,
        ws: Workspace,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        from flowbook.capture.control_calls import Calls

        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the control channel listens on loopback only, not {host!r}")
        self.ws = ws
        self.token = token
        self.lease_s = float(lease_s)
        self.log = ChangeLog()
        self.calls = Calls(ws, self)
        self.shutdown_requested = threading.Event()
        self._seen: dict[str, float] = {}
        self._holds: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.control = self
        self.port: int = self._httpd.server_address[1]
        ws.store.changed.connect(self._store_changed)
        ws.intercept.changed.connect(self._intercept_changed)
        ws.intercept.notice.connect(self._intercept_notice)
        self._threads = [
            threading.Thread(
                target=self._httpd.serve_forever, name="flowbook-control", daemon=True
            ),
            threading.Thread(target=self._reap, name="flowbook-control-leases", daemon=True),
        ]
        self._stop = threading.Event()

    def start(self) -> ControlServer:
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        """Stop serving (attached kernels see the capture as gone)."""
        self._stop.set()
        self.ws.store.changed.disconnect(self._store_changed)
        self.ws.intercept.changed.disconnect(self._intercept_changed)
        self.ws.intercept.notice.disconnect(self._intercept_notice)
        self._httpd.shutdown()
        self._httpd.server_close()

    # ---- change log ------------------------------------------------------------------------

    def _store_changed(self, change: Any) -> None:
        # The fresh summary rows travel with the ids (as mitmweb's flows/update carry the flow),
        # so a kernel's table refreshes a streaming row without asking for it.
        memory = self.ws.store.memory
        rows = {}
        for fid in change.added | change.updated:
            row = memory.row(fid)
            if row is not None:
                rows[fid] = row
        self.log.append(
            added=sorted(change.added),
            updated=sorted(change.updated),
            removed=sorted(change.removed),
            rows=rows,
        )

    def _intercept_changed(self) -> None:
        self.log.append(intercept=True)

    def _intercept_notice(self, kind: str, flow_id: str, message: str) -> None:
        self.log.append(intercept=True, notice=[kind, flow_id, message])

    # ---- clients and their holds -------------------------------------------------------------

    def seen(self, client: str) -> None:
        with self._lock:
            self._seen[client] = time.monotonic()

    def held(self, client: str, flow_id: str, on: bool) -> None:
        with self._lock:
            ids = self._holds.setdefault(client, set())
            (ids.add if on else ids.discard)(flow_id)

    def clients(self) -> list[str]:
        """Kernels heard from within the lease."""
        now = time.monotonic()
        with self._lock:
            return [c for c, t in self._seen.items() if now - t <= self.lease_s]

    def _reap(self) -> None:
        while not self._stop.wait(min(1.0, self.lease_s / 4)):
            now = time.monotonic()
            with self._lock:
                gone = [c for c, t in self._seen.items() if now - t > self.lease_s]
                released = {c: self._holds.pop(c, set()) for c in gone}
                for c in gone:
                    del self._seen[c]
            for client, ids in released.items():
                for flow_id in ids:
                    try:
                        self.ws.intercept.release_hold(flow_id)
                    except (KeyError, RuntimeError):
                        continue  # released meanwhile, or the proxy stopped
                    log.info("kernel %s went away: flow %s counts down again", client, flow_id)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    control: ControlServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the capture's terminal shows its status line, not an access log

    # ---- checks ------------------------------------------------------------------------------

    def _refuse(self) -> bool:
        """Send 401/403 and return True unless the request carries the token from loopback.

        A refused request's body is not read, so its connection is closed after the answer.
        """
        ctl = self.server.control
        refused = self._check(ctl)
        if refused is None:
            return False
        self.close_connection = True
        status, message = refused
        body = {"error": {"type": "PermissionError", "message": message}}
        self._send(status, json.dumps(body).encode(), "application/json", {"Connection": "close"})
        return True

    def _check(self, ctl: ControlServer) -> tuple[int, str] | None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if self.headers.get("Origin") is not None or host not in ("127.0.0.1", "localhost", "::1"):
            # A web page (or a DNS-rebound name) never talks to the capture.
            return 403, "refused: requests from a browser page or a non-loopback Host"
        auth = self.headers.get("Authorization") or ""
        given = auth[7:].encode() if auth.startswith("Bearer ") else b""
        if not hmac.compare_digest(given, ctl.token.encode()):
            return 401, "missing or wrong token (it is in <data_dir>/capture.token)"
        client = self.headers.get("X-Flowbook-Client")
        if client:
            ctl.seen(client)
        return None

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError(f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(n) if n else b"{}"
        return json.loads(raw or b"{}")

    def _send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json")

    def _error(self, exc: BaseException) -> None:
        self._json(400, {"error": {"type": type(exc).__name__, "message": str(exc)}})

    # ---- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._refuse():
            return
        url = urlsplit(self.path)
        if url.path != "/v1/changes":
            self._json(404, {"error": {"type": "KeyError", "message": f"no route {url.path}"}})
            return
        ctl = self.server.control
        q = parse_qs(url.query)
        try:
            since = int(q.get("since", ["0"])[0])
            # Polls come at least three times per lease: a live kernel never loses its holds.
            wait = max(0.0, min(float(q.get("wait", ["0"])[0]), ctl.lease_s / 3))
        except ValueError as exc:
            self._error(exc)
            return
        self._json(200, ctl.log.since(since, wait))

    def do_POST(self) -> None:
        if self._refuse():
            return
        ctl = self.server.control
        path = urlsplit(self.path).path
        try:
            body = self._body()
            if path == "/v1/query":
                data, total = ctl.calls.query(body)
                self._send(
                    200,
                    data,
                    "application/vnd.apache.arrow.stream",
                    {"X-Flowbook-Total": str(total)},
                )
                return
            if path != "/v1/call":
                self._json(404, {"error": {"type": "KeyError", "message": f"no route {path}"}})
                return
            client = self.headers.get("X-Flowbook-Client") or ""
            result = ctl.calls.call(str(body.get("method")), dict(body.get("args") or {}), client)
        except Exception as exc:  # the kernel gets the error, the capture keeps running
            self._error(exc)
            return
        self._json(200, {"result": result})

"""The capture process's side of a proxy running in its own process (:mod:`.worker`).

:class:`ProxyProcess` has the interface of :class:`~flowbook.capture.proxy.ProxyThread` (start,
stop, alive, listen_addrs, loop), so the runtime and the monitor use either alike. A reader
thread turns the proxy process's messages back into the recorder's ops, in the order they were
sent; interception runs here, on a loop of its own, against a mirror of each intercepted flow
(:class:`~flowbook.capture.addon.FlowbookAddon` unchanged: the controller, the host and the
recorder are the capture process's own).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from flowbook.capture.link import Link
from flowbook.capture.ops import (
    Begin,
    Chunk,
    Failed,
    Op,
    RequestSent,
    ResponseEnd,
    ResponseHeaders,
)
from flowbook.capture.proxy import EXIT_TIMEOUT, STARTUP_TIMEOUT, ProxyStartError
from flowbook.providers import registry
from flowbook.providers.base import Detection, Provider, RequestView

if TYPE_CHECKING:
    from mitmproxy import http

    from flowbook.capture.addon import FlowbookAddon
    from flowbook.capture.recorder import FlowRecorder
    from flowbook.intercept.controller import InterceptController

log = logging.getLogger(__name__)


class ProxyProcess:
    """mitmproxy in a child process, feeding this process's recorder."""

    def __init__(
        self,
        addon: FlowbookAddon,
        opts: dict[str, Any],
        recorder: FlowRecorder,
        interceptor: InterceptController,
    ) -> None:
        self.addon = addon  # runs here only for intercepted flows (on mirrors)
        self.opts = opts
        self.recorder = recorder
        self.interceptor = interceptor
        self.listen_addrs: list[tuple[str, int]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._link: Link | None = None
        self._reader: threading.Thread | None = None
        self._loop_thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop_ready = threading.Event()
        self._bye = threading.Event()
        self._startup: tuple[Any, ...] | None = None
        self._mirrors: dict[str, http.HTTPFlow] = {}
        self._providers: dict[str, Provider] = {}
        self._acks: dict[int, threading.Event] = {}
        self._ack_ids = itertools.count(1)
        self._intercepting = False
        self._push_lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        self._link = Link(ours)
        self._loop_thread = threading.Thread(
            target=self._run_loop, name="flowbook-intercept-loop", daemon=True
        )
        self._loop_thread.start()
        self._loop_ready.wait(10)
        self._intercepting = self.interceptor.active()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "flowbook.capture.worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        finally:
            theirs.close()
        self._link.send([("start", self.opts, self._intercepting)])
        self._reader = threading.Thread(target=self._read, name="flowbook-proxy-link", daemon=True)
        self._reader.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            self.stop(EXIT_TIMEOUT)
            raise ProxyStartError("the proxy process did not start within 30 s")
        startup = self._startup
        if startup is None or startup[0] != "ready":
            detail = startup[1] if startup else "it exited before reporting"
            self.stop(EXIT_TIMEOUT)
            raise ProxyStartError(str(detail))
        self.listen_addrs = [tuple(a) for a in startup[1]]  # type: ignore[misc]
        expected = len(self.opts.get("mode", ["regular"]))
        if len(self.listen_addrs) < expected:
            self.stop(EXIT_TIMEOUT)
            raise ProxyStartError("mitmproxy could not listen: no listening socket was opened")
        self.interceptor.changed.connect(self._push_intercepting)
        self._push_intercepting()  # a rule set while the proxy process was starting

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        loop.call_soon(self._loop_ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._bye.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self.interceptor.changed.disconnect(self._push_intercepting)
        except Exception:
            pass  # never connected (start failed)
        proc, link = self._proc, self._link
        if link is not None and proc is not None and proc.poll() is None:
            try:
                link.send([("stop",)])
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(timeout)  # ends at the proxy's last batch ("bye") or its exit
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if link is not None:
            link.close()
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(timeout)

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until every event the proxy process saw before this call is in the recorder's
        queue (its batches leave once per loop turn, so a client can have its answer first)."""
        link = self._link
        if link is None or not self.alive:
            return True
        sync_id = next(self._ack_ids)
        ev = self._acks[sync_id] = threading.Event()
        try:
            link.send([("sync", sync_id)])
            return ev.wait(timeout)
        except OSError:
            return True  # the proxy is gone; what it sent is all there is
        finally:
            self._acks.pop(sync_id, None)

    # ---- interception flag --------------------------------------------------------------

    def _push_intercepting(self, *_: Any) -> None:
        """Tell the proxy process whether flows must cross for interception; wait for its
        acknowledgement, so a request sent after ``enable()`` returns is paused."""
        with self._push_lock:
            value = self.interceptor.active()
            link = self._link
            if value == self._intercepting or link is None or not self.alive:
                return
            ack_id = next(self._ack_ids)
            ev = self._acks[ack_id] = threading.Event()
            try:
                link.send([("intercepting", value, ack_id)])
            except OSError:
                return
            if ev.wait(10):
                self._intercepting = value
            self._acks.pop(ack_id, None)

    # ---- messages from the proxy process ------------------------------------------------

    def _read(self) -> None:
        assert self._link is not None
        submit = self.recorder.submit
        try:
            for batch in self._link.batches():
                for msg in batch:
                    kind = msg[0]
                    if kind == "C":
                        submit(Chunk(msg[1], msg[2], msg[3]))
                    elif kind in "BSHEF":
                        submit(self._op(msg))
                    elif kind == "R":
                        self._rpc(msg)
                    elif kind == "X":
                        self._mirrors.pop(msg[1], None)
                    elif kind in ("ack", "synced"):
                        ev = self._acks.get(msg[1])
                        if ev is not None:
                            ev.set()
                    elif kind in ("ready", "error"):
                        self._startup = msg
                        self._ready.set()
                    elif kind == "bye":
                        self._bye.set()
                        return
        except Exception:
            log.exception("the link to the proxy process failed")
        finally:
            self._bye.set()
            self._ready.set()

    def _provider(self, name: str) -> Provider:
        p = self._providers.get(name)
        if p is None:
            p = self._providers[name] = registry.get(name)
        return p

    def _op(self, msg: tuple[Any, ...]) -> Op:
        match msg:
            case ("B", fid, method, url, host, path, headers, body, port, pname, api, strength,
                  created, client):  # fmt: skip
                view = RequestView(method, url, host, path, headers, body, port)
                det = Detection(pname, api, strength)
                return Begin(fid, view, self._provider(pname), det, created, client)
            case ("S", fid, t):
                return RequestSent(fid, t)
            case ("H", fid, t, status, reason, headers, streamed):
                return ResponseHeaders(fid, t, status, reason, headers, streamed)
            case ("E", fid, t, raw):
                return ResponseEnd(fid, t, raw)
            case ("F", fid, t, message, cancelled):
                return Failed(fid, t, message, cancelled)
        raise ValueError(f"unknown message from the proxy process: {msg[0]!r}")

    def _rpc(self, msg: tuple[Any, ...]) -> None:
        loop = self.loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._answer(msg), loop)

    async def _answer(self, msg: tuple[Any, ...]) -> None:
        call_id, kind, flow_id, *args = msg[1:]
        try:
            result = await self._handle(kind, flow_id, *args)
        except Exception:
            log.exception("interception of flow %s failed; it goes on unchanged", flow_id)
            result = None
        try:
            assert self._link is not None
            self._link.send([("answer", call_id, result)])
        except OSError:
            pass

    async def _handle(self, kind: str, flow_id: str, *args: Any) -> Any:
        from mitmproxy import http

        from flowbook.capture.addon import StreamTee, request_view

        if kind == "request":
            state, created, client, pname, api, strength = args
            mirror = http.HTTPFlow.from_state(state)
            assert isinstance(mirror, http.HTTPFlow)
            self._mirrors[flow_id] = mirror
            pending = self.addon.record_request(
                mirror, request_view(mirror), self._provider(pname),
                Detection(pname, api, strength), created, client,
            )  # fmt: skip
            if pending is not None:
                await pending
            return {
                "request": mirror.request.get_state(),
                "response": mirror.response.get_state() if mirror.response else None,
            }
        found = self._mirrors.get(flow_id)
        if found is None:
            return None
        mirror = found
        if kind == "responseheaders":
            mirror.response = http.Response.from_state(args[0])
            self.addon.responseheaders(mirror)
            return {"streamed": isinstance(mirror.response.stream, StreamTee)}
        if kind == "response":
            self._mirrors.pop(flow_id, None)
            mirror.response = http.Response.from_state(args[0])
            pending = self.addon.response(mirror)
            if pending is not None:
                await pending
            assert mirror.response is not None
            return {"response": mirror.response.get_state()}
        raise ValueError(f"unknown call from the proxy process: {kind!r}")


def _child_env() -> dict[str, str]:
    """This environment, with the directory this flowbook was imported from first on the
    child's path (a kernel may have imported it from a checkout that is not installed)."""
    import os
    from pathlib import Path

    import flowbook

    root = str(Path(flowbook.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}

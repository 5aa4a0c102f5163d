"""The proxy process of `flowbook capture`: mitmproxy and flowbook's addon, nothing else.

``flowbook capture`` runs the proxy here, in a process of its own, so that mitmproxy's event
loop never waits for the GIL while the capture process parses, prices, masks and stores flows
(measured: the recorder and the store writer took 0.7-0.9 ms of GIL per call away from the proxy
loop, capping a saturated proxy at about two thirds of bare mitmproxy's throughput).

The addon here is :class:`~flowbook.capture.addon.FlowbookAddon` with an :class:`OpShipper` in
place of the recorder: every event of a detected LLM flow becomes a small tuple, batched per turn
of the event loop and sent over the link (:mod:`flowbook.capture.link`) to the capture process,
whose :class:`~flowbook.capture.proxy_process.ProxyProcess` feeds the real recorder. Streamed
chunks are forwarded to the client exactly as in the in-process proxy; only their copies travel.

Interception needs the capture process's controller (kernels resume, edit and drop flows
there). While any breakpoint or rule is set (the capture process pushes that flag and waits for
the acknowledgement), a new flow's request, response headers and buffered response cross the
link as mitmproxy flow states; the capture process runs the real addon on a mirror of the flow
and answers with the request and response to go on with.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import time
from collections.abc import Awaitable
from typing import Any

from mitmproxy import http

from flowbook.capture.addon import META_KEY, FlowbookAddon, StreamTee, flow_id_of
from flowbook.capture.link import Link
from flowbook.providers.base import Detection, Provider, RequestView

MIRRORED = "flowbook_mirrored"
#: How long events wait to go out together. A plain call's three hooks and a stream's chunks
#: then cost one pickle and one ``sendall`` (and one wake-up of the capture process) instead of
#: one each; readers never wait for it (``sync`` flushes at once).
FLUSH_DELAY_S = 0.002


class OpShipper:
    """The recorder's interface in the proxy process: each event becomes a message of the next
    batch. Called only on the proxy's event loop."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._buf: list[tuple[Any, ...]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.broken = False

    def _push(self, msg: tuple[Any, ...]) -> None:
        self._buf.append(msg)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_later(FLUSH_DELAY_S, self.flush)

    def flush(self) -> None:
        """Send what is queued (once per loop turn; also at shutdown)."""
        batch, self._buf = self._buf, []
        self._scheduled = False
        if batch and not self.broken:
            try:
                self.link.send(batch)
            except OSError:
                self.broken = True  # the capture process is gone; the main thread shuts down

    # ---- FlowRecorder's interface (what the addon calls) ---------------------------------

    def begin(
        self,
        flow_id: str,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        *,
        created: float,
        client_address: str | None = None,
        parse_now: bool = False,
    ) -> None:
        self._push(
            ("B", flow_id, view.method, view.url, view.host, view.path, view.headers, view.body,
             view.port, provider.name, detection.api.value, detection.strength, created,
             client_address)
        )  # fmt: skip

    def request_sent(self, flow_id: str, t: float, changed_view: RequestView | None = None) -> None:
        self._push(("S", flow_id, t))

    def response_headers(
        self, flow_id: str, t: float, status: int, reason: str, headers: dict[str, str], s: bool
    ) -> None:
        self._push(("H", flow_id, t, status, reason, headers, s))

    def chunk(self, flow_id: str, t: float, data: bytes) -> None:
        self._push(("C", flow_id, t, data))

    def response_end(self, flow_id: str, t: float, raw_body: bytes | None) -> None:
        self._push(("E", flow_id, t, raw_body))

    def failed(self, flow_id: str, t: float, message: str, *, cancelled: bool) -> None:
        self._push(("F", flow_id, t, message, cancelled))

    def synced(self, sync_id: int) -> None:
        """Everything queued so far goes out, then the marker the capture process waits for."""
        self._buf.append(("synced", sync_id))
        self.flush()

    # ---- calls answered by the capture process ------------------------------------------

    async def rpc(self, kind: str, flow_id: str, *args: Any) -> Any:
        call_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._calls[call_id] = fut
        self._push(("R", call_id, kind, flow_id, *args))
        try:
            return await fut
        finally:
            self._calls.pop(call_id, None)

    def answer(self, call_id: int, result: Any) -> None:
        fut = self._calls.get(call_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

    def fail_calls(self) -> None:
        for fut in list(self._calls.values()):
            if not fut.done():
                fut.set_result(None)  # the flow goes on unchanged


class WorkerAddon(FlowbookAddon):
    """FlowbookAddon shipping events to the capture process, and asking it while intercepting."""

    def __init__(self, shipper: OpShipper) -> None:
        super().__init__(shipper)  # type: ignore[arg-type]
        self.shipper = shipper
        self.intercepting = False

    def record_request(
        self,
        flow: http.HTTPFlow,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        created: float,
        client_addr: str | None,
    ) -> Awaitable[None] | None:
        if not self.intercepting:  # shipped as it is (no interceptor here): nothing to wait for
            return super().record_request(flow, view, provider, detection, created, client_addr)
        return self._mirrored_request(flow, provider, detection, created, client_addr)

    async def _mirrored_request(
        self,
        flow: http.HTTPFlow,
        provider: Provider,
        detection: Detection,
        created: float,
        client_addr: str | None,
    ) -> None:
        flow_id = flow_id_of(flow)
        flow.metadata[META_KEY] = flow_id
        flow.metadata[MIRRORED] = True
        reply = await self.shipper.rpc(
            "request", flow_id, flow.get_state(), created, client_addr, provider.name,
            detection.api.value, detection.strength,
        )  # fmt: skip
        if reply is None:
            return
        if reply["request"] != flow.request.get_state():
            flow.request.set_state(reply["request"])
        if reply["response"] is not None:
            flow.response = http.Response.from_state(reply["response"])

    def responseheaders(self, flow: http.HTTPFlow) -> Any:
        if not flow.metadata.get(MIRRORED):
            return super().responseheaders(flow)
        return self._mirrored_headers(flow)

    async def _mirrored_headers(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        flow_id = flow.metadata[META_KEY]
        reply = await self.shipper.rpc("responseheaders", flow_id, resp.get_state())
        if reply is not None and reply["streamed"]:  # (no reply: the capture process is gone)
            resp.stream = StreamTee(self.recorder, flow_id)

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.metadata.get(MIRRORED):
            return self._mirrored_response(flow)
        return super().response(flow)

    async def _mirrored_response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        flow_id = flow.metadata[META_KEY]
        if isinstance(resp.stream, StreamTee):
            resp.stream.end(resp.timestamp_end or time.time())
            self.shipper._push(("X", flow_id))
            return
        reply = await self.shipper.rpc("response", flow_id, resp.get_state())
        if reply is not None and reply["response"] != resp.get_state():
            flow.response = http.Response.from_state(reply["response"])

    def error(self, flow: http.HTTPFlow) -> None:
        super().error(flow)
        if flow.metadata.get(MIRRORED):
            self.shipper._push(("X", flow.metadata[META_KEY]))


def main(fd: int) -> None:
    from flowbook.capture.proxy import ProxyThread

    link = Link(socket.socket(fileno=fd))
    batches = link.batches()
    first = next(batches, None)
    if not first or first[0][0] != "start":
        sys.exit(2)
    opts: dict[str, Any] = first[0][1]
    shipper = OpShipper(link)
    addon = WorkerAddon(shipper)
    addon.intercepting = bool(first[0][2])
    proxy = ProxyThread(addon, opts)  # type: ignore[arg-type]
    try:
        proxy.start()
    except Exception as exc:
        link.send([("error", str(exc))])
        sys.exit(1)
    link.send([("ready", proxy.listen_addrs)])
    loop = proxy.loop
    assert loop is not None
    try:
        for batch in batches:
            for msg in batch:
                kind = msg[0]
                if kind == "answer":
                    loop.call_soon_threadsafe(shipper.answer, msg[1], msg[2])
                elif kind == "intercepting":
                    # Set on the loop, then acknowledged: once the capture process has the
                    # acknowledgement, every request the loop takes sees the new value.
                    fut = asyncio.run_coroutine_threadsafe(_set(addon, bool(msg[1])), loop)
                    fut.result(10)
                    link.send([("ack", msg[2])])
                elif kind == "sync":
                    loop.call_soon_threadsafe(shipper.synced, msg[1])
                elif kind == "stop":
                    raise StopIteration
    except StopIteration:
        pass
    finally:
        # Close the listeners, let the loop finish what it has, send the last batch, say bye.
        proxy.stop()
        shipper.fail_calls()
        shipper.flush()
        try:
            link.send([("bye",)])
        except OSError:
            pass
        link.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # mitmproxy_rs listeners can crash the interpreter's final collection (see cli._exit_now);
    # everything this process owns is closed by now.
    os._exit(0)


async def _set(addon: WorkerAddon, value: bool) -> None:
    addon.intercepting = value


if __name__ == "__main__":
    main(int(sys.argv[1]))

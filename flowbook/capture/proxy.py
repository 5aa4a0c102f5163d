"""Run mitmproxy in a background thread with its own event loop.

mitmproxy's Master must be built inside the loop that runs it, so the thread builds it; the kernel
only talks to it through ``loop.call_soon_threadsafe`` (DESIGN §2).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import socket
import sys
import threading
from typing import Any

from mitmproxy import addons, options
from mitmproxy.master import Master
from mitmproxy.proxy import mode_specs

from flowbook.capture.addon import FlowbookAddon

STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 2.0  # a script that ends without fb.stop() waits at most this long per step
# The proxy thread shares the GIL with the recorder and with whatever the kernel computes. With
# CPython's default 5 ms switch interval a busy thread can hold the proxy loop back by up to 5 ms
# per hand-over, which showed as a 25-30 ms p99 in bench/proxy_latency.py; at 1 ms the proxy's
# p99 stays within a few percent of bare mitmproxy. The cost is more frequent GIL hand-overs
# between CPU-bound threads, a few percent at most.
SWITCH_INTERVAL = 0.001


class ProxyStartError(RuntimeError):
    """The proxy could not start (bad option, port in use, bad mode spec)."""


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def normalise_modes(modes: list[str], host: str) -> list[str]:
    """Validate mode specs; give every mode after the first its own port when none was given
    (mitmproxy refuses two servers on one address)."""
    out = []
    for i, spec in enumerate(modes):
        try:
            parsed = mode_specs.ProxyMode.parse(spec)
        except ValueError as exc:
            raise ProxyStartError(
                f"invalid proxy mode {spec!r}: {exc}. Examples: 'regular', "
                "'reverse:https://api.openai.com', 'upstream:http://proxy:3128', "
                "'reverse:http://127.0.0.1:9000@8081' (own port)"
            ) from None
        if i > 0 and parsed.custom_listen_port is None:
            spec = f"{spec}@{free_port(host)}"
        out.append(spec)
    return out


class ProxyThread:
    """One mitmproxy instance in a daemon thread."""

    def __init__(self, addon: FlowbookAddon, opts: dict[str, Any]) -> None:
        self.addon = addon
        self.opts = opts
        self.loop: asyncio.AbstractEventLoop | None = None
        self.master: Master | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._errors = _ErrorCollector()
        self._thread = threading.Thread(target=self._main, name="flowbook-proxy", daemon=True)
        self.listen_addrs: list[tuple[str, int]] = []
        self._saved_switch = sys.getswitchinterval()

    def start(self) -> None:
        self._saved_switch = sys.getswitchinterval()
        if self._saved_switch > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        logging.getLogger("mitmproxy").addHandler(self._errors)
        try:
            self._thread.start()
            if not self._started.wait(STARTUP_TIMEOUT):
                raise ProxyStartError("mitmproxy did not start within 30 s")
            if self._error is not None:
                raise ProxyStartError(str(self._error)) from self._error
            if not self.addon.ready.wait(STARTUP_TIMEOUT):
                raise ProxyStartError("mitmproxy did not report running within 30 s")
            assert self.master is not None and self.loop is not None
            fut = asyncio.run_coroutine_threadsafe(self._addrs(), self.loop)
            self.listen_addrs = fut.result(10)
            expected = len(self.opts.get("mode", ["regular"]))
            if len(self.listen_addrs) < expected:
                detail = "; ".join(self._errors.messages) or "no listening socket was opened"
                self.stop()
                raise ProxyStartError(f"mitmproxy could not listen: {detail}")
            # A script that ends without fb.stop() would leave the loop's tasks to be destroyed
            # while pending (asyncio then prints "Task was destroyed but it is pending!").
            atexit.register(self._stop_at_exit)
        finally:
            logging.getLogger("mitmproxy").removeHandler(self._errors)

    async def _addrs(self) -> list[tuple[str, int]]:
        assert self.master is not None
        ps = self.master.addons.get("proxyserver")
        # One address per mode, in mode order: a server can listen on several sockets (a
        # reverse mode to https also opens UDP for HTTP/3), and Monitor pairs modes with these.
        return [(s.listen_addrs[0][0], s.listen_addrs[0][1]) for s in ps.servers if s.listen_addrs]

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._run())
        finally:
            loop.close()

    async def _run(self) -> None:
        try:
            opts = options.Options()
            master = Master(opts, event_loop=asyncio.get_running_loop())
            master.addons.add(*addons.default_addons(), self.addon)
            opts.update(**self.opts)
        except Exception as exc:
            self._error = exc
            self._started.set()
            return
        self.master = master
        self._started.set()
        await master.run()

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the proxy's loop (thread-safe)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    async def _close_servers(self) -> None:
        assert self.master is not None
        # mitmproxy's proxyserver has no ``done`` hook (mitmdump just exits the process), so
        # close the listening sockets ourselves: stop must free the port.
        await self.master.addons.get("proxyserver").servers.update([])

    def _stop_at_exit(self) -> None:
        self.stop(EXIT_TIMEOUT)

    def stop(self, timeout: float = 10.0) -> None:
        atexit.unregister(self._stop_at_exit)
        if self.master is not None and self.loop is not None and not self.loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self._close_servers(), self.loop).result(timeout)
            except Exception as exc:  # still shut the loop down
                logging.getLogger(__name__).warning("closing proxy servers failed: %s", exc)
            self.master.shutdown()
        self._thread.join(timeout)
        sys.setswitchinterval(self._saved_switch)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

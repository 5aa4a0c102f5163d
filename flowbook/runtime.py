"""Runtime: the capture side of a workspace — recorder, proxy thread and their lifecycle.

It wires the mitmproxy addon to the recorder, the recorder to the store (through ``put`` and
``touch`` only) and the intercept controller to the proxy's event loop; it starts and stops the
proxy. Everything about reading flows is the store's (``flowbook.store.facade.Store``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.capture.recorder import FlowRecorder

if TYPE_CHECKING:
    from flowbook.capture.monitor import Monitor
    from flowbook.intercept.controller import InterceptController
    from flowbook.store.facade import Store


class Runtime:
    """Recorder and (while capturing) proxy for one data dir, writing into ``store``."""

    def __init__(self, data_dir: Path, store: Store, interceptor: InterceptController) -> None:
        self.data_dir = data_dir
        self.store = store
        self.interceptor = interceptor
        # The recorder needs only the store's put/touch (its FlowSink).
        self.recorder = FlowRecorder(self.store)
        self.monitor: Monitor | None = None
        self.proxy: Any = None

    @property
    def running(self) -> bool:
        """Whether the proxy is running."""
        return self.monitor is not None and self.monitor.running

    def start(
        self,
        *,
        port: int,
        host: str,
        mode: str | list[str],
        options: dict[str, Any],
        own_process: bool = False,
    ) -> Monitor:
        """Start mitmproxy in a background thread, or with ``own_process`` in a child process
        of its own (:mod:`flowbook.capture.worker`; its event loop then never waits for this
        process's GIL). Idempotent: returns the running monitor."""
        from flowbook.capture.addon import FlowbookAddon
        from flowbook.capture.intercept_host import RecorderInterceptHost
        from flowbook.capture.monitor import Monitor, private_dir
        from flowbook.capture.proxy import ProxyThread, normalise_modes
        from flowbook.capture.proxy_process import ProxyProcess

        if self.monitor is not None and self.monitor.running:
            return self.monitor
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(
                f"port must be an integer from 0 to 65535 (0 picks a free port), got {port!r}"
            )
        modes = [mode] if isinstance(mode, str) else list(mode)
        if not modes:
            raise ValueError("mode must name at least one mitmproxy mode, e.g. 'regular'")
        modes = normalise_modes(modes, host)
        confdir = private_dir(self.data_dir / "mitmproxy")
        opts: dict[str, Any] = {
            "listen_host": host,
            "listen_port": port,
            "mode": modes,
            "confdir": str(confdir),
            # Upstream servers often answer with HTTP/2; keep it, mitmproxy streams both.
            "connection_strategy": "lazy",
        }
        opts.update(options)
        addon = FlowbookAddon(self.recorder, self.interceptor, RecorderInterceptHost(self.recorder))
        proxy: ProxyThread | ProxyProcess
        if own_process:
            proxy = ProxyProcess(addon, opts, self.recorder, self.interceptor)
        else:
            proxy = ProxyThread(addon, opts)
        proxy.start()
        if proxy.loop is not None:
            self.interceptor.attach_loop(proxy.loop)
        self.proxy = proxy
        self.monitor = Monitor(proxy, modes, self.data_dir, confdir, self.store)
        self.store.mark_capturing()
        _ = self.store.disk  # open (and recover) the file store before traffic arrives
        return self.monitor

    def stop(self) -> None:
        """Stop the proxy; paused flows are released unchanged; what was captured is parsed."""
        # Paused flows end now, unchanged, instead of hanging until their timeout.
        self.interceptor.detach_loop()
        if self.proxy is not None:
            from flowbook.capture import discovery

            discovery.withdraw(self.data_dir)  # capture.json goes with the proxy
            self.proxy.stop()
            self.proxy = None
        self.wait_idle()

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until everything the proxy saw so far has been applied by the recorder."""
        sync = getattr(self.proxy, "sync", None)  # a proxy process: its last batch first
        ok = sync(timeout) if sync is not None else True
        return self.recorder.wait_idle(timeout) and ok

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every captured byte has been parsed into the store and written to disk."""
        ok = self.settle(timeout)
        return self.store.wait_idle(timeout) and ok

    def close(self) -> None:
        """Stop the proxy and the recorder thread."""
        self.stop()
        self.recorder.close()

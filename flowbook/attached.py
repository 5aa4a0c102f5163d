"""A kernel attached to a capture running in its own process (``flowbook capture``).

``AttachedWorkspace`` is a ``Workspace`` whose store is a ``RemoteStore`` and whose intercept
controller is a ``RemoteInterceptController``: ``fb.flows()``, ``fb.get_flow()``, the widgets and
``fb.intercept`` work as with an in-kernel capture, answered by the capture process over its
control channel (``flowbook.capture.control``). ``spawn_capture`` starts that process for
``fb.start(detached=True)``: in its own session, so a kernel restart or Ctrl-C does not reach it,
its output in ``<data_dir>/capture.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.capture.discovery import LiveCapture, _pid_alive, read_live
from flowbook.capture.monitor import Monitor, private_dir
from flowbook.intercept.remote import RemoteInterceptController
from flowbook.settings import ConfigManager
from flowbook.store.remote import CaptureGone, ControlClient, RemoteStore
from flowbook.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from flowbook.model import LLMFlow

LOG_FILE = "capture.log"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
# Processes this interpreter started (reaped at stop, so a finished capture is no zombie).
_children: dict[int, subprocess.Popen[bytes]] = {}


class RemoteMonitor(Monitor):
    """The ``Monitor`` of a capture in another process: same addresses, CA and client helpers."""

    def __init__(self, live: LiveCapture, ws: AttachedWorkspace) -> None:
        # Deliberately not Monitor.__init__: the proxy runs (and announced itself) elsewhere.
        self.data_dir = live.data_dir
        self.confdir = live.confdir
        self.modes = list(live.modes)
        self.pid = live.pid
        self.control_port = live.control_port
        self._store = ws.store
        self._ws = ws

    @property
    def running(self) -> bool:
        return _pid_alive(self.pid) and not _reaped(self.pid)

    def stop(self) -> None:
        """End the capture process (``fb.stop()`` does this too)."""
        self._ws.stop()

    def __repr__(self) -> str:
        head, *rest = super().__repr__().splitlines()
        return "\n".join(
            [
                head.replace("Monitor:", f"Monitor (detached, pid {self.pid}):", 1),
                *rest,
                "  it outlives this kernel; from any kernel: fb.attach() or %flowmon attach; "
                "fb.stop() ends it",
            ]
        )


def _reaped(pid: int) -> bool:
    """Whether ``pid`` has exited but still answers kill(pid, 0): our own child not waited for
    yet, or a zombie whose parent (e.g. an init that does not reap) has not collected it."""
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is not None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no procfs: kill(pid, 0) is all we know
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


class AttachedWorkspace(Workspace):
    """The session of a kernel attached to a capture process, for that capture's data dir."""

    attached = True

    def __init__(self, data_dir: Path, live: LiveCapture) -> None:
        # Deliberately not Workspace.__init__: no local store, recorder or proxy.
        if live.control_port is None:
            raise RuntimeError(
                f"the capture running for {data_dir} (pid {live.pid}) has no control channel; "
                "only `flowbook capture` (or fb.start(detached=True)) can be attached to"
            )
        self.data_dir = private_dir(data_dir)
        self.config = ConfigManager(self.data_dir)
        client = ControlClient.for_data_dir(self.data_dir, live.control_port)
        try:
            hello = client.call("hello")  # also proves the token
        except BaseException:
            client.close()
            raise
        self.client = client
        self.remote = RemoteStore(
            self.data_dir, client, instance=str(hello["instance"]), seq=int(hello["seq"])
        )
        self.store = self.remote
        self.intercept = RemoteInterceptController(client)
        self.remote.on_intercept_change(self.intercept.on_remote_change)
        self.live = live
        self._monitor = RemoteMonitor(live, self)
        self.closed = False

    def _config_changed(self, key: str, old: Any, new: Any) -> None:
        pass  # settings act in the capture process (read at its start)

    def start(
        self,
        port: int | None = None,
        host: str | None = None,
        mode: str | list[str] = "regular",
        own_process: bool = False,
        **options: Any,
    ) -> Monitor:
        """Idempotent, as in-kernel: the capture already runs; its monitor is returned."""
        return self._monitor

    def stop(self) -> None:
        """End the capture process (its flows stay on disk) and detach from it."""
        pid = self._monitor.pid
        try:
            self.client.call("shutdown")
        except CaptureGone:
            pass  # gone already
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and _pid_alive(pid) and not _reaped(pid):
            time.sleep(0.05)
        proc = _children.pop(pid, None)
        if proc is not None:
            proc.wait(timeout=5)
        self.close()

    @property
    def monitor(self) -> Monitor | None:
        return None if self.closed or not self._monitor.running else self._monitor

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.store.wait_idle(timeout)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.client.call("status"))
        out["attached"] = True
        out["last_seq"] = self.remote.last_seq
        out["channel_connected"] = self.remote.poller.connected
        return out

    def flows(
        self,
        filter: str | None = None,
        *,
        sort_by: str = "timestamp",
        sort_order: str = "desc",
        page: int | None = None,
        page_size: int = 50,
        include_history: bool = False,
    ) -> pd.DataFrame:
        return self.store.query(
            filter,
            sort_by=sort_by,
            sort_order=sort_order,
            page=page,
            page_size=page_size,
            include_history=include_history,
        )

    def get_flow(self, flow_id: str) -> LLMFlow | None:
        return self.store.get(flow_id)

    def close(self) -> None:
        """Detach (the capture keeps running unless ``stop`` ended it)."""
        if not self.closed:
            self.closed = True
            self.store.close()


def spawn_capture(
    data_dir: Path,
    *,
    port: int,
    host: str,
    modes: list[str],
    options: dict[str, Any],
    timeout: float = START_TIMEOUT_S,
) -> LiveCapture:
    """Start ``flowbook capture`` in its own session; return it once it has announced its
    control channel. Raises RuntimeError with the end of its log when it does not come up."""
    data_dir = private_dir(Path(data_dir))
    cmd = [sys.executable, "-m", "flowbook.cli", "capture", "--port", str(port), "--host", host]
    cmd += ["--data-dir", str(data_dir)]
    for m in modes:
        cmd += ["--mode", m]
    for k, v in options.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    log_path = data_dir / LOG_FILE
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C or a restart of this kernel does not reach it
            close_fds=True,
        )
    _children[proc.pid] = proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = read_live(data_dir)
        if live is not None and live.pid == proc.pid and live.control_port is not None:
            return live
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)
    _children.pop(proc.pid, None)
    tail = log_path.read_text("utf-8", "replace")[-2000:]
    raise RuntimeError(f"the capture process did not start ({' '.join(cmd)}):\n{tail}")


def find_capture(data_dir: Path) -> LiveCapture | None:
    """The live capture of ``data_dir`` that has a control channel, or None."""
    live = read_live(data_dir)
    if live is None or live.control_port is None or live.pid == os.getpid():
        return None
    return live

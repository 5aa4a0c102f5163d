"""``<data_dir>/capture.json``: how a running capture announces itself to other processes.

The process running the proxy (``flowbook capture``, ``flowbook run``, a notebook's
``fb.start``) writes it atomically when the proxy is listening and removes it when the proxy
stops; ``flowbook run`` in another terminal reads it to join that capture instead of starting a
second one. Fields (BRIEF contract): pid, host, port (the first listener's), modes (mitmproxy
specs, every one after the first with its ``@port``), proxy_url, ca_cert_path, started
(ISO-8601), control_port (the control channel of ``flowbook capture``, see
``flowbook.capture.control``; null for a capture that has none, e.g. in a notebook's kernel).
The control channel's token is in ``capture.token`` beside it (mode 0600), removed with it. A
file whose pid is dead, or whose port no longer accepts connections, is stale and ignored.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowbook.capture.monitor import ModeInfo, Monitor

FILE = "capture.json"
TOKEN_FILE = "capture.token"
_announced: set[Path] = set()


@dataclass(frozen=True)
class LiveCapture:
    """A capture another process (or this one) is running for a data dir."""

    data_dir: Path
    pid: int
    modes: list[ModeInfo]
    proxy_url: str
    ca_cert_path: Path
    started: str
    control_port: int | None

    @property
    def confdir(self) -> Path:
        return self.ca_cert_path.parent


def announce(mon: Monitor, control_port: int | None = None) -> Path:
    """Write ``capture.json`` for a running monitor (atomically, readable by the user only)."""
    path = mon.data_dir / FILE
    data: dict[str, Any] = {
        "pid": os.getpid(),
        "host": mon.host,
        "port": mon.port,
        "modes": [m.spec for m in mon.modes],
        "proxy_url": mon.proxy_url,
        "ca_cert_path": str(mon.ca_cert_path),
        "started": datetime.datetime.now(datetime.UTC).isoformat(),
        "control_port": control_port,
    }
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
    if not _announced:
        atexit.register(_withdraw_all)  # a kernel restart or Ctrl-C still cleans up
    _announced.add(mon.data_dir)
    return path


def withdraw(data_dir: Path) -> None:
    """Remove ``capture.json`` (and ``capture.token``) if this process wrote it (another
    capture's files stay)."""
    path = data_dir / FILE
    _announced.discard(data_dir)
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("pid") == os.getpid():
            if data.get("control_port") is not None:
                (data_dir / TOKEN_FILE).unlink(missing_ok=True)
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _withdraw_all() -> None:
    for d in list(_announced):
        withdraw(d)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def read_live(data_dir: Path) -> LiveCapture | None:
    """The capture announced in ``data_dir``, or None when there is none or it is stale."""
    from flowbook.capture.monitor import ModeInfo, _client_host

    try:
        data = json.loads((data_dir / FILE).read_text("utf-8"))
        pid, host, port = int(data["pid"]), _client_host(str(data["host"])), int(data["port"])
        specs = [str(s) for s in data["modes"]]
        ca = Path(data["ca_cert_path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid) or not _listening(host, port):
        return None
    from mitmproxy.proxy import mode_specs

    modes = []
    for i, spec in enumerate(specs):
        try:
            parsed = mode_specs.ProxyMode.parse(spec)
        except ValueError:
            return None
        p = port if i == 0 else parsed.custom_listen_port
        if p is None:
            return None
        modes.append(ModeInfo(spec=spec, kind=parsed.type_name, host=host, port=int(p)))
    if not modes:
        return None
    control = data.get("control_port")
    return LiveCapture(
        data_dir=data_dir,
        pid=pid,
        modes=modes,
        proxy_url=str(data.get("proxy_url") or modes[0].url),
        ca_cert_path=ca,
        started=str(data.get("started", "")),
        control_port=int(control) if isinstance(control, int) else None,
    )

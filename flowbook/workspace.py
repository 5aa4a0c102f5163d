"""The workspace: one session's data dir, settings, store, capture runtime and intercept controller.

``flowbook.workspace.current()`` is the one process-wide session that ``fb.*`` delegates to;
there is no other global. Switching data dirs (``fb.start(data_dir=...)``) closes the current
workspace and opens another; the intercept controller (breakpoint, rules, paused flows) carries
over, its rules re-read from the new data dir.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.grouping.notify import Notifier
from flowbook.grouping.tracker import SessionTracker
from flowbook.intercept.controller import InterceptController
from flowbook.runtime import Runtime
from flowbook.settings import ConfigManager, resolve_data_dir
from flowbook.store.changes import UPDATED
from flowbook.store.facade import Store

if TYPE_CHECKING:
    import pandas as pd

    from flowbook.capture.monitor import Monitor
    from flowbook.model import LLMFlow

# Reads by fb.flows() / fb.get_flow() first let the recorder apply what was captured up to the
# call (bounded): a notebook line right after an SDK call sees that call.
SETTLE_TIMEOUT_S = 5.0


class Workspace:
    """Everything flowbook holds for one data dir."""

    def __init__(self, data_dir: Path, *, intercept: InterceptController | None = None) -> None:
        from flowbook.capture.monitor import private_dir

        self.data_dir = private_dir(data_dir)
        self.config = ConfigManager(self.data_dir)
        cfg = self.config
        self.store = Store(
            self.data_dir,
            max_flows_in_memory=cfg.max_flows_in_memory,
            persist=cfg.persist_to_file,
            segment_max_bytes=cfg.segment_max_bytes,
            retention_days=cfg.retention_days if cfg.auto_cleanup else None,
        )
        self.intercept = intercept if intercept is not None else InterceptController()
        self.intercept.set_data_dir(self.data_dir)
        self.runtime = Runtime(self.data_dir, self.store, self.intercept)
        self.runtime.recorder.redact = cfg.redact_sensitive
        self.runtime.recorder.save_stream_events = cfg.save_stream_events
        self._wire_sessions()
        self.config.on_change(self._config_changed)

    def _wire_sessions(self) -> None:
        # Sessions, correlation and alerts: the tracker sees every put and enriches every frame;
        # price overrides reach the recorder's pricing through the pricing module.
        from flowbook.analysis.pricing import set_price_overrides

        set_price_overrides(self.config.price_overrides)
        self.sessions = SessionTracker(self.data_dir, self.config.get)
        self.store.on_put.append(self.sessions.on_put)
        self.store.on_batch_end.append(self.sessions.end_batch)
        self.store.enrichers.append(self.sessions.enrich)
        self.sessions.on_membership.append(self._membership_changed)
        self.notifier = Notifier()
        self.sessions.on_notify.append(self.notifier.push)
        self.notifier.install()

    def _membership_changed(self, ids: set[str], fresh: dict[str, str | None]) -> None:
        # A flow placed by its first put is reported by that put (added, on the change feed);
        # if the store shows it already (a put inside a batch: the tracker runs at the batch's
        # end), its row takes the sessions the flow now carries. Only edits of flows the store
        # does not show (stored history, imports) need the file store's ids.
        store = self.store
        memory = store.memory
        known = []
        for fid in ids:
            if fid in fresh:
                if fresh[fid] is not None and fid in memory:
                    memory.update_row(fid, session=fresh[fid])
            elif fid in memory:
                known.append(fid)
            else:
                disk = store.disk_if_open
                if disk is not None and fid in disk:
                    known.append(fid)
        if known:
            store.changed.record(UPDATED, known)

    def _config_changed(self, key: str, old: Any, new: Any) -> None:
        # Settings that matter while running take effect at once; the others at the next start.
        store, recorder = self.store, self.runtime.recorder
        if key == "max_flows_in_memory":
            store.memory.max_flows_in_memory = int(new)
        elif key == "redact_sensitive":
            recorder.redact = bool(new)
        elif key == "save_stream_events":
            recorder.save_stream_events = bool(new)
        elif key == "persist_to_file":
            store.persist = bool(new)
        elif key == "price_overrides":
            from flowbook.analysis.pricing import set_price_overrides

            set_price_overrides(new)
        elif key in ("retention_days", "auto_cleanup"):
            auto = self.config.auto_cleanup
            store.retention_days = self.config.retention_days if auto else None
            if auto and store.disk_if_open is not None:
                store.apply_retention(self.config.retention_days)

    # ---- capture -----------------------------------------------------------------------------

    def start(
        self,
        port: int | None = None,
        host: str | None = None,
        mode: str | list[str] = "regular",
        own_process: bool = False,
        **options: Any,
    ) -> Monitor:
        """Start the proxy (``port``/``host`` default to the listen_port/listen_host settings).

        ``own_process``: run mitmproxy in a child process of its own (``flowbook capture`` does),
        so parsing and storing flows here never holds its event loop back.

        With the intercept_enabled setting on and no breakpoint set, every LLM flow pauses.
        """
        cfg = self.config
        monitor = self.runtime.start(
            port=cfg.listen_port if port is None else port,
            host=cfg.listen_host if host is None else host,
            mode=mode,
            options=options,
            own_process=own_process,
        )
        if cfg.intercept_enabled and self.intercept.breakpoint is None:
            self.intercept.enable(
                None, timeout=cfg.intercept_timeout_s, timeout_action=cfg.intercept_timeout_action
            )
        return monitor

    def stop(self) -> None:
        """Stop the proxy (flows stay in the store and on disk)."""
        self.runtime.stop()

    @property
    def monitor(self) -> Monitor | None:
        """The running Monitor, or None."""
        return self.runtime.monitor if self.runtime.running else None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every captured byte has been parsed, stored and written to disk (the
        sessions file included: the tracker applies what it has noted)."""
        idle = self.runtime.wait_idle(timeout)
        self.sessions.apply_noted()
        return idle

    def status(self) -> dict[str, Any]:
        """Running state, addresses, counts, data dir and recovery notes."""
        mon = self.monitor
        out: dict[str, Any] = {
            "running": mon is not None,
            "data_dir": str(self.data_dir),
            "flows_in_session": len(self.store),
            "flows_in_memory": len(self.store.memory.flows()),
            "in_progress": len(self.runtime.recorder.active_ids()),
        }
        if mon is not None:
            out["proxy_url"] = mon.proxy_url
            out["modes"] = [{"mode": m.spec, "url": m.url} for m in mon.modes]
            out["ca_cert_path"] = str(mon.ca_cert_path)
        disk = self.store.disk_if_open
        if disk is not None:
            out["flows_on_disk"] = len(disk)
            out["recovery_report"] = list(disk.recovery_report)
        return out

    # ---- reading (the notebook API's view) ---------------------------------------------------

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
        """``fb.flows()``: the store's query, after the recorder has applied what it was sent."""
        self.runtime.settle(SETTLE_TIMEOUT_S)
        return self.store.query(
            filter,
            sort_by=sort_by,
            sort_order=sort_order,
            page=page,
            page_size=page_size,
            include_history=include_history,
        )

    def get_flow(self, flow_id: str) -> LLMFlow | None:
        """``fb.get_flow()``: the store's flow, after the recorder has applied what it was sent."""
        self.runtime.settle(SETTLE_TIMEOUT_S)
        return self.store.get(flow_id)

    def close(self) -> None:
        """Stop capturing and close the store (the intercept controller is left as it is)."""
        self.runtime.close()
        self.store.close()
        self.notifier.uninstall()
        self.sessions.close()


_lock = threading.RLock()
_current: Workspace | None = None


def current(data_dir: str | Path | None = None) -> Workspace:
    """The workspace of ``data_dir`` (default: the current one, else FLOWBOOK_DATA_DIR, else
    ~/.flowbook), opened on first use. Asking for another data dir while capturing raises."""
    global _current
    with _lock:
        wanted = resolve_data_dir(data_dir) if data_dir is not None else None
        ws = _current
        if ws is not None and getattr(ws, "attached", False) and ws.monitor is None:
            # The capture process this kernel watched has ended: read its data dir locally.
            ws.close()
            ws = _current = Workspace(ws.data_dir)
        if ws is not None and (wanted is None or ws.data_dir == wanted):
            return ws
        carried: InterceptController | None = None
        if ws is not None and getattr(ws, "attached", False):
            ws.close()  # detach; the capture process keeps running
            _current = None
            ws = None
        if ws is not None:
            if ws.monitor is not None:
                raise RuntimeError(
                    f"flowbook is capturing into {ws.data_dir}; call fb.stop() before "
                    f"switching to {wanted}"
                )
            ws.close()
            carried = ws.intercept
            _current = None
        _current = Workspace(wanted or resolve_data_dir(None), intercept=carried)
        return _current


def attach(data_dir: str | Path | None = None) -> Workspace:
    """Attach to the capture process running for ``data_dir`` (default: the current data dir)
    and make it the current workspace. Raises RuntimeError when none runs there."""
    global _current
    from flowbook.attached import AttachedWorkspace, find_capture

    with _lock:
        ws = _current
        wanted = resolve_data_dir(data_dir) if data_dir is not None else None
        if wanted is None:
            wanted = ws.data_dir if ws is not None else resolve_data_dir(None)
        if isinstance(ws, AttachedWorkspace) and ws.data_dir == wanted and ws.monitor is not None:
            return ws
        live = find_capture(wanted)
        if live is None:
            raise RuntimeError(
                f"no capture process is running for {wanted}; start one with "
                f"`flowbook capture --data-dir {wanted}` or fb.start(detached=True)"
            )
        if ws is not None and not isinstance(ws, AttachedWorkspace) and ws.monitor is not None:
            raise RuntimeError(
                f"this kernel is capturing in-kernel into {ws.data_dir}; fb.stop() it first"
            )
        new = AttachedWorkspace(wanted, live)
        if ws is not None:
            ws.close()
        _current = new
        return new


def start_detached(
    data_dir: str | Path | None,
    port: int | None,
    host: str | None,
    mode: str | list[str],
    options: dict[str, Any],
) -> Workspace:
    """Start ``flowbook capture`` for the data dir (unless one runs there) and attach to it."""
    from flowbook.attached import find_capture, spawn_capture
    from flowbook.capture.discovery import read_live

    with _lock:
        ws = _current
        d = resolve_data_dir(data_dir) if data_dir is not None else None
        if d is None:
            d = ws.data_dir if ws is not None else resolve_data_dir(None)
        if find_capture(d) is None:
            other = read_live(d)
            if other is not None:
                raise RuntimeError(
                    f"a capture without a control channel is running for {d} (pid "
                    f"{other.pid}{', this process' if other.pid == os.getpid() else ''}); "
                    "stop it first (fb.stop() where it runs)"
                )
            cfg = ConfigManager(d) if ws is None or ws.data_dir != d else ws.config
            spawn_capture(
                d,
                port=cfg.listen_port if port is None else port,
                host=cfg.listen_host if host is None else host,
                modes=[mode] if isinstance(mode, str) else list(mode),
                options=options,
            )
        return attach(d)


def running_elsewhere(data_dir: str | Path | None) -> bool:
    """Whether a capture process with a control channel runs for ``data_dir`` (default: the
    current one) while this process captures nothing itself."""
    from flowbook.attached import find_capture

    ws = _current
    if ws is not None and ws.monitor is not None:
        return False
    if data_dir is not None:
        d = resolve_data_dir(data_dir)
    else:
        d = ws.data_dir if ws is not None else resolve_data_dir(None)
    return find_capture(d) is not None


def forget(ws: Workspace) -> None:
    """Replace ``ws`` as the current workspace by a local one for the same data dir (after an
    attached kernel stopped its capture, ``fb.flows()`` reads that data dir's history)."""
    global _current
    with _lock:
        if _current is ws:
            _current = Workspace(ws.data_dir)


def existing() -> Workspace | None:
    """The current workspace if one is open (opens nothing)."""
    return _current


def reset() -> None:
    """Close the current workspace and forget it, intercept controller included (tests use a
    fresh data dir each; a restarted kernel is the same)."""
    global _current
    with _lock:
        ws, _current = _current, None
        if ws is not None:
            ws.close()

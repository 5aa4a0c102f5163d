"""Runtime: everything flowbook holds for one data dir — config, stores, recorder, proxy."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.capture.recorder import FlowRecorder
from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.store.memory import FlowStore

if TYPE_CHECKING:
    import pandas as pd

    from flowbook.capture.monitor import Monitor
    from flowbook.store.file_store import FileStore
    from flowbook.store.writer import FlowWriter

SORT_ORDERS = ("asc", "desc")


class Runtime:
    """One data dir's config, memory store, recorder, file store, writer and (maybe) proxy."""

    def __init__(self, data_dir: Path) -> None:
        from flowbook.capture.monitor import private_dir
        from flowbook.config import ConfigManager

        self.data_dir = private_dir(data_dir)
        self.config = ConfigManager(self.data_dir)
        self.config.on_change(self._config_changed)
        self.store = FlowStore(self.config.max_flows_in_memory)
        self.recorder = FlowRecorder(self.store)
        self.recorder.redact = self.config.redact_sensitive
        self.recorder.save_stream_events = self.config.save_stream_events
        self.monitor: Monitor | None = None
        self.proxy: Any = None
        self._file_store: FileStore | None = None
        self._writer: FlowWriter | None = None
        self._lock = threading.RLock()
        self.store.loader = self._load_from_disk
        self.recorder.on_complete.append(self._persist)
        self.interceptor: Any = None

    def _config_changed(self, key: str, old: Any, new: Any) -> None:
        # Settings that matter while running take effect at once.
        if key == "max_flows_in_memory":
            self.store.max_flows_in_memory = int(new)
        elif key == "redact_sensitive":
            self.recorder.redact = bool(new)
        elif key == "save_stream_events":
            self.recorder.save_stream_events = bool(new)
        elif key == "retention_days" and self._file_store is not None and self.config.auto_cleanup:
            self._file_store.apply_retention(float(new))

    # ---- persistence -------------------------------------------------------------------------

    @property
    def file_store(self) -> FileStore:
        with self._lock:
            if self._file_store is None:
                from flowbook.store.file_store import FileStore
                from flowbook.store.writer import FlowWriter

                self._file_store = FileStore(self.data_dir)
                self._writer = FlowWriter(self._file_store)
                if self.config.auto_cleanup:
                    self._file_store.apply_retention(self.config.retention_days)
            return self._file_store

    def _persist(self, flow: LLMFlow) -> None:
        _ = self.file_store
        assert self._writer is not None
        self._writer.put(flow)

    def _load_from_disk(self, flow_id: str) -> LLMFlow | None:
        self.flush()
        return self.file_store.get(flow_id)

    def flush(self, timeout: float = 10.0) -> bool:
        ok = self.recorder.wait_idle(timeout)
        if self._writer is not None:
            ok = self._writer.flush(timeout) and ok
        return ok

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.flush(timeout)

    # ---- proxy -------------------------------------------------------------------------------

    def start(
        self, *, port: int, host: str, mode: str | list[str], options: dict[str, Any]
    ) -> Monitor:
        from flowbook.capture.addon import FlowbookAddon
        from flowbook.capture.monitor import Monitor, private_dir
        from flowbook.capture.proxy import ProxyThread, normalise_modes

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
        interceptor = self._interceptor()
        addon = FlowbookAddon(self.recorder, interceptor, self._intercept_host())
        proxy = ProxyThread(addon, opts)
        proxy.start()
        if interceptor is not None and proxy.loop is not None:
            interceptor.attach_loop(proxy.loop)
        self.proxy = proxy
        self.monitor = Monitor(proxy, modes, self.data_dir, confdir, self.store)
        _ = self.file_store  # open (and recover) the file store before traffic arrives
        return self.monitor

    def _interceptor(self) -> Any:
        from flowbook.intercept import controller_for

        self.interceptor = controller_for(self)
        return self.interceptor

    def _intercept_host(self) -> Any:
        from flowbook.capture.intercept_host import RecorderInterceptHost

        return RecorderInterceptHost(self.recorder)

    def stop(self) -> None:
        if self.interceptor is not None:
            # Paused flows end now, unchanged, instead of hanging until their timeout.
            self.interceptor.detach_loop()
        if self.proxy is not None:
            from flowbook.capture import discovery

            discovery.withdraw(self.data_dir)  # capture.json goes with the proxy
            self.proxy.stop()
            self.proxy = None
        self.flush()

    def close(self) -> None:
        self.stop()
        self.recorder.close()
        if self._writer is not None:
            self._writer.close()
        if self._file_store is not None:
            self._file_store.close()
        self.store.changed.close()

    def status(self) -> dict[str, Any]:
        mon = self.monitor
        running = mon is not None and mon.running
        out: dict[str, Any] = {
            "running": running,
            "data_dir": str(self.data_dir),
            "flows_in_session": len(self.store),
            "flows_in_memory": len(self.store.flows()),
            "in_progress": len(self.recorder.active_ids()),
        }
        if running and mon is not None:
            out["proxy_url"] = mon.proxy_url
            out["modes"] = [{"mode": m.spec, "url": m.url} for m in mon.modes]
            out["ca_cert_path"] = str(mon.ca_cert_path)
        if self._file_store is not None:
            out["flows_on_disk"] = len(self._file_store)
            out["recovery_report"] = list(self._file_store.recovery_report)
        return out

    # ---- queries -----------------------------------------------------------------------------

    def frame(self, include_history: bool) -> pd.DataFrame:
        import pandas as pd

        self.recorder.wait_idle(5.0)
        live = self.store.frame()
        captured_nothing = self.monitor is None and len(self.store) == 0
        if not include_history and not captured_nothing:
            return live
        if self._writer is not None:
            self._writer.flush()
        disk = self.file_store.summary_frame()
        if len(live) == 0:
            return disk
        if len(disk) == 0:
            return live
        disk = disk[~disk["id"].isin(live["id"])]
        return pd.concat([disk, live], ignore_index=True)

    def query(
        self,
        filter_expr: str | None,
        *,
        sort_by: str,
        sort_order: str,
        page: int | None,
        page_size: int,
        include_history: bool,
    ) -> pd.DataFrame:
        from flowbook.store.summary import COLUMNS

        if sort_order not in SORT_ORDERS:
            raise ValueError(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")
        if sort_by not in COLUMNS:
            import difflib

            close = difflib.get_close_matches(sort_by, list(COLUMNS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"cannot sort by {sort_by!r}: not a column.{hint} Columns: {', '.join(COLUMNS)}"
            )
        if page is not None and (not isinstance(page, int) or page < 1):
            raise ValueError(f"page counts from 1, got {page!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size!r}")
        df = self.frame(include_history)
        if filter_expr:
            from flowbook.filters import parse

            flt = parse(filter_expr)
            df = df[flt.mask(df, source=self.flow_source(include_history)).to_numpy()]
        df = df.sort_values(
            sort_by, ascending=sort_order == "asc", kind="stable", na_position="last"
        )
        total = len(df)
        if page is not None:
            start = (page - 1) * page_size
            df = df.iloc[start : start + page_size]
        df = df.reset_index(drop=True)
        df.attrs["total"] = total
        return df

    def flow_source(self, include_history: bool) -> Any:
        from flowbook.store.source import StoreFlowSource

        return StoreFlowSource(self, include_history)

    def get_flow(self, flow_id: str) -> LLMFlow | None:
        self.recorder.wait_idle(5.0)
        flow = self.store.get(flow_id)
        if flow is None and self.store.loader is None:
            return None
        return flow

    def annotate(
        self,
        flow_id: str,
        *,
        bookmarked: bool | None = None,
        add_tags: list[str] | None = None,
        comment: str | None = None,
    ) -> None:
        flow = self.get_flow(flow_id)
        if flow is None:
            raise KeyError(f"no flow with id {flow_id!r}")
        ann = FlowAnnotations(**flow.annotations.to_dict())
        if bookmarked is not None:
            ann.bookmarked = bool(bookmarked)
        if add_tags:
            for t in add_tags:
                if not isinstance(t, str) or not t.strip() or "," in t:
                    raise ValueError(f"a tag is a non-empty string without commas, got {t!r}")
                if t not in ann.tags:
                    ann.tags.append(t.strip())
        if comment is not None:
            ann.comment = comment
        flow.annotations = ann
        if flow_id in self.store:
            self.store.set_annotations(flow_id, ann)
        self.flush()
        self.file_store.set_annotations(flow_id, ann)

    def load(self, path: Path) -> list[str]:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        return list(self.file_store.import_jsonl(path))

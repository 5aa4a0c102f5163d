"""What an attached kernel may ask of the capture process: the store and the intercept controller.

Each method takes and returns plain JSON data (flows as ``LLMFlow.to_dict()``, rules as
``Rule.to_dict()``, paused flows as ``PendingFlow.summary()`` plus their flow), except the query,
whose summary frame travels as an Arrow IPC stream. Arguments are checked here by the same code
as in-kernel (the store's query, the controller's edit validation), so an attached kernel gets
the same errors.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from flowbook.capture.control import ControlServer
    from flowbook.workspace import Workspace

# As in-kernel (flowbook.workspace): a read first lets the recorder apply what it was sent.
SETTLE_TIMEOUT_S = 5.0
QUERY_ARGS = ("filter", "sort_by", "sort_order", "page", "page_size", "include_history")


def frame_to_arrow(df: Any) -> bytes:
    """A summary frame as an Arrow IPC stream (pandas metadata keeps the dtypes)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


class Calls:
    """The methods of ``POST /v1/call`` (and the query of ``POST /v1/query``)."""

    def __init__(self, ws: Workspace, server: ControlServer) -> None:
        self.ws = ws
        self.server = server

    def query(self, args: dict[str, Any]) -> tuple[bytes, int]:
        unknown = set(args) - set(QUERY_ARGS)
        if unknown:
            raise ValueError(f"unknown query arguments {sorted(unknown)}; allowed: {QUERY_ARGS}")
        df = self.ws.flows(**args)
        return frame_to_arrow(df), int(df.attrs.get("total", len(df)))

    def call(self, method: str, args: dict[str, Any], client: str) -> Any:
        fn = getattr(self, "m_" + method.replace(".", "_"), None)
        if fn is None:
            raise ValueError(f"unknown method {method!r}")
        if method in ("intercept.hold", "intercept.release_hold"):
            args = {**args, "_client": client}
        return fn(**args)

    # ---- capture -----------------------------------------------------------------------------

    def m_hello(self) -> dict[str, Any]:
        mon = self.ws.monitor
        return {
            "pid": os.getpid(),
            "data_dir": str(self.ws.data_dir),
            "instance": self.server.log.instance,
            "seq": self.server.log.seq,
            "modes": [m.spec for m in mon.modes] if mon else [],
        }

    def m_status(self) -> dict[str, Any]:
        out = self.ws.status()
        out["capture_pid"] = os.getpid()
        out["attached_kernels"] = len(self.server.clients())
        return out

    def m_wait_idle(self, timeout: float = 10.0) -> bool:
        return self.ws.wait_idle(float(timeout))

    def m_shutdown(self) -> bool:
        self.server.shutdown_requested.set()
        return True

    # ---- store ---------------------------------------------------------------------------

    def m_get(self, id: str) -> dict[str, Any] | None:
        flow = self.ws.get_flow(id)
        return None if flow is None else flow.to_dict()

    def m_get_many(self, ids: list[str]) -> list[dict[str, Any]]:
        self.ws.runtime.settle(SETTLE_TIMEOUT_S)
        return [f.to_dict() for f in self.ws.store.get_flows(ids)]

    def m_ids(self, include_history: bool = False) -> list[str]:
        df = self.ws.store.frame(include_history)
        return [str(i) for i in df["id"]]

    def m_len(self) -> int:
        return len(self.ws.store)

    def m_contains(self, id: str) -> bool:
        return id in self.ws.store

    def m_in_memory(self, id: str) -> bool:
        return self.ws.store.in_memory(id)

    def m_in_progress_ids(self) -> list[str]:
        return self.ws.store.in_progress_ids()

    def m_annotate(self, id: str, **kw: Any) -> dict[str, Any]:
        return self.ws.store.annotate(id, **kw).to_dict()

    def m_remove(self, ids: list[str]) -> list[str]:
        return sorted(self.ws.store.remove(ids))

    def m_clear(self) -> int:
        return self.ws.store.clear()

    def m_load(self, path: str) -> list[str]:
        return self.ws.store.load(Path(path))

    def m_apply_retention(self, days: float) -> int:
        return self.ws.store.apply_retention(float(days))

    # ---- intercept ---------------------------------------------------------------------------

    def m_intercept_enable(self, **kw: Any) -> dict[str, Any]:
        cfg = self.ws.config
        if kw.get("timeout") is None:
            kw["timeout"] = cfg.intercept_timeout_s
        if kw.get("timeout_action") is None:
            kw["timeout_action"] = cfg.intercept_timeout_action
        self.ws.intercept.enable(kw.pop("filter", None), **kw)
        return self.ws.intercept.status()

    def m_intercept_disable(self) -> dict[str, Any]:
        self.ws.intercept.disable()
        return self.ws.intercept.status()

    def m_intercept_status(self) -> dict[str, Any]:
        return self.ws.intercept.status()

    def m_intercept_pending(self) -> list[dict[str, Any]]:
        out = []
        for p in self.ws.intercept.pending():
            d = p.summary()
            d["flow"] = p.flow.to_dict()
            out.append(d)
        return out

    def m_intercept_resume(self, id: str, **kw: Any) -> None:
        self.ws.intercept.resume(id, **kw)

    def m_intercept_drop(self, id: str) -> None:
        self.ws.intercept.drop(id)

    def m_intercept_mock(self, id: str, body: Any = None, text: str | None = None) -> None:
        self.ws.intercept.mock(id, body, text=text)

    def m_intercept_hold(self, id: str, _client: str = "") -> None:
        self.ws.intercept.hold(id)
        if _client:
            self.server.held(_client, id, True)

    def m_intercept_release_hold(self, id: str, _client: str = "") -> None:
        self.ws.intercept.release_hold(id)
        if _client:
            self.server.held(_client, id, False)

    def m_intercept_add_rule(self, filter: str | None, action: str, params: dict[str, Any]) -> str:
        return self.ws.intercept.add_rule(filter, action, **params)

    def m_intercept_remove_rule(self, rule_id: str) -> None:
        self.ws.intercept.remove_rule(rule_id)

    def m_intercept_rules(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.ws.intercept.rules.all()]

    def m_intercept_errors(self) -> list[str]:
        return list(self.ws.intercept.errors)

"""The intercept controller of a capture in another process, seen from an attached kernel.

``RemoteInterceptController`` has the ``InterceptController`` API that ``fb.intercept`` and the
approval panel use (enable, disable, pending, resume, drop, mock, hold, rules, status, the
``changed`` and ``notice`` signals); every call goes to the capture process, whose controller
validates it with the same code (a bad edit raises ``EditError`` here and the flow stays paused).
It needs only something with ``call(method, **args)`` (``flowbook.store.remote.ControlClient``).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from flowbook.intercept.controller import Breakpoint, InterceptController
from flowbook.intercept.edit import EditError
from flowbook.intercept.pending import PendingFlow
from flowbook.intercept.rules import Rule, _rule_from_dict, compile_filter
from flowbook.model import LLMFlow


class Caller(Protocol):
    errors: dict[str, type[Exception]]
    closed: bool

    def call(self, method: str, **args: Any) -> Any: ...


class RemoteRules:
    """``controller.rules`` of a remote controller: ``all()``, ``remove(id)``, ``clear()``."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    def all(self) -> list[Rule]:
        return [_rule_from_dict(d) for d in self._client.call("intercept.rules")]

    def remove(self, rule_id: str) -> None:
        self._client.call("intercept.remove_rule", rule_id=rule_id)

    def clear(self) -> None:
        for r in self.all():
            self.remove(r.id)


class RemoteInterceptController(InterceptController):
    """Drives the capture process's ``InterceptController`` over the control channel."""

    def __init__(self, client: Caller) -> None:
        # Deliberately not InterceptController.__init__: the queue and rules live over there.
        self._client = client
        client.errors.setdefault("EditError", EditError)
        self._loop = None

    def on_remote_change(self, entry: dict[str, Any]) -> None:
        """The capture's queue or settings changed (called by the store's change poller)."""
        notice = entry.get("notice")
        if notice:
            self.notice.emit(*[str(x) for x in notice])
        self.changed.emit()

    # ---- set-up: the capture process has its own -------------------------------------------

    def set_data_dir(self, data_dir: Any) -> None:
        pass

    def attach_loop(self, loop: Any) -> None:
        pass

    def detach_loop(self) -> None:
        pass

    @property
    def rules(self) -> RemoteRules:  # type: ignore[override]
        return RemoteRules(self._client)

    @property
    def breakpoint(self) -> Breakpoint | None:  # type: ignore[override]
        s = self.status()
        if not s["enabled"]:
            return None
        return Breakpoint(
            filter=s["filter"],
            on=s["on"],
            timeout=s["timeout"],
            timeout_action=s["timeout_action"],
            matches=compile_filter(s["filter"]),
        )

    @property
    def errors(self) -> list[str]:  # type: ignore[override]
        return list(self._client.call("intercept.errors"))

    def active(self) -> bool:
        s = self.status()
        return bool(s["enabled"] or s["rules"])

    # ---- settings ----------------------------------------------------------------------------

    def enable(
        self,
        filter: str | None = None,
        *,
        on: str = "request",
        timeout: float = 30.0,
        timeout_action: str = "continue",
    ) -> None:
        self._client.call(
            "intercept.enable", filter=filter, on=on, timeout=timeout, timeout_action=timeout_action
        )

    def disable(self) -> None:
        self._client.call("intercept.disable")

    def add_rule(self, filter: str | None, action: str, **params: Any) -> str:
        return str(
            self._client.call("intercept.add_rule", filter=filter, action=action, params=params)
        )

    def remove_rule(self, rule_id: str) -> None:
        self._client.call("intercept.remove_rule", rule_id=rule_id)

    def _read(self, method: str, detached: Any) -> Any:
        """A read a widget may make late (its refresh timer): once detached, ``detached``."""
        if self._client.closed:
            return detached
        try:
            return self._client.call(method)
        except ConnectionError:
            if self._client.closed:  # detached while the call was on its way
                return detached
            raise

    def status(self) -> dict[str, Any]:
        nothing = {"enabled": False, "filter": None, "on": None, "timeout": None,
                   "timeout_action": None, "rules": 0, "pending": 0}  # fmt: skip
        return dict(self._read("intercept.status", nothing))

    # ---- paused flows ------------------------------------------------------------------------

    def pending(self) -> list[PendingFlow]:
        """Paused flows in the capture, oldest first (their countdown runs on locally)."""
        out = []
        for d in self._read("intercept.pending", []):
            p = PendingFlow(
                id=d["id"],
                stage=d["stage"],
                flow=LLMFlow.from_dict(d["flow"]),
                reason=d["reason"],
                timeout=float(d["timeout"]),
                timeout_action=d["timeout_action"],
                api=d["api"],
                client_stream=bool(d["stream"]),
                editable=d["editable"],
                headers=dict(d["headers"]),
                paused_at=float(d["paused_at"]),
            )
            left = float(d["remaining_s"])
            if d["editing"]:
                p._held_remaining = left
            else:
                p._deadline = time.monotonic() + left
            out.append(p)
        return out

    def resume(
        self,
        flow_id: str,
        *,
        request_body: Any = None,
        response_body: Any = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        self._client.call(
            "intercept.resume",
            id=flow_id,
            request_body=request_body,
            response_body=response_body,
            headers=headers,
        )

    def drop(self, flow_id: str) -> None:
        self._client.call("intercept.drop", id=flow_id)

    def mock(self, flow_id: str, body: Any = None, *, text: str | None = None) -> None:
        self._client.call("intercept.mock", id=flow_id, body=body, text=text)

    def hold(self, flow_id: str) -> None:
        """Freeze the flow's countdown while this kernel edits it. Should the kernel go away,
        the capture releases the hold after its lease and the countdown runs again."""
        self._client.call("intercept.hold", id=flow_id)

    def release_hold(self, flow_id: str) -> None:
        self._client.call("intercept.release_hold", id=flow_id)

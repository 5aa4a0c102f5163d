"""The intercept approval panel (``fb.intercept_panel()``).

Traits carry everything the view needs to rebuild itself: the paused flows (with their editable
JSON and a wall-clock deadline, so the browser runs the countdown without kernel traffic), the
breakpoint status and recent notifications. Buttons send ``{"type": "action", ...}`` custom
messages; each gets a reply with ``ok`` and, when the kernel refused (bad JSON, flow already
released), the error text to show.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anywidget
import traitlets

from flowbook.intercept import EditError, InterceptController, get_controller
from flowbook.ui import static_file

MAX_NOTIFICATIONS = 50
# Controller changes arrive from the proxy thread in bursts; coalesce them into one trait write.
FLUSH_DELAY_S = 0.1


class InterceptPanel(anywidget.AnyWidget):
    """Paused flows with countdowns; edit, resume, drop or mock them."""

    _esm = static_file("intercept_panel.js")
    _css = static_file("intercept_panel.css")

    pending = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Dict().tag(sync=True)
    notifications = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, controller: InterceptController | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctl = controller or get_controller()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        # psygnal holds bound methods weakly: a discarded panel does not leak.
        self._ctl.changed.connect(self._schedule)
        self._ctl.notice.connect(self._on_notice)
        self.on_msg(self._on_custom)
        self.refresh()

    def refresh(self) -> None:
        """Copy the controller's state into the traits now."""
        with self._lock:
            self._timer = None
        with self.hold_sync():
            self.pending = [p.summary() for p in self._ctl.pending()]
            self.status = self._ctl.status()

    def _schedule(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(FLUSH_DELAY_S, self.refresh)
            self._timer.daemon = True
            self._timer.start()

    def _on_notice(self, kind: str, flow_id: str, message: str) -> None:
        note = {"t": time.time(), "kind": kind, "id": flow_id, "message": message}
        self.notifications = [*self.notifications, note][-MAX_NOTIFICATIONS:]

    def _on_custom(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        if not isinstance(content, dict) or content.get("type") != "action":
            return
        try:
            self.act(content.get("action", ""), content.get("id", ""), content)
            reply: dict[str, Any] = {"ok": True}
        except (EditError, KeyError, ValueError, RuntimeError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            reply = {"ok": False, "error": str(msg)}
        self.send({"type": "reply", "req": content.get("req"), **reply})
        self.refresh()

    def act(self, action: str, flow_id: str, content: dict[str, Any] | None = None) -> None:
        """Run one panel action (what the buttons do; also handy from Python)."""
        content = content or {}
        ctl = self._ctl
        if action == "resume":
            ctl.resume(flow_id)
        elif action == "resume_edited":
            p = ctl.queue.get(flow_id)
            if p is None:
                raise KeyError(f"flow {flow_id} is not paused any more")
            key = "request_body" if p.stage == "request" else "response_body"
            ctl.resume(flow_id, **{key: content.get("body")})
        elif action == "drop":
            ctl.drop(flow_id)
        elif action == "mock":
            ctl.mock(flow_id, text=str(content.get("text") or ""))
        elif action == "hold":
            ctl.hold(flow_id)
        elif action == "release":
            ctl.release_hold(flow_id)
        else:
            raise ValueError(f"unknown panel action {action!r}")


def intercept_panel(controller: InterceptController | None = None) -> InterceptPanel:
    """A new approval panel on the process-wide interceptor (``fb.intercept_panel()``)."""
    return InterceptPanel(controller)

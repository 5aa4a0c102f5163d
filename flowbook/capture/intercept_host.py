"""The capture side of interception: what the intercept controller reports lands on the flow.

Every call comes from the proxy's event loop and only queues work for the recorder thread, so the
flow's updates stay ordered with its other events and nothing blocks the loop.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from flowbook.model import FlowError, FlowState, LLMFlow

if TYPE_CHECKING:
    from flowbook.capture.recorder import FlowRecorder

log = logging.getLogger("flowbook.intercept")


class RecorderInterceptHost:
    """Implements ``flowbook.intercept.host.InterceptHost`` on top of the FlowRecorder."""

    def __init__(self, recorder: FlowRecorder) -> None:
        self.recorder = recorder
        self.response_changed_ids: set[str] = set()
        # The latest notices (paused, auto-released, rule errors) for status() and widgets.
        self.notices: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)

    def set_state(self, flow_id: str, state: FlowState) -> None:
        self.recorder.set_state(flow_id, state)

    def set_error(self, flow_id: str, error: FlowError) -> None:
        self.recorder.force_outcome(flow_id, FlowState.CANCELLED, error)

    def record_rule(self, flow_id: str, rule_id: str) -> None:
        def add(flow: LLMFlow) -> None:
            if rule_id not in flow.metadata.rules_applied:
                flow.metadata.rules_applied.append(rule_id)

        self.recorder.call(flow_id, add)

    def record_intercept(self, flow_id: str, event: dict[str, Any]) -> None:
        self.recorder.call(flow_id, lambda f: f.metadata.intercepted.append(dict(event)))

    def record_original_request(self, flow_id: str, original: dict[str, Any]) -> None:
        def keep(flow: LLMFlow) -> None:
            if flow.metadata.original_request is None:
                flow.metadata.original_request = original

        self.recorder.call(flow_id, keep)

    def record_original_response(self, flow_id: str, original: dict[str, Any]) -> None:
        def keep(flow: LLMFlow) -> None:
            if flow.metadata.original_response is None:
                flow.metadata.original_response = original

        self.recorder.call(flow_id, keep)

    def request_changed(self, flow_id: str) -> None:
        # The addon compares the request before and after the hook and re-parses what changed.
        pass

    def response_changed(self, flow_id: str) -> None:
        self.response_changed_ids.add(flow_id)

    def notify(self, message: str, *, level: str = "info") -> None:
        self.notices.append({"t": time.time(), "level": level, "message": message})
        (log.warning if level == "warning" else log.info)(message)

"""What the interceptor needs from the capture side (the mitmproxy addon).

The controller never touches the store directly: it tells its host what happened to a flow and
the host updates the LLMFlow, re-parses edited bodies and publishes the change. Every method is
called on the proxy's event loop, from inside ``on_request``/``on_response``; none may block.
"""

from __future__ import annotations

from typing import Any, Protocol

from flowbook.model import FlowError, FlowState


class InterceptHost(Protocol):
    """Implemented by the capture addon; one instance serves every flow."""

    def set_state(self, flow_id: str, state: FlowState) -> None:
        """Show the flow in this state (``Intercepted`` while paused, ``Pending`` once resumed)."""

    def set_error(self, flow_id: str, error: FlowError) -> None:
        """End the flow as Cancelled with this error (drop, block, drop-on-timeout).

        The client still receives a synthetic error response; the host must keep this error and
        state instead of deriving them from that response's status code.
        """

    def record_rule(self, flow_id: str, rule_id: str) -> None:
        """A rule touched the flow (append to ``metadata.rules_applied``)."""

    def record_intercept(self, flow_id: str, event: dict[str, Any]) -> None:
        """One pause and how it ended (append to ``metadata.intercepted``).

        ``event`` keys: ``stage``, ``reason`` (``breakpoint`` or a rule id), ``paused_at``,
        ``released_at`` (epoch seconds), ``outcome`` (``resumed``, ``edited``, ``dropped``,
        ``mocked``, ``timeout_continue``, ``timeout_drop``, ``released``).
        """

    def record_original_request(self, flow_id: str, original: dict[str, Any]) -> None:
        """The request before the first change (an ``LLMRequest.to_dict()``), for the diff view."""

    def record_original_response(self, flow_id: str, original: dict[str, Any]) -> None:
        """The response before the first change (an ``LLMResponse.to_dict()`` or raw dict)."""

    def request_changed(self, flow_id: str) -> None:
        """``flow.request`` was edited or replaced: re-parse it into the LLMFlow."""

    def response_changed(self, flow_id: str) -> None:
        """``flow.response`` was edited or synthesised after the response hook began: re-parse."""

    def notify(self, message: str, *, level: str = "info") -> None:
        """A user-visible notice (paused, auto-released, rule errors). ``level``: info|warning."""


class NullHost:
    """A host that ignores everything; the controller's default when none is given."""

    def set_state(self, flow_id: str, state: FlowState) -> None:
        pass

    def set_error(self, flow_id: str, error: FlowError) -> None:
        pass

    def record_rule(self, flow_id: str, rule_id: str) -> None:
        pass

    def record_intercept(self, flow_id: str, event: dict[str, Any]) -> None:
        pass

    def record_original_request(self, flow_id: str, original: dict[str, Any]) -> None:
        pass

    def record_original_response(self, flow_id: str, original: dict[str, Any]) -> None:
        pass

    def request_changed(self, flow_id: str) -> None:
        pass

    def response_changed(self, flow_id: str) -> None:
        pass

    def notify(self, message: str, *, level: str = "info") -> None:
        pass

"""Interception: breakpoints, rules (pause, modify, mock, delay, block) and paused flows.

``fb.intercept`` is this module. Its functions act on the current workspace's
:class:`InterceptController` (:func:`get_controller`, ``flowbook.workspace.current().intercept``),
which the capture addon calls from the proxy loop and which the approval panel
(``fb.intercept_panel()``) watches::

    fb.intercept.enable("model:gpt-4o", on="both", timeout=60)
    p = fb.intercept.pending()[0]
    fb.intercept.resume(p.id, request_body={**p.editable, "temperature": 0})
    fb.intercept.add_rule("provider:anthropic", "modify", max_tokens=256)
    fb.intercept.add_rule("model:gpt-4o-mini", "mock", text="canned answer")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowbook.intercept.controller import InterceptController
from flowbook.intercept.edit import EditError
from flowbook.intercept.host import InterceptHost, NullHost
from flowbook.intercept.magic import intercept_magic
from flowbook.intercept.pending import PendingFlow
from flowbook.intercept.rules import Rule

__all__ = [
    "EditError",
    "InterceptController",
    "InterceptHost",
    "NullHost",
    "PendingFlow",
    "Rule",
    "add_rule",
    "disable",
    "drop",
    "enable",
    "get_controller",
    "hold",
    "intercept_magic",
    "mock",
    "pending",
    "release_hold",
    "remove_rule",
    "resume",
    "rules",
    "status",
]


def get_controller(data_dir: Path | None = None) -> InterceptController:
    """The intercept controller of the current workspace (of ``data_dir`` when given: its
    rules are loaded from and saved to that data dir)."""
    from flowbook.workspace import current

    return current(data_dir).intercept


def enable(
    filter: str | None = None,
    *,
    on: str = "request",
    timeout: float | None = None,
    timeout_action: str | None = None,
) -> None:
    """Pause LLM flows matching ``filter`` (all when None) at ``on``: request|response|both.

    A paused flow waits for :func:`resume`, :func:`drop` or :func:`mock`; after ``timeout``
    seconds (not counted while someone edits it) it continues unchanged or is dropped
    (``timeout_action``). Other traffic keeps flowing. Both default to the settings
    ``intercept_timeout_s`` (30) and ``intercept_timeout_action`` ("continue") of ``fb.config``.
    """
    from flowbook.workspace import current

    ws = current()
    ws.intercept.enable(
        filter,
        on=on,
        timeout=ws.config.intercept_timeout_s if timeout is None else timeout,
        timeout_action=(
            ws.config.intercept_timeout_action if timeout_action is None else timeout_action
        ),
    )


def disable() -> None:
    """Stop pausing; flows paused by :func:`enable` are released unchanged."""
    get_controller().disable()


def pending() -> list[PendingFlow]:
    """Paused flows, oldest first (``.id .stage .flow .remaining_s .editing .editable``)."""
    return get_controller().pending()


def resume(
    flow_id: str,
    *,
    request_body: Any = None,
    response_body: Any = None,
    headers: dict[str, Any] | None = None,
) -> None:
    """Continue a paused flow, optionally with an edited body (dict or JSON text) and headers.

    A bad edit raises :class:`EditError` and the flow stays paused. ``headers`` values of None
    remove a header. At the response stage of a streamed call, ``response_body`` is the
    non-streamed body; the client receives it in the provider's stream format.
    """
    get_controller().resume(
        flow_id, request_body=request_body, response_body=response_body, headers=headers
    )


def drop(flow_id: str) -> None:
    """End a paused flow; the client receives a clear error in its provider's format."""
    get_controller().drop(flow_id)


def mock(flow_id: str, body: Any = None, *, text: str | None = None) -> None:
    """Answer a paused flow without (more of) upstream: ``text`` or a full provider ``body``."""
    get_controller().mock(flow_id, body, text=text)


def hold(flow_id: str) -> None:
    """Pause a paused flow's countdown while it is being edited."""
    get_controller().hold(flow_id)


def release_hold(flow_id: str) -> None:
    """Restart the countdown (at least a few seconds remain)."""
    get_controller().release_hold(flow_id)


def add_rule(filter: str | None, action: str, **params: Any) -> str:
    """Add a rule (pause | modify | mock | delay | block); returns its id. Persisted."""
    return get_controller().add_rule(filter, action, **params)


def rules() -> list[Rule]:
    """The rules, in evaluation order."""
    return get_controller().rules.all()


def remove_rule(rule_id: str) -> None:
    """Remove a rule by id."""
    get_controller().remove_rule(rule_id)


def status() -> dict[str, Any]:
    """Breakpoint settings, rule count and number of paused flows."""
    return get_controller().status()

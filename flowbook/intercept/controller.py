"""The interceptor: breakpoints, rules and the queue of paused flows.

Two sides. The capture addon calls ``on_request`` / ``wants_response`` / ``on_response`` on the
proxy's event loop for every LLM flow. The kernel (``fb.intercept``, the approval panel) calls
``enable``, ``resume``, ``drop``, ``mock``, ``hold`` … from its own thread; those validate their
input right there (a bad edit raises and the flow stays paused), then cross to the proxy loop with
``run_coroutine_threadsafe`` and wait for the loop to confirm.

Paused flows never block other traffic: each waits in its own hook coroutine. Every paused flow
ends: resumed, dropped, mocked, released at its timeout, or released when the proxy stops or
interception is disabled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from psygnal import Signal

from flowbook.intercept import actions as act
from flowbook.intercept.edit import (
    EditError,
    validate_headers,
    validate_request_body,
    validate_response_body,
)
from flowbook.intercept.host import InterceptHost, NullHost
from flowbook.intercept.pending import Decision, PendingFlow, PendingQueue
from flowbook.intercept.render import api_of
from flowbook.intercept.rules import (
    Matcher,
    RuleSet,
    check_stage,
    check_timeout,
    check_timeout_action,
    compile_filter,
)
from flowbook.model import FlowState, LLMFlow

if TYPE_CHECKING:
    from mitmproxy import http  # annotations only: reading flows must not load mitmproxy

log = logging.getLogger(__name__)
T = TypeVar("T")
RULES_FILE = "intercept_rules.json"


@dataclass
class Breakpoint:
    """The ``enable(...)`` settings."""

    filter: str | None
    on: str
    timeout: float
    timeout_action: str
    matches: Matcher

    def applies(self, flow: LLMFlow, stage: str) -> bool:
        if self.on not in (stage, "both"):
            return False
        try:
            return bool(self.matches(flow))
        except Exception:
            return False


class InterceptController:
    """Breakpoints + rules + pending queue. One per workspace (``flowbook.workspace``)."""

    changed = Signal()  # the pending queue or the settings changed
    notice = Signal(str, str, str)  # (kind, flow_id, message): paused | released | timeout | …

    def __init__(self, data_dir: Path | None = None) -> None:
        self.rules = RuleSet()
        self.queue = PendingQueue()
        self.breakpoint: Breakpoint | None = None
        self.errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        if data_dir is not None:
            self.set_data_dir(data_dir)

    # ---- set-up ---------------------------------------------------------------------------

    def set_data_dir(self, data_dir: Path) -> None:
        """Load (and from now on persist) rules in ``<data_dir>/intercept_rules.json``."""
        path = Path(data_dir) / RULES_FILE
        if self.rules.path == path:
            return
        # Rules added before any data dir was known are kept (appended after the stored ones).
        unsaved = self.rules.all() if self.rules.path is None else []
        self.rules.load(path)
        self.rules.extend(unsaved)
        for err in self.rules.load_errors:
            self.errors.append(err)

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The proxy started: kernel calls now cross to ``loop``."""
        self._loop = loop

    def detach_loop(self) -> None:
        """The proxy is stopping: release every paused flow unchanged, then forget the loop."""
        if self._loop is not None and self._loop.is_running():
            try:
                self._call(self._release_all("proxy stopping"))
            except Exception as exc:
                log.warning("could not release paused flows: %s", exc)
        self._loop = None

    def active(self) -> bool:
        """Whether any breakpoint or rule is set (the addon skips all work otherwise)."""
        return self.breakpoint is not None or bool(self.rules.all())

    # ---- kernel side: settings ----------------------------------------------------------

    def enable(
        self,
        filter: str | None = None,
        *,
        on: str = "request",
        timeout: float = 30.0,
        timeout_action: str = "continue",
    ) -> None:
        """Pause every LLM flow matching ``filter`` at ``on`` (request|response|both)."""
        self.breakpoint = Breakpoint(
            filter=filter,
            on=check_stage(on),
            timeout=check_timeout(timeout),
            timeout_action=check_timeout_action(timeout_action),
            matches=compile_filter(filter),
        )
        self.changed.emit()

    def disable(self) -> None:
        """Stop pausing new flows; flows paused by the breakpoint are released unchanged."""
        self.breakpoint = None
        if self._loop is not None and self._loop.is_running():
            self._call(self._release_all("interception disabled", only_reason="breakpoint"))
        self.changed.emit()

    def add_rule(self, filter: str | None, action: str, **params: Any) -> str:
        """Append a rule (see :mod:`flowbook.intercept.rules`); returns its id."""
        rule = self.rules.add(filter, action, **params)
        self.changed.emit()
        return rule.id

    def remove_rule(self, rule_id: str) -> None:
        self.rules.remove(rule_id)
        self.changed.emit()

    def status(self) -> dict[str, Any]:
        bp = self.breakpoint
        return {
            "enabled": bp is not None,
            "filter": bp.filter if bp else None,
            "on": bp.on if bp else None,
            "timeout": bp.timeout if bp else None,
            "timeout_action": bp.timeout_action if bp else None,
            "rules": len(self.rules.all()),
            "pending": len(self.queue),
        }

    # ---- kernel side: paused flows ------------------------------------------------------

    def pending(self) -> list[PendingFlow]:
        """Paused flows, oldest first."""
        return self.queue.list()

    def resume(
        self,
        flow_id: str,
        *,
        request_body: Any = None,
        response_body: Any = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Let a paused flow go on, optionally with an edited body (dict or JSON text) and headers.

        Raises EditError (the flow stays paused) when an edit is invalid or belongs to the other
        stage, KeyError when no such flow is paused.
        """
        p = self._get(flow_id)
        if request_body is not None and p.stage != "request":
            raise EditError(f"flow {flow_id} is paused at the response; pass response_body=")
        if response_body is not None and p.stage != "response":
            raise EditError(f"flow {flow_id} is paused at the request; pass request_body=")
        req = validate_request_body(p.api, request_body) if request_body is not None else None
        resp = validate_response_body(p.api, response_body) if response_body is not None else None
        hdrs = validate_headers(headers) if headers is not None else None
        self._decide(p, Decision("resume", request_body=req, response_body=resp, headers=hdrs))

    def drop(self, flow_id: str) -> None:
        """End a paused flow: the client gets a clear error in its provider's format."""
        self._decide(self._get(flow_id), Decision("drop"))

    def mock(self, flow_id: str, body: Any = None, *, text: str | None = None) -> None:
        """Answer a paused flow with ``text`` (in the provider's format) or a full ``body``."""
        p = self._get(flow_id)
        if isinstance(body, str) and text is None:
            body, text = None, body
        mbody = validate_response_body(p.api, body) if body is not None else None
        self._decide(p, Decision("mock", mock_text=text or "", mock_body=mbody))

    def hold(self, flow_id: str) -> None:
        """Someone is editing the flow: pause its countdown until :meth:`release_hold`."""
        p = self._get(flow_id)
        self._call(self._on_loop(p.hold))
        self.changed.emit()

    def release_hold(self, flow_id: str) -> None:
        p = self._get(flow_id)
        self._call(self._on_loop(p.release_hold))
        self.changed.emit()

    def _get(self, flow_id: str) -> PendingFlow:
        p = self.queue.get(flow_id)
        if p is None:
            ids = [q.id for q in self.queue.list()]
            raise KeyError(f"flow {flow_id!r} is not paused (paused: {ids or 'none'})")
        return p

    def _decide(self, p: PendingFlow, decision: Decision) -> None:
        async def settle() -> bool:
            return p.decide(decision)

        if not self._call(settle()):
            raise KeyError(f"flow {p.id} was already released")

    async def _on_loop(self, fn: Callable[[], None]) -> None:
        fn()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the proxy loop and wait for it (directly when already on it)."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the proxy is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("call the async controller methods from the proxy loop")
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return fut.result(timeout=10)

    async def _release_all(self, why: str, only_reason: str | None = None) -> None:
        for p in self.queue.list():
            if only_reason is None or p.reason == only_reason:
                p.decide(Decision("resume"))
                self.notice.emit("released", p.id, f"flow {p.id} released: {why}")

    # ---- proxy side ----------------------------------------------------------------------

    async def on_request(
        self, flow: http.HTTPFlow, llm: LLMFlow, host: InterceptHost | None = None
    ) -> None:
        """Rules and breakpoints at the request stage. Never raises into mitmproxy."""
        host = host or NullHost()
        flow.metadata[act.LLM_KEY] = llm
        try:
            await self._stage(flow, llm, host, "request")
        except Exception as exc:  # interception must never break traffic
            self._internal_error(llm, host, exc)

    def wants_response(self, flow: http.HTTPFlow, llm: LLMFlow | None = None) -> bool:
        """Should the addon buffer this response so it can be paused or edited whole?"""
        llm = llm or flow.metadata.get(act.LLM_KEY)
        if llm is None or flow.metadata.get(act.OUTCOME_KEY):
            return False
        bp = self.breakpoint
        if bp is not None and bp.applies(llm, "response"):
            return True
        return bool(self.rules.matching(llm, "response"))

    async def on_response(
        self, flow: http.HTTPFlow, llm: LLMFlow | None = None, host: InterceptHost | None = None
    ) -> None:
        """Rules and breakpoints at the response stage (``flow.response`` is complete)."""
        host = host or NullHost()
        llm = llm or flow.metadata.get(act.LLM_KEY)
        if llm is None or flow.response is None or flow.metadata.get(act.OUTCOME_KEY):
            return
        try:
            await self._stage(flow, llm, host, "response")
        except Exception as exc:
            self._internal_error(llm, host, exc)

    def _internal_error(self, llm: LLMFlow, host: InterceptHost, exc: Exception) -> None:
        msg = f"intercept error on flow {llm.id}: {type(exc).__name__}: {exc}"
        log.exception(msg)
        self.errors.append(msg)
        host.notify(msg, level="warning")

    async def _stage(
        self, flow: http.HTTPFlow, llm: LLMFlow, host: InterceptHost, stage: str
    ) -> None:
        """The rules acting at ``stage`` in order, then the breakpoint unless a rule paused.

        Only pause and delay rules ever act at the response stage (see ``Rule.applies``).
        """
        paused = False
        for rule in self.rules.matching(llm, stage):
            host.record_rule(llm.id, rule.id)
            if rule.action == "modify":
                act.apply_modify(flow, llm, host, rule.params)
            elif rule.action == "delay":
                await asyncio.sleep(rule.params["seconds"])
            elif rule.action == "mock":
                p = rule.params
                body = act.mock_body(llm, p.get("text"), p.get("body"), p.get("model"))
                act.send_body(flow, llm, body, status=p["status"], headers=p.get("headers"))
                flow.metadata[act.OUTCOME_KEY] = "mocked"
                return
            elif rule.action == "block":
                act.send_error(
                    flow, llm, host, rule.params["status"], rule.params["message"], "blocked"
                )
                return
            elif rule.action == "pause":
                paused = True
                if await self._pause(flow, llm, host, stage, rule.id, rule.params):
                    return
        bp = self.breakpoint
        if not paused and bp is not None and bp.applies(llm, stage):
            params = {"timeout": bp.timeout, "timeout_action": bp.timeout_action}
            await self._pause(flow, llm, host, stage, "breakpoint", params)

    async def _pause(
        self,
        flow: http.HTTPFlow,
        llm: LLMFlow,
        host: InterceptHost,
        stage: str,
        reason: str,
        params: dict[str, Any],
    ) -> bool:
        """Pause until decided; apply the decision. True when the flow was answered/ended."""
        if stage == "request":
            editable = act.request_json(flow)
            headers = dict(flow.request.headers.items())
        else:
            editable = act.editable_response(flow, llm)
            headers = dict(flow.response.headers.items()) if flow.response else {}
        p = PendingFlow(
            id=llm.id,
            stage=stage,
            flow=llm,
            reason=reason,
            timeout=float(params["timeout"]),
            timeout_action=str(params["timeout_action"]),
            api=api_of(llm),
            client_stream=act.client_stream(flow, llm),
            editable=editable,
            headers=headers,
        )
        # The future exists before anyone can hear of the pause: no approval can be lost.
        p.future = asyncio.get_running_loop().create_future()
        self.queue.add(p)
        host.set_state(llm.id, FlowState.INTERCEPTED)
        msg = (
            f"Paused {stage} of flow {llm.id} ({llm.model or llm.request.path}); "
            f"auto-{'drop' if p.timeout_action == 'drop' else 'continue'} in {p.timeout:g}s"
        )
        host.notify(msg)
        self.notice.emit("paused", llm.id, msg)
        self.changed.emit()
        try:
            decision = await p.wait()
        finally:
            self.queue.remove(p.id)
        ended = act.apply_decision(flow, llm, host, p, decision, self.notice.emit)
        self.changed.emit()
        return ended

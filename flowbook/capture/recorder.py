"""FlowRecorder: turns what the proxy sees into LLMFlows, off the proxy's event loop.

The mitmproxy addon only stamps times and queues one small op (:mod:`flowbook.capture.ops`;
``put`` on a ``SimpleQueue`` costs well under a microsecond); one worker thread applies the ops
in order: it builds the record (:mod:`~flowbook.capture.record`), folds the response in
(:mod:`~flowbook.capture.assembly`), decides the outcome and prices the call
(:mod:`~flowbook.capture.outcome`), and writes the flow to its :class:`FlowSink`. This keeps
the proxy's hot path free of parsing, so streamed bytes reach the client as they arrive.

The worker shares the GIL with the proxy's loop, so it works in batches: it blocks while there is
nothing to do, then applies everything queued and sleeps :data:`BATCH_INTERVAL` before looking
again. Under traffic the proxy's ``put`` then rarely has a sleeping consumer to wake (a wake-up
and the GIL hand-off that follows cost the proxy more than the op itself), and the worker takes
the GIL a few hundred times a second instead of once per chunk. :meth:`FlowRecorder.wait_idle`
cuts the sleep short, so a reader never waits for the interval.

Within a batch, the store writes of flows still in progress are coalesced: each flow the batch
changed is put (new) or touched (changed) once, after the batch, and not at all when it finished
in the same batch (its final ``put`` is the one write it needs). A final ``put`` is never
deferred, so ``on_complete`` callbacks still run after the store has the finished flow. Every
write happens before :meth:`FlowRecorder.wait_idle` returns.

A bug in a parser never breaks traffic: :func:`~flowbook.capture.safecall.safecall` logs it and
the flow records a parse error.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

from flowbook.capture import assembly, outcome
from flowbook.capture.ops import (
    Begin,
    Call,
    Chunk,
    Failed,
    ForceOutcome,
    Op,
    RequestSent,
    ResponseEnd,
    ResponseHeaders,
    SetState,
)
from flowbook.capture.record import Record, build_record, parse_request
from flowbook.capture.safecall import safecall
from flowbook.capture.sink import FlowSink
from flowbook.model import FlowError, FlowState, LLMFlow
from flowbook.providers.base import Detection, Provider, RequestView

#: Seconds the worker sleeps after a batch before taking the next one (only while ops keep
#: coming: an idle worker blocks on the queue). Live summaries refresh every 100 ms anyway.
BATCH_INTERVAL = 0.01


class FlowRecorder:
    """Owns every in-progress flow. All mutation happens on its worker thread."""

    def __init__(self, store: FlowSink) -> None:
        self.store = store
        self._q: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._records: dict[str, Record] = {}
        self._records_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="flowbook-recorder", daemon=True)
        self._idle = threading.Condition()
        # Ops are numbered as they are queued (itertools.count is atomic under the GIL, so the
        # proxy loop takes no lock); wait_idle waits for the ops queued before it, not for an
        # empty queue, which under steady traffic might never come.
        self._counter = itertools.count(1)
        self._queued = 0
        self._done = 0
        self._hurry = threading.Event()  # set by readers: skip the pause between batches
        # While the worker applies a batch: flow id -> (flow, needs a put rather than a touch).
        self._pending: dict[str, tuple[LLMFlow, bool]] | None = None
        self.batch_interval = BATCH_INTERVAL
        self.on_complete: list[Callable[[LLMFlow], None]] = []
        self.session_provider: Callable[[], str | None] = lambda: None
        self.save_stream_events = True
        self.redact = True
        self._thread.start()

    # ---- called from the proxy's event loop (must stay cheap) -------------------------------

    def begin(
        self,
        flow_id: str,
        view: RequestView,
        provider: Provider,
        detection: Detection,
        *,
        created: float,
        client_address: str | None = None,
        parse_now: bool = False,
    ) -> LLMFlow | None:
        """A detected LLM request arrived. With ``parse_now`` the flow is built synchronously
        (interception needs the parsed request to match filters) and returned."""
        op = Begin(flow_id, view, provider, detection, created, client_address)
        if parse_now:
            return self._begin(op, defer=False)
        self.submit(op)
        return None

    def request_sent(self, flow_id: str, t: float, changed_view: RequestView | None = None) -> None:
        self.submit(RequestSent(flow_id, t, changed_view))

    def response_headers(
        self,
        flow_id: str,
        t: float,
        status: int,
        reason: str,
        headers: dict[str, str],
        streamed: bool,
    ) -> None:
        self.submit(ResponseHeaders(flow_id, t, status, reason, headers, streamed))

    def chunk(self, flow_id: str, t: float, data: bytes) -> None:
        self.submit(Chunk(flow_id, t, data))

    def response_end(self, flow_id: str, t: float, raw_body: bytes | None) -> None:
        self.submit(ResponseEnd(flow_id, t, raw_body))

    def failed(self, flow_id: str, t: float, message: str, *, cancelled: bool) -> None:
        self.submit(Failed(flow_id, t, message, cancelled))

    def set_state(self, flow_id: str, state: FlowState) -> None:
        self.submit(SetState(flow_id, state))

    def force_outcome(self, flow_id: str, state: FlowState, error: FlowError) -> None:
        """End the flow in ``state`` with ``error`` whatever its response says (a dropped flow
        is Cancelled even though the client gets an error response)."""
        self.submit(ForceOutcome(flow_id, state, error))

    def call(self, flow_id: str, fn: Callable[[LLMFlow], None]) -> None:
        """Run ``fn(flow)`` on the recorder thread (ordered with the flow's other updates)."""
        self.submit(Call(flow_id, fn))

    def submit(self, op: Op) -> None:
        """Queue ``op`` for the worker thread (the one way in; cheap, never blocks)."""
        self._queued = next(self._counter)
        self._q.put(op)

    # ---- kernel side -------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every update queued before this call has been applied."""
        target = self._queued
        deadline = time.monotonic() + timeout
        self._hurry.set()
        with self._idle:
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def active_ids(self) -> list[str]:
        with self._records_lock:
            return list(self._records)

    def close(self) -> None:
        self._q.put(None)
        self._hurry.set()
        self._thread.join(timeout=5)

    # ---- worker -----------------------------------------------------------------------------

    def _run(self) -> None:
        q, hurry = self._q, self._hurry
        while True:
            batch = [q.get()]  # blocks while idle
            while True:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            applied = 0
            self._pending = {}
            try:
                # One store batch per batch of ops: the store's batch hooks (the session
                # tracker) run once for all its writes.
                with getattr(self.store, "batch", nullcontext)():
                    try:
                        for op in batch:
                            if op is None:
                                return
                            self.apply(op)
                            applied += 1
                    finally:
                        self._flush_pending()
            finally:
                with self._idle:
                    self._done += applied
                    self._idle.notify_all()
            if not hurry.is_set():
                hurry.wait(self.batch_interval)
            hurry.clear()

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, None
        for flow, new in (pending or {}).values():
            with safecall(flow, "store write"):
                if new:
                    self.store.put(flow)
                else:
                    self.store.touch(flow)

    def _put(self, flow: LLMFlow) -> None:
        pending = self._pending
        if pending is None:
            self.store.put(flow)
        elif flow.state.is_final:
            pending.pop(flow.id, None)  # this put supersedes whatever was waiting
            self.store.put(flow)
        else:
            pending[flow.id] = (flow, True)

    def _touch(self, flow: LLMFlow) -> None:
        pending = self._pending
        if pending is None:
            self.store.touch(flow)
        elif flow.id not in pending:
            pending[flow.id] = (flow, False)

    def _rec(self, flow_id: str) -> Record | None:
        with self._records_lock:
            return self._records.get(flow_id)

    def apply(self, op: Op) -> None:
        """Apply one op (on the worker thread; tests call it directly to order ops exactly).
        Never raises: a failure is logged and recorded on the flow as a parse error."""
        if isinstance(op, Begin):
            with safecall(None, "recording a new flow"):
                self._begin(op, defer=True)
            return
        rec = self._rec(op.flow_id)
        if rec is None:
            return  # the flow already ended (or was never recorded)
        with safecall(rec.flow, "recording"):
            self._apply(rec, op)

    def _begin(self, op: Begin, *, defer: bool) -> LLMFlow:
        rec = build_record(op, session=self.session_provider(), redact=self.redact)
        with self._records_lock:
            self._records[op.flow_id] = rec
        if defer:
            self._put(rec.flow)
        else:  # interception builds the flow on the proxy's loop, outside any batch
            self.store.put(rec.flow)
        return rec.flow

    def _apply(self, rec: Record, op: Op) -> None:
        flow = rec.flow
        match op:
            case RequestSent(t=t, changed=changed):
                flow.timestamps.request_sent = t
                touch = changed is not None or flow.state == FlowState.INTERCEPTED
                if changed is not None:
                    parse_request(rec, changed, redact=self.redact)
                if flow.state == FlowState.INTERCEPTED:
                    flow.state = FlowState.PENDING
                if touch:  # only a visible change is worth a summary refresh
                    self._touch(flow)
            case ResponseHeaders(t=t, status=status, reason=reason, headers=h, streamed=s):
                if assembly.on_headers(rec, t, status, reason, h, s, redact=self.redact):
                    self._touch(flow)  # now Streaming
            case Chunk(t=t, data=data):
                if assembly.on_chunk(rec, t, data, save_events=self.save_stream_events):
                    self._touch(flow)
            case ResponseEnd(t=t, raw_body=raw):
                if outcome.end_of_response(rec, t, raw, save_events=self.save_stream_events):
                    self._finish(rec, FlowState.COMPLETED)
            case Failed(t=t, message=message, cancelled=cancelled):
                state = outcome.failed(
                    rec, t, message, cancelled, save_events=self.save_stream_events
                )
                self._finish(rec, state)
            case ForceOutcome(state=state, error=error):
                rec.forced = (state, error)
            case SetState(state=state):
                flow.state = state
                self._touch(flow)
            case Call(fn=fn):
                fn(flow)
                self._put(flow)

    def _finish(self, rec: Record, state: FlowState) -> None:
        flow = rec.flow
        outcome.finalize(rec, state, redact=self.redact)
        with self._records_lock:
            self._records.pop(flow.id, None)
        self._put(flow)
        for cb in self.on_complete:
            with safecall(None, f"on_complete callback {getattr(cb, '__qualname__', cb)!r}"):
                cb(flow)

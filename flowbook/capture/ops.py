"""What the proxy tells the recorder: one small dataclass per event of a flow's life.

The addon runs on mitmproxy's event loop and only builds one of these and queues it; the
recorder's worker thread applies them in order (:mod:`flowbook.capture.recorder`). Every op names
the flow it belongs to, so an op for a flow that already finished is simply dropped.

The ops are plain slotted dataclasses, not frozen ones: a frozen dataclass's ``__init__`` sets
each field through ``object.__setattr__`` and costs about four times as much, and a ``Chunk`` is
built on the proxy's loop for every piece of every stream. Nothing mutates an op once queued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowbook.model import FlowError, FlowState, LLMFlow
from flowbook.providers.base import Detection, Provider, RequestView


@dataclass(slots=True)
class Begin:
    """A detected LLM request arrived (its body complete)."""

    flow_id: str
    view: RequestView
    provider: Provider
    detection: Detection
    created: float
    client_address: str | None = None


@dataclass(slots=True)
class RequestSent:
    """The request left for the upstream; ``changed`` is the edited request, if it was edited."""

    flow_id: str
    t: float
    changed: RequestView | None = None


@dataclass(slots=True)
class ResponseHeaders:
    """The response's status line and headers; ``streamed``: its body is teed chunk by chunk."""

    flow_id: str
    t: float
    status: int
    reason: str
    headers: dict[str, str]
    streamed: bool


@dataclass(slots=True)
class Chunk:
    """One piece of a streamed body, as it arrived."""

    flow_id: str
    t: float
    data: bytes


@dataclass(slots=True)
class ResponseEnd:
    """The response ended; ``raw_body`` is the whole body of a buffered response (else None)."""

    flow_id: str
    t: float
    raw_body: bytes | None


@dataclass(slots=True)
class Failed:
    """mitmproxy reported an error for the flow (``cancelled``: the client hung up)."""

    flow_id: str
    t: float
    message: str
    cancelled: bool


@dataclass(slots=True)
class SetState:
    """Interception moved the flow to another (non-final) state."""

    flow_id: str
    state: FlowState


@dataclass(slots=True)
class ForceOutcome:
    """End the flow in ``state`` with ``error`` whatever its response says (a dropped flow)."""

    flow_id: str
    state: FlowState
    error: FlowError


@dataclass(slots=True)
class Call:
    """Run ``fn(flow)`` on the recorder thread, ordered with the flow's other updates."""

    flow_id: str
    fn: Callable[[LLMFlow], None]


#: Any op the recorder applies.
Op = (
    Begin | RequestSent | ResponseHeaders | Chunk | ResponseEnd | Failed | SetState | ForceOutcome
    | Call
)  # fmt: skip

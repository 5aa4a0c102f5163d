"""Record building: an in-progress flow and its request, parsed from what the proxy saw.

A :class:`Record` is the recorder's working state for one flow (decoders, assembler, body so
far); the :class:`~flowbook.model.LLMFlow` inside it is what the store shows. Only the recorder's
worker thread touches a record (interception builds one synchronously, before any other op for
that flow can exist).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowbook.capture.ops import Begin
from flowbook.capture.request_check import content_type_problem, request_problems
from flowbook.capture.safecall import safecall
from flowbook.model import (
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
)
from flowbook.providers.base import Assembler, Detection, Provider, RequestView
from flowbook.streams import FramingDecoder
from flowbook.streams.content_encoding import ContentDecoder


@dataclass(slots=True)
class Record:
    """One flow being recorded: the flow itself plus the machinery that rebuilds its response."""

    flow: LLMFlow
    provider: Provider
    detection: Detection
    view: RequestView
    content: ContentDecoder | None = None
    decoder: FramingDecoder | None = None
    assembler: Assembler | None = None
    body: bytearray = field(default_factory=bytearray)
    streamed: bool = False
    framed: bool = False  # a framing decoder reads the stream (else it is one JSON body)
    last_touch: float = 0.0
    last_chunk: float | None = None  # arrival time of the latest streamed chunk
    decode_failed: bool = False
    forced: tuple[FlowState, FlowError] | None = None
    # Problems with the request itself (body not JSON, wrong content type, …): the flow's error
    # when it ends, whatever the upstream answered.
    request_problems: list[str] = field(default_factory=list)
    content_type_problem: str | None = None  # reported with a body problem or an HTTP error


def build_record(op: Begin, *, session: str | None, redact: bool) -> Record:
    """A new record for the request in ``op``, with the request parsed."""
    from flowbook.providers.clients import detect_client

    view, detection = op.view, op.detection
    meta = FlowMetadata(
        provider=detection.provider,
        api=detection.api,
        user_agent=view.headers.get("user-agent"),
        client_address=op.client_address,
        session=session,
    )
    flow = LLMFlow(
        id=op.flow_id,
        flow_type=detection.api,
        metadata=meta,
        timestamps=FlowTimestamps(created=op.created),
    )
    with safecall(flow, "client detection"):
        meta.client = detect_client(view.headers)
    rec = Record(flow=flow, provider=op.provider, detection=detection, view=view)
    parse_request(rec, view, redact=redact)
    return rec


def parse_request(rec: Record, view: RequestView, *, redact: bool) -> None:
    """Set ``rec.flow.request`` from ``view`` (again, when interception edited the request)."""
    flow = rec.flow
    rec.view = view
    req: LLMRequest | None = None
    with safecall(flow, "request"):
        req = rec.provider.parse_request(view, rec.detection.api)
    if req is None:
        req = LLMRequest()
    # The raw facts always come from the wire, whatever the parser made of them.
    req.method, req.url, req.host, req.path = view.method, view.url, view.host, view.path
    req.body = view.body
    req.headers = dict(view.headers)
    if redact:
        from flowbook.redact import mask_headers, mask_url

        req.headers = mask_headers(req.headers)
        req.url = mask_url(req.url)
        req.path = mask_url(req.path)
    flow.request = req
    rec.request_problems = request_problems(view, rec.detection)
    rec.content_type_problem = content_type_problem(view, rec.detection)

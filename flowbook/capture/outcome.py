"""Finishing a flow: which final state it ends in and why, then usage, cost and masking.

The rule for streams (issue 11 §1): a stream whose provider protocol says it finished (OpenAI's
``[DONE]``, Anthropic's ``message_stop``, ``response.completed``, Gemini's ``finishReason``,
Bedrock's ``messageStop``, Kiro's closing ``meteringEvent``, Ollama's ``done``) is Completed
whatever happens to the connection afterwards: a client that read the last event and hung up
before mitmproxy saw the end of the body did not cancel anything. Only a stream cut before its
end is Cancelled (the client hung up) or Error (the upstream or the network broke it).
"""

from __future__ import annotations

from flowbook.capture.assembly import assemble_final, close_stream, decode_buffered
from flowbook.capture.record import Record
from flowbook.capture.safecall import safecall
from flowbook.model import ErrorType, FlowError, FlowState, LLMFlow, LLMResponse

_REQUEST_ERROR_CODE = "request_parse"


def end_of_response(rec: Record, t: float, raw_body: bytes | None, *, save_events: bool) -> bool:
    """The response ended normally. Returns False when there is nothing to finish yet (no
    response headers were seen, e.g. a mocked response recorded separately)."""
    flow = rec.flow
    resp = flow.response
    if resp is None:
        return False
    if rec.streamed:
        close_stream(rec, t, save_events=save_events)
        resp.body = bytes(rec.body)
    else:
        decode_buffered(rec, raw_body)
    assemble_final(rec)
    flow.timestamps.completed = t
    return True


def stream_finished(rec: Record) -> bool:
    """Did the provider's protocol say this streamed response is complete?"""
    return rec.streamed and rec.assembler is not None and rec.assembler.finished


def failed(rec: Record, t: float, message: str, cancelled: bool, *, save_events: bool) -> FlowState:
    """mitmproxy reported an error; decide how the flow ends. Sets the error and timestamps."""
    flow = rec.flow
    # An error the provider reported in the stream before the connection broke (finish() below
    # may add "truncated", which is this hang-up itself, not its cause).
    in_stream = rec.assembler.error if rec.assembler is not None else None
    with safecall(flow, "stream end"):
        close_stream(rec, t, save_events=save_events)
    if stream_finished(rec) and flow.response is not None:
        # The whole answer arrived: the hang-up (often the client closing its connection right
        # after the last event, reported before the tee saw the body's end) changes nothing.
        flow.response.body = bytes(rec.body)
        assemble_final(rec)
        flow.timestamps.completed = rec.last_chunk or t
        return FlowState.COMPLETED
    if rec.assembler is not None and rec.framed and not rec.decode_failed:
        with safecall(flow, "stream end"):
            rec.assembler.finish()
    if flow.response is not None and rec.body:
        flow.response.body = bytes(rec.body)
        if flow.response.usage is not None and flow.response.usage.source == "estimated":
            flow.response.usage = None
    flow.timestamps.completed = t
    if in_stream is not None and in_stream.type != ErrorType.PARSE:
        # The provider reported an error in the stream and the client (or upstream) hung up
        # because of it: the provider's error is the cause worth showing.
        flow.error = in_stream
        return FlowState.ERROR
    if cancelled:
        flow.error = FlowError(ErrorType.CANCELLED, message or "client disconnected")
        return FlowState.CANCELLED
    lowered = message.lower()
    timeout = "timeout" in lowered or "timed out" in lowered
    flow.error = FlowError(ErrorType.TIMEOUT if timeout else ErrorType.NETWORK, message)
    return FlowState.ERROR


def finalize(rec: Record, state: FlowState, *, redact: bool) -> None:
    """Settle the final state and error, then usage, cost and masking at rest."""
    flow = rec.flow
    resp = flow.response
    http_error = resp is not None and resp.status_code >= 400
    _usage_and_cost(flow)
    problems = list(rec.request_problems)
    if rec.content_type_problem and (problems or http_error):
        problems.append(rec.content_type_problem)
    if problems:
        flow.metadata.parse_errors.extend("request: " + p for p in problems)
        if state == FlowState.COMPLETED:
            # The request itself was malformed: that is what went wrong, whatever the upstream
            # made of it (its answer stays in the response).
            flow.error = _request_error(problems, resp, flow.error)
    if flow.metadata.parse_errors and flow.error is None:
        flow.error = FlowError(ErrorType.PARSE, "; ".join(flow.metadata.parse_errors)[:1000])
    # A parse error alone leaves a call Completed (the answer arrived); any other error, or an
    # error status, makes it an Error.
    if (
        state == FlowState.COMPLETED
        and flow.error is not None
        and (flow.error.type != ErrorType.PARSE or http_error)
    ):
        state = FlowState.ERROR
    if rec.forced is not None:
        state, flow.error = rec.forced
    flow.state = state
    if redact:
        _mask_bodies(flow)


def _request_error(
    problems: list[str], resp: LLMResponse | None, upstream: FlowError | None
) -> FlowError:
    message = "request: " + "; ".join(problems)
    status = resp.status_code if resp is not None else None
    if upstream is not None and upstream.type != ErrorType.PARSE:
        message += f"; upstream answered {status}: {upstream.message}"
    return FlowError(
        ErrorType.PARSE,
        message[:1000],
        status=status,
        raw=upstream.raw if upstream is not None else None,
        code=_REQUEST_ERROR_CODE,
    )


def _usage_and_cost(flow: LLMFlow) -> None:
    from flowbook.analysis.pricing import cost_usd
    from flowbook.analysis.tokens import estimate_usage

    resp = flow.response
    # An HTTP error bills nothing: estimating tokens for it would invent usage.
    if resp is not None and resp.usage is None and resp.status_code < 400:
        with safecall(flow, "usage estimate"):
            resp.usage = estimate_usage(flow)
    usage = resp.usage if resp else None
    if usage is not None:
        with safecall(flow, "cost"):
            flow.metadata.cost_usd = cost_usd(
                flow.metadata.provider, flow.model, usage, timestamp=flow.timestamps.created
            )


def _mask_bodies(flow: LLMFlow) -> None:
    """Key-shaped strings in bodies are masked at rest (DESIGN §8); JSON stays valid."""
    from flowbook.redact import DEFAULT

    for holder in (flow.request, flow.response):
        if holder is not None and holder.body:
            holder.body = DEFAULT.mask_body(holder.body)

"""Response assembly: headers, streamed chunks and the body's end, folded into the flow.

Streamed bytes go content-decoder → framing decoder → the provider's assembler as they arrive;
a buffered body is decoded and assembled once, at its end. Functions here change the record and
say whether the change is worth showing at once; the recorder does all writing to the sink.
"""

from __future__ import annotations

from flowbook.capture.record import Record
from flowbook.capture.safecall import safecall
from flowbook.model import FlowState, LLMFlow, LLMResponse, StreamEvent, Usage
from flowbook.providers.rebuild import rebuild_response
from flowbook.streams import make_decoder
from flowbook.streams.content_encoding import ContentDecodeError, ContentDecoder

LIVE_UPDATE_INTERVAL = 0.1  # seconds between summary refreshes of a streaming flow


def on_headers(
    rec: Record,
    t: float,
    status: int,
    reason: str,
    headers: dict[str, str],
    streamed: bool,
    *,
    redact: bool,
) -> bool:
    """The response's headers arrived; True when the flow is now visibly Streaming."""
    flow = rec.flow
    flow.timestamps.first_byte = t
    resp = LLMResponse(status_code=status, reason=reason, headers=dict(headers))
    if redact:
        from flowbook.redact import mask_headers

        resp.headers = mask_headers(resp.headers)
    flow.response = resp
    rec.streamed = streamed
    with safecall(flow, "assembler"):
        rec.assembler = rec.provider.assembler(rec.detection.api, flow.request, resp)
    if not streamed:
        return False  # a buffered response shows at its end
    flow.state = FlowState.STREAMING
    try:
        rec.content = ContentDecoder(headers.get("content-encoding"))
    except ContentDecodeError as exc:
        rec.decode_failed = True
        flow.metadata.parse_errors.append(str(exc))
    framing = rec.provider.framing(rec.view, rec.detection.api, headers.get("content-type", ""))
    if framing != "json":
        rec.decoder = make_decoder(framing)
        rec.framed = True
    return True


def on_chunk(rec: Record, t: float, data: bytes, *, save_events: bool) -> bool:
    """One streamed chunk; True when it is time for a live refresh of the flow's summary."""
    flow = rec.flow
    if not data:
        return False
    rec.last_chunk = t
    plain = data
    if rec.content is not None and not rec.decode_failed:
        try:
            plain = rec.content.feed(data)
        except ContentDecodeError as exc:
            rec.decode_failed = True
            flow.metadata.parse_errors.append(str(exc))
    rec.body += plain if not rec.decode_failed else data
    if rec.decoder is None or rec.decode_failed or rec.assembler is None:
        return False
    feed_events(rec, rec.decoder.feed(plain, t), save_events=save_events)
    if t - rec.last_touch < LIVE_UPDATE_INTERVAL:
        return False
    rec.last_touch = t
    _live_usage(flow)
    return True


def feed_events(rec: Record, events: list[StreamEvent], *, save_events: bool) -> None:
    """Fold decoded events into the response; the first one with output stamps the TTFT."""
    flow = rec.flow
    resp = flow.response
    assert resp is not None and rec.assembler is not None
    for ev in events:
        if save_events:
            resp.events.append(ev)
        produced = rec.assembler.feed(ev)
        if produced and flow.timestamps.first_token is None:
            flow.timestamps.first_token = ev.t


def close_stream(rec: Record, t: float, *, save_events: bool) -> None:
    """No more bytes will come: flush the decoders into the assembler (once). Safe to call
    when the stream was cut short."""
    flow = rec.flow
    if rec.content is not None and not rec.decode_failed:
        content, rec.content = rec.content, None
        try:
            content.close()
        except ContentDecodeError as exc:
            flow.metadata.parse_errors.append(str(exc))
    if rec.decoder is not None and rec.assembler is not None and not rec.decode_failed:
        decoder, rec.decoder = rec.decoder, None
        feed_events(rec, decoder.close(t), save_events=save_events)
        flow.metadata.parse_errors.extend(decoder.errors)


def decode_buffered(rec: Record, raw_body: bytes | None) -> None:
    """A buffered response's whole body, with its content-encoding removed."""
    resp = rec.flow.response
    assert resp is not None
    body = raw_body or b""
    try:
        content = ContentDecoder(resp.headers.get("content-encoding"))
        body = content.feed(body)
        content.close()
    except ContentDecodeError as exc:
        rec.flow.metadata.parse_errors.append(str(exc))
    resp.body = body


def assemble_final(rec: Record) -> None:
    """Give the assembler the whole body (buffered responses) and finish it; an HTTP error
    status becomes the flow's error through the provider's error parser."""
    flow = rec.flow
    resp = flow.response
    assert resp is not None
    if resp.usage is not None and resp.usage.source == "estimated":
        resp.usage = None  # drop the live estimate; the real one is computed at the end
    if not (rec.streamed and rec.framed):
        # A buffered body is rebuilt whole, by the one function every other caller uses.
        rebuilt = rebuild_response(
            rec.provider,
            rec.detection.api,
            flow.request,
            rec.view,
            status=resp.status_code,
            headers=resp.headers,
            body=resp.body or b"",
            into=resp,
        )
        flow.metadata.parse_errors.extend(rebuilt.parse_errors)
        if resp.status_code >= 400 or (rebuilt.error is not None and flow.error is None):
            flow.error = rebuilt.error
        return
    if resp.status_code >= 400:
        flow.error = rec.provider.parse_error(resp.status_code, resp.body or b"", resp.headers)
        return
    asm = rec.assembler
    if asm is None:
        return
    asm.finish()
    if asm.error is not None and flow.error is None:
        flow.error = asm.error


def _live_usage(flow: LLMFlow) -> None:
    """While streaming, show growing output tokens (an estimate, labelled as such)."""
    resp = flow.response
    if resp is None or (resp.usage and resp.usage.source == "reported"):
        return
    chars = len(resp.text) + len(resp.thinking) + sum(len(c.arguments_raw) for c in resp.tool_calls)
    resp.usage = Usage(output=chars // 4, source="estimated", details={"method": "live:chars/4"})

"""Every stream encoder in flowbook.streams, checked by its own decoder (docs/wire-formats.md).

SSE, NDJSON, JSON-array and AWS event-stream encoders live beside their decoders; codecs,
interception and the fake upstream write streams only through them. An encoding is right when
the matching decoder reads it back under any chunking; for event-stream frames the decoder also
checks both CRCs, and the encoder reproduces real frames byte for byte.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowbook.model import StreamEvent
from flowbook.streams.eventstream import (
    BYTE,
    LONG,
    SHORT,
    TIMESTAMP,
    EventStreamDecoder,
    decode_frame,
    split_frames,
)
from flowbook.streams.eventstream_encode import (
    Typed,
    bedrock_chunk_frame,
    encode_frame,
    error_frame,
    event_frame,
    exception_frame,
)
from flowbook.streams.json_array import JSONArrayDecoder, encode_json_array
from flowbook.streams.ndjson import NDJSONDecoder, encode_ndjson
from flowbook.streams.sse import SSEDecoder, encode_sse
from tests.helpers.fixtures import read_fixture, split_random


def _decode(decoder: Any, data: bytes, pieces: list[bytes] | None = None) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for i, piece in enumerate(pieces if pieces is not None else [data]):
        events += decoder.feed(piece, float(i))
    events += decoder.close(99.0)
    return events


class RecordingDecoder(EventStreamDecoder):
    """The event-stream decoder plus every event it returned."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[StreamEvent] = []


def _decode_all(data: bytes, pieces: list[bytes] | None = None) -> RecordingDecoder:
    dec = RecordingDecoder()
    dec.events = _decode(dec, data, pieces)
    return dec


def _plain(events: list[StreamEvent]) -> list[tuple[object, object, object]]:
    return [(e.event, e.data, e.headers) for e in events]


# ---------------------------------------------------------------- SSE


def test_sse_event_names_json_and_sentinel() -> None:
    data = encode_sse({"type": "message_start", "text": "héllo"}, "message_start") + encode_sse(
        "[DONE]"
    )
    assert data.startswith(b'event: message_start\ndata: {"type": "message_start"')
    assert "héllo".encode() in data  # non-ASCII kept, not \u-escaped
    dec = SSEDecoder()
    events = _decode(dec, data)
    assert [(e.event, e.data) for e in events] == [
        ("message_start", {"type": "message_start", "text": "héllo"}),
        (None, "[DONE]"),
    ]
    assert dec.errors == []


def test_sse_multiline_data_and_crlf() -> None:
    """A value with newlines becomes several data lines, joined back with LF; CRLF like Gemini."""
    data = encode_sse("line one\nline two", "note", sep="\r\n")
    assert data == b"event: note\r\ndata: line one\r\ndata: line two\r\n\r\n"
    [ev] = _decode(SSEDecoder(), data)
    assert (ev.event, ev.data) == ("note", "line one\nline two")
    compact = encode_sse({"a": [1, 2]}, separators=(",", ":"))
    assert compact == b'data: {"a":[1,2]}\n\n'


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.one_of(st.none(), st.text("abcxyz_.", min_size=1, max_size=12)),
            st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=20), st.integers())),
        ),
        max_size=8,
    ),
    seed=st.integers(0, 1000),
    crlf=st.booleans(),
)
def test_sse_round_trips_under_any_chunking(items: list, seed: int, crlf: bool) -> None:
    data = b"".join(encode_sse(d, e, sep="\r\n" if crlf else "\n") for e, d in items)
    dec = SSEDecoder()
    events = _decode(dec, data, split_random(data, seed, 1, 17))
    assert [(e.event, e.data) for e in events] == items
    assert dec.errors == []


# ---------------------------------------------------------------- NDJSON


def test_ndjson_one_line_per_value_even_with_newlines_inside() -> None:
    values = [{"message": {"content": "a\nb"}, "done": False}, {"done": True, "n": 3}]
    data = b"".join(encode_ndjson(v) for v in values)
    assert data.count(b"\n") == 2 and data.endswith(b"\n")
    for seed in range(5):
        dec = NDJSONDecoder()
        events = _decode(dec, data, split_random(data, seed, 1, 9))
        assert [e.data for e in events] == values and dec.errors == []


# ---------------------------------------------------------------- JSON array


def test_json_array_is_gemini_shaped_and_streams_element_by_element() -> None:
    items = [{"candidates": [{"index": i, "text": "{not a brace}"}]} for i in range(3)]
    pieces = list(encode_json_array(items))
    assert len(pieces) == 4  # one piece per element, then the closing bracket
    assert pieces[0].startswith(b"[{") and pieces[1].startswith(b"\n,\r\n{")
    assert pieces[-1] == b"\n]"
    assert json.loads(b"".join(pieces)) == items
    dec = JSONArrayDecoder()
    seen = [len(dec.feed(p, 0.0)) for p in pieces]
    assert seen == [1, 1, 1, 0]  # each element decodes as soon as its piece arrives
    assert dec.close(0.0) == [] and dec.errors == []


def test_empty_json_array_is_valid() -> None:
    data = b"".join(encode_json_array([]))
    assert json.loads(data) == []
    dec = JSONArrayDecoder()
    assert _decode(dec, data) == [] and dec.errors == []


# ---------------------------------------------------------------- AWS event stream


def test_bedrock_chunk_frame_carries_base64_event_json() -> None:
    event = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hé"}}
    [ev] = _decode_all(bedrock_chunk_frame(event)).events
    assert ev.event == "chunk"
    assert json.loads(base64.b64decode(ev.data["bytes"])) == event


def test_flipped_byte_in_an_encoded_frame_fails_the_crc() -> None:
    frame = bytearray(event_frame("assistantResponseEvent", {"content": "hi"}))
    frame[-6] ^= 0x01  # a payload byte: the message CRC no longer matches
    dec = _decode_all(bytes(frame))
    assert dec.events == [] and dec.errors and "crc" in dec.errors[0].lower()


def test_encoder_matches_independent_reference_vector() -> None:
    """The Elixir event_stream package's documented example (§5)."""
    frame = encode_frame({}, b'{"foo": "bar"}')
    assert frame[:12] == bytes([0, 0, 0, 30, 0, 0, 0, 0, 186, 242, 246, 138])
    assert frame[-4:] == bytes([174, 114, 88, 228])


def test_encoder_reproduces_real_frames_byte_for_byte() -> None:
    data = read_fixture("kiro/gar-cli-text.response.bin")
    frames = split_frames(data)
    rebuilt = b"".join(encode_frame(dict(f.headers), f.payload) for f in frames)
    assert rebuilt == data


def test_round_trip_all_header_types() -> None:
    when = dt.datetime(2026, 5, 24, 8, 5, 38, 123000, tzinfo=dt.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = {
        "t": True,
        "f": False,
        "b": Typed(BYTE, -7),
        "s": Typed(SHORT, 1234),
        "i": 70000,
        "l": Typed(LONG, 2**40),
        "big": 2**35,  # an int past 32 bits becomes a long
        "ba": b"\x00\xffraw",
        "str": "héllo",
        "ts": when,
        "ts_ms": Typed(TIMESTAMP, 1_000),
        "id": ident,
    }
    frame = decode_frame(encode_frame(headers, b"payload"))
    assert frame.payload == b"payload"
    assert frame.headers == {
        "t": True,
        "f": False,
        "b": -7,
        "s": 1234,
        "i": 70000,
        "l": 2**40,
        "big": 2**35,
        "ba": b"\x00\xffraw",
        "str": "héllo",
        "ts": when,
        "ts_ms": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
        "id": ident,
    }
    # StreamEvent headers are JSON-safe renderings of the same values.
    [ev] = _decode_all(encode_frame(headers, b"payload")).events
    assert ev.headers["ba"] == "AP9yYXc="
    assert ev.headers["ts"] == "2026-05-24T08:05:38.123000+00:00"
    assert ev.headers["id"] == str(ident)
    assert ev.headers["b"] == -7
    assert ev.data == "payload"  # not JSON → text


def test_helpers_build_event_exception_and_error_frames() -> None:
    data = (
        event_frame("assistantResponseEvent", {"content": "hi"})
        + exception_frame("throttlingException", "slow down")
        + error_frame("InternalError", "boom")
    )
    events = _decode_all(data).events
    assert [e.event for e in events] == [
        "assistantResponseEvent",
        "throttlingException",
        "InternalError",
    ]
    assert events[0].data == {"content": "hi"}
    assert events[1].headers[":message-type"] == "exception"
    assert events[1].data == {"message": "slow down"}
    assert events[2].headers[":error-message"] == "boom"
    assert events[2].data is None


_header_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.uuids(),
)


@settings(max_examples=60, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.dictionaries(st.text(min_size=1, max_size=20), _header_values, max_size=5),
            st.binary(max_size=300),
        ),
        max_size=6,
    ),
    seed=st.integers(0, 1000),
)
def test_round_trip_any_frames_any_chunking(frames: list, seed: int) -> None:
    data = b"".join(encode_frame(h, p) for h, p in frames)
    decoded = split_frames(data)
    assert [(f.headers, f.payload) for f in decoded] == frames
    whole = _plain(_decode_all(data).events)
    dec = _decode_all(data, split_random(data, seed, 1, 50))
    assert dec.errors == []
    assert _plain(dec.events) == whole
    assert dec.frame_count == len(frames)

"""AWS event-stream decoding and encoding (docs/wire-formats.md §5)."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowbook.model import StreamEvent
from flowbook.streams import make_decoder
from flowbook.streams.eventstream import (
    BYTE,
    LONG,
    MAX_HEADERS_LEN,
    MAX_PAYLOAD_LEN,
    SHORT,
    TIMESTAMP,
    EventStreamDecoder,
    EventStreamError,
    decode_frame,
    payload_value,
    split_frames,
)
from flowbook.streams.eventstream_encode import (
    Typed,
    encode_frame,
    error_frame,
    event_frame,
    exception_frame,
)
from tests.helpers.fixtures import read_fixture, split_random

CAPTURES = {
    "kiro/gar-cli-text.response.bin": 76,
    "kiro/gar-cli-tooluse.response.bin": 18,
    "bedrock/converse-stream-claude-reasoning.response.bin": 25,
}


class RecordingDecoder(EventStreamDecoder):
    """The decoder plus every event it returned."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[StreamEvent] = []


def _decode_all(data: bytes, pieces: list[bytes] | None = None) -> RecordingDecoder:
    dec = RecordingDecoder()
    for i, piece in enumerate(pieces if pieces is not None else [data]):
        dec.events += dec.feed(piece, float(i))
    dec.events += dec.close(99.0)
    return dec


def _plain(events: list[StreamEvent]) -> list[tuple[object, object, object]]:
    return [(e.event, e.data, e.headers) for e in events]


@pytest.mark.parametrize(("name", "count"), sorted(CAPTURES.items()))
def test_real_captures_decode_frame_by_frame_with_valid_crcs(name: str, count: int) -> None:
    data = read_fixture(name)
    frames = split_frames(data)
    assert len(frames) == count
    assert sum(f.total_length for f in frames) == len(data)
    # Check the CRCs independently of the decoder, frame by frame.
    pos = 0
    for f in frames:
        raw = data[pos : pos + f.total_length]
        total, _, prelude_crc = struct.unpack(">III", raw[:12])
        assert total == f.total_length
        assert zlib.crc32(raw[:8]) == prelude_crc
        assert zlib.crc32(raw[:-4]) == struct.unpack(">I", raw[-4:])[0]
        assert f.headers[":message-type"] == "event"
        pos += total
    dec = _decode_all(data)
    assert dec.errors == []
    assert dec.frame_count == count
    assert dec.consumed == len(data)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_random_chunking_gives_identical_events(name: str) -> None:
    data = read_fixture(name)
    whole = _plain(_decode_all(data).events)
    for seed in range(4):
        dec = _decode_all(data, split_random(data, seed, 1, 29))
        assert _plain(dec.events) == whole
        assert dec.errors == []


def test_byte_by_byte_feeding() -> None:
    data = read_fixture("kiro/gar-cli-tooluse.response.bin")
    dec = _decode_all(data, [data[i : i + 1] for i in range(len(data))])
    assert dec.errors == []
    assert [e.event for e in dec.events][:2] == ["initial-response", "toolUseEvent"]
    assert len(dec.events) == 18


def test_worked_example_first_frame() -> None:
    """§5's hexdump of the first Kiro frame."""
    data = read_fixture("kiro/gar-cli-text.response.bin")
    first = decode_frame(data[:133])
    assert first.total_length == 133
    assert first.headers == {
        ":event-type": "initial-response",
        ":content-type": "application/x-amz-json-1.0",
        ":message-type": "event",
    }
    assert first.payload == b'{"conversationId":""}'
    ev = _decode_all(data).events[1]
    assert ev.event == "assistantResponseEvent"
    assert ev.data == {"content": "##", "modelId": "auto"}
    assert ev.headers[":content-type"] == "application/json"


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


def test_payload_value_json_text_and_binary() -> None:
    assert payload_value(b'{"a":1}') == {"a": 1}
    assert payload_value(b"plain text") == "plain text"
    assert payload_value(b"\xff\xfe") == {"base64": "//4="}
    assert payload_value(b"") is None


def _three_frames() -> bytes:
    return b"".join(event_frame("assistantResponseEvent", {"content": c}) for c in "abc")


def test_flipped_payload_byte_is_a_message_crc_error() -> None:
    data = bytearray(_three_frames())
    second = len(event_frame("assistantResponseEvent", {"content": "a"}))
    data[second + 40] ^= 0x01  # inside frame 2's headers/payload, not its prelude
    dec = _decode_all(bytes(data), split_random(bytes(data), 5, 1, 9))
    assert [e.data["content"] for e in dec.events] == ["a"]
    assert len(dec.errors) == 1
    assert "message CRC mismatch" in dec.errors[0]
    assert dec.failed
    # The decoder is only an observer: later bytes are ignored, nothing raises.
    assert dec.feed(event_frame("x", {}), 1.0) == []
    assert len(dec.errors) == 1


def test_flipped_prelude_byte_is_a_prelude_crc_error() -> None:
    data = bytearray(_three_frames())
    second = len(event_frame("assistantResponseEvent", {"content": "a"}))
    data[second + 2] ^= 0x40  # frame 2's total_length
    dec = _decode_all(bytes(data))
    assert len(dec.events) == 1
    assert len(dec.errors) == 1 and "prelude CRC mismatch" in dec.errors[0]


def test_flipped_byte_in_real_capture() -> None:
    data = bytearray(read_fixture("kiro/gar-cli-text.response.bin"))
    data[5000] ^= 0xFF
    dec = _decode_all(bytes(data), split_random(bytes(data), 1, 1, 300))
    assert len(dec.errors) == 1 and "CRC mismatch" in dec.errors[0]
    assert 1 < len(dec.events) < 76
    assert dec.consumed < 5000


@pytest.mark.parametrize("cut", [5, 12, 20, -1])
def test_truncated_stream_is_reported_on_close(cut: int) -> None:
    data = _three_frames()
    two = len(data) * 2 // 3
    dec = _decode_all(data[: two + cut] if cut >= 0 else data[:-1])
    assert [e.data["content"] for e in dec.events] == ["a", "b"]
    assert len(dec.errors) == 1 and dec.errors[0].startswith("truncated frame")


def test_clean_end_has_no_error() -> None:
    dec = _decode_all(b"")
    assert dec.errors == [] and dec.events == []


def _prelude(total: int, hlen: int) -> bytes:
    head = struct.pack(">II", total, hlen)
    return head + struct.pack(">I", zlib.crc32(head))


@pytest.mark.parametrize(
    ("total", "hlen", "message"),
    [
        (10, 0, "impossible frame lengths"),
        (100, 90, "impossible frame lengths"),
        (MAX_HEADERS_LEN + 1000, MAX_HEADERS_LEN + 1, "headers too long"),
        (MAX_PAYLOAD_LEN + 100, 0, "payload too long"),
    ],
)
def test_impossible_lengths_fail_at_the_prelude(total: int, hlen: int, message: str) -> None:
    dec = EventStreamDecoder()
    # Fails as soon as the 12-byte prelude is in: no waiting for (or buffering) the rest.
    assert dec.feed(_prelude(total, hlen), 0.0) == []
    assert len(dec.errors) == 1 and message in dec.errors[0]


def test_malformed_headers_with_valid_crcs() -> None:
    bad_headers = b"\x01x\x0a"  # value type 10 does not exist
    total = 16 + len(bad_headers)
    head = struct.pack(">II", total, len(bad_headers))
    frame = head + struct.pack(">I", zlib.crc32(head)) + bad_headers
    frame += struct.pack(">I", zlib.crc32(frame))
    dec = _decode_all(event_frame("ok", {}) + frame)
    assert [e.event for e in dec.events] == ["ok"]
    assert "unknown value type 10" in dec.errors[0]
    with pytest.raises(EventStreamError):
        split_frames(frame)


def test_make_decoder_knows_eventstream() -> None:
    assert isinstance(make_decoder("eventstream"), EventStreamDecoder)


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

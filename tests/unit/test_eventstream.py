"""AWS event-stream decoding and encoding (docs/wire-formats.md §5)."""

from __future__ import annotations

import struct
import zlib

import pytest

from flowbook.model import StreamEvent
from flowbook.streams import make_decoder
from flowbook.streams.eventstream import (
    MAX_HEADERS_LEN,
    MAX_PAYLOAD_LEN,
    EventStreamDecoder,
    EventStreamError,
    decode_frame,
    payload_value,
    split_frames,
)
from flowbook.streams.eventstream_encode import (
    event_frame,
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

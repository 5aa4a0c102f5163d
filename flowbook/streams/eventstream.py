"""AWS event-stream binary framing (``application/vnd.amazon.eventstream``), incrementally.

Used by Kiro/CodeWhisperer and Bedrock (docs/wire-formats.md §5). Each message is::

    total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32

all big-endian, both CRCs standard CRC-32 (``zlib.crc32``). Frames are split across HTTP chunks
at any byte, so the decoder buffers until a whole frame is present. A bad CRC or an impossible
length means the byte stream can no longer be trusted (there is no frame marker to resync on):
the decoder records the problem in ``errors`` and stops decoding. It never raises; the capture
pipeline keeps forwarding the bytes either way, the decoder only observes them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

from flowbook.model import StreamEvent
from flowbook.streams.base import FramingDecoder

PRELUDE_LEN = 12  # total_length + headers_length + prelude_crc
OVERHEAD = 16  # prelude + message_crc
MAX_HEADERS_LEN = 128 * 1024  # botocore's limits
MAX_PAYLOAD_LEN = 16 * 1024 * 1024

# Header value types (botocore EventStreamHeaderParser._HEADER_TYPE_MAP).
BOOL_TRUE, BOOL_FALSE, BYTE, SHORT, INTEGER, LONG, BYTE_ARRAY, STRING, TIMESTAMP, UUID = range(10)
_INT_FORMATS = {BYTE: ">b", SHORT: ">h", INTEGER: ">i", LONG: ">q"}

HeaderValue = bool | int | bytes | str | dt.datetime | uuid.UUID


class EventStreamError(ValueError):
    """A frame that cannot be decoded: bad CRC, impossible length, malformed headers."""


@dataclass
class Frame:
    """One decoded message: typed header values and the raw payload."""

    headers: dict[str, HeaderValue]
    payload: bytes
    total_length: int


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """Decode a headers section into ``name -> value`` with native Python types.

    byte/short/integer/long become ``int``, byte arrays ``bytes``, timestamps an aware UTC
    ``datetime``, UUIDs ``uuid.UUID``. Raises EventStreamError on malformed input.
    """
    headers: dict[str, HeaderValue] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            name_len = data[i]
            name = data[i + 1 : i + 1 + name_len].decode("utf-8")
            i += 1 + name_len
            kind = data[i]
            i += 1
            value: HeaderValue
            if kind in (BOOL_TRUE, BOOL_FALSE):
                value = kind == BOOL_TRUE
            elif kind in _INT_FORMATS:
                fmt = _INT_FORMATS[kind]
                (value,) = struct.unpack_from(fmt, data, i)
                i += struct.calcsize(fmt)
            elif kind in (BYTE_ARRAY, STRING):
                (length,) = struct.unpack_from(">H", data, i)
                raw = data[i + 2 : i + 2 + length]
                if len(raw) != length:
                    raise EventStreamError(f"header {name!r} value runs past the headers")
                value = raw.decode("utf-8") if kind == STRING else bytes(raw)
                i += 2 + length
            elif kind == TIMESTAMP:
                (millis,) = struct.unpack_from(">q", data, i)
                value = dt.datetime.fromtimestamp(millis / 1000.0, tz=dt.UTC)
                i += 8
            elif kind == UUID:
                raw = data[i : i + 16]
                if len(raw) != 16:
                    raise EventStreamError(f"header {name!r} uuid runs past the headers")
                value = uuid.UUID(bytes=bytes(raw))
                i += 16
            else:
                raise EventStreamError(f"header {name!r} has unknown value type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed headers at byte {i}: {exc}") from exc
    if i != n:
        raise EventStreamError("headers overrun their declared length")
    return headers


def check_prelude(buf: bytes | bytearray) -> tuple[int, int]:
    """Validate the 12-byte prelude at the start of ``buf``; return (total, headers) lengths."""
    total, hlen, prelude_crc = struct.unpack_from(">III", buf, 0)
    if zlib.crc32(bytes(buf[0:8])) != prelude_crc:
        raise EventStreamError(
            f"prelude CRC mismatch (got {zlib.crc32(bytes(buf[0:8])):08x}, "
            f"frame says {prelude_crc:08x})"
        )
    if total < OVERHEAD or hlen > total - OVERHEAD:
        raise EventStreamError(f"impossible frame lengths: total={total} headers={hlen}")
    if hlen > MAX_HEADERS_LEN:
        raise EventStreamError(f"headers too long: {hlen} > {MAX_HEADERS_LEN}")
    if total - hlen - OVERHEAD > MAX_PAYLOAD_LEN:
        raise EventStreamError(f"payload too long: {total - hlen - OVERHEAD} > {MAX_PAYLOAD_LEN}")
    return total, hlen


def decode_frame(frame: bytes) -> Frame:
    """Decode one complete frame (exactly ``total_length`` bytes), checking both CRCs."""
    if len(frame) < PRELUDE_LEN:
        raise EventStreamError("truncated frame")
    total, hlen = check_prelude(frame)
    if len(frame) != total:
        raise EventStreamError(f"frame is {len(frame)} bytes, prelude says {total}")
    (message_crc,) = struct.unpack_from(">I", frame, total - 4)
    actual = zlib.crc32(frame[: total - 4])
    if actual != message_crc:
        raise EventStreamError(
            f"message CRC mismatch (got {actual:08x}, frame says {message_crc:08x})"
        )
    headers = parse_headers(frame[PRELUDE_LEN : PRELUDE_LEN + hlen])
    return Frame(headers, frame[PRELUDE_LEN + hlen : total - 4], total)


def split_frames(data: bytes) -> list[Frame]:
    """Every frame of a complete body. Strict: raises EventStreamError on any problem."""
    frames: list[Frame] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < PRELUDE_LEN:
            raise EventStreamError("truncated frame")
        total, _ = check_prelude(data[pos : pos + PRELUDE_LEN])
        frames.append(decode_frame(data[pos : pos + total]))
        pos += total
    return frames


def payload_value(payload: bytes) -> Any:
    """The payload as JSON when it parses, else text, else ``{"base64": …}``."""
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(payload).decode("ascii")}


def jsonable_headers(headers: dict[str, HeaderValue]) -> dict[str, Any]:
    """Header values JSON can keep: bytes → base64 text, timestamps → ISO 8601, UUID → str."""
    out: dict[str, Any] = {}
    for name, value in headers.items():
        if isinstance(value, bytes):
            out[name] = base64.b64encode(value).decode("ascii")
        elif isinstance(value, (dt.datetime, uuid.UUID)):
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else str(value)
        else:
            out[name] = value
    return out


def frame_event(frame: Frame, t: float) -> StreamEvent:
    """A StreamEvent for one frame: named by ``:event-type`` (or the exception/error type)."""
    h = frame.headers
    name = h.get(":event-type") or h.get(":exception-type") or h.get(":error-code")
    return StreamEvent(
        t=t,
        event=str(name) if name is not None else None,
        data=payload_value(frame.payload),
        headers=jsonable_headers(h),
    )


class EventStreamDecoder(FramingDecoder):
    """Incremental decoder: feed any chunking of the body, get one StreamEvent per frame.

    ``frame_count`` and ``consumed`` (bytes of complete, valid frames) let callers check that the
    frames add up to the body. After the first error ``failed`` is True and feed() returns [].
    """

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._need: int | None = None  # total_length of the frame being collected
        self.failed = False
        self.frame_count = 0
        self.consumed = 0

    def feed(self, data: bytes, t: float | None = None) -> list[StreamEvent]:
        if self.failed:
            return []
        t = self.now(t)
        self._buf += data
        events: list[StreamEvent] = []
        try:
            self._drain(events, t)
        except EventStreamError as exc:
            self._fail(f"frame {self.frame_count} at byte {self.consumed}: {exc}")
        except Exception as exc:  # a decoder bug must not reach traffic handling
            self._fail(f"frame {self.frame_count} at byte {self.consumed}: internal error {exc!r}")
        return events

    def _drain(self, events: list[StreamEvent], t: float) -> None:
        buf = self._buf
        pos = 0
        while True:
            if self._need is None:
                if len(buf) - pos < PRELUDE_LEN:
                    break
                # Check the prelude as soon as it is here: a corrupt length must not make us
                # wait for (and buffer) megabytes that will never form a frame.
                self._need, _ = check_prelude(buf[pos : pos + PRELUDE_LEN])
            if len(buf) - pos < self._need:
                break
            frame = decode_frame(bytes(buf[pos : pos + self._need]))
            pos += self._need
            self.consumed += self._need
            self.frame_count += 1
            self._need = None
            # Drop consumed bytes before the next step so an error in a later frame keeps the
            # accounting right.
            del buf[:pos]
            pos = 0
            events.append(frame_event(frame, t))

    def _fail(self, message: str) -> None:
        self.failed = True
        self.errors.append(message)
        self._buf = bytearray()

    def close(self, t: float | None = None) -> list[StreamEvent]:
        if not self.failed and self._buf:
            self._fail(
                f"truncated frame: {len(self._buf)} bytes left after frame {self.frame_count}"
                + (f" (frame needs {self._need})" if self._need else "")
            )
        return []

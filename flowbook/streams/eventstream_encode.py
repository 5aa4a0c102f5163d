"""Build AWS event-stream frames (docs/wire-formats.md §5, "Building synthetic frames").

The inverse of :mod:`flowbook.streams.eventstream`. Tests use it for cases the recordings lack
(exceptions, ``metadataEvent``, Bedrock ``chunk`` frames), and flowbook's fake upstream server
uses it to speak Kiro and Bedrock.
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

from flowbook.streams.eventstream import (
    BOOL_FALSE,
    BOOL_TRUE,
    BYTE,
    BYTE_ARRAY,
    INTEGER,
    LONG,
    SHORT,
    STRING,
    TIMESTAMP,
    UUID,
)


@dataclass(frozen=True)
class Typed:
    """A header value with an explicit wire type, e.g. ``Typed(SHORT, 7)`` or ``Typed(BYTE, -1)``.

    Plain Python values pick their type themselves: str → string, bytes → byte array,
    bool → bool, int → integer (long when it does not fit 32 bits), datetime → timestamp,
    uuid.UUID → uuid.
    """

    type: int
    value: Any


def _encode_value(value: Any) -> bytes:
    if isinstance(value, Typed):
        kind, v = value.type, value.value
    elif isinstance(value, bool):
        kind, v = (BOOL_TRUE if value else BOOL_FALSE), value
    elif isinstance(value, int):
        kind, v = (INTEGER if -(2**31) <= value < 2**31 else LONG), value
    elif isinstance(value, str):
        kind, v = STRING, value
    elif isinstance(value, (bytes, bytearray)):
        kind, v = BYTE_ARRAY, bytes(value)
    elif isinstance(value, dt.datetime):
        kind, v = TIMESTAMP, value
    elif isinstance(value, uuid.UUID):
        kind, v = UUID, value
    else:
        raise TypeError(f"no event-stream header type for {type(value).__name__}")
    head = bytes([kind])
    if kind in (BOOL_TRUE, BOOL_FALSE):
        return head
    if kind in (BYTE, SHORT, INTEGER, LONG):
        fmt = {BYTE: ">b", SHORT: ">h", INTEGER: ">i", LONG: ">q"}[kind]
        return head + struct.pack(fmt, int(v))
    if kind in (STRING, BYTE_ARRAY):
        raw = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        return head + struct.pack(">H", len(raw)) + raw
    if kind == TIMESTAMP:
        millis = v if isinstance(v, int) else round(v.timestamp() * 1000)
        return head + struct.pack(">q", millis)
    if kind == UUID:
        return head + (v.bytes if isinstance(v, uuid.UUID) else bytes(v))
    raise ValueError(f"unknown header type {kind}")


def encode_headers(headers: dict[str, Any]) -> bytes:
    """The headers section, in the dict's order."""
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        out += bytes([len(raw_name)]) + raw_name + _encode_value(value)
    return bytes(out)


def encode_frame(headers: dict[str, Any], payload: bytes) -> bytes:
    """One complete frame: prelude, prelude CRC, headers, payload, message CRC."""
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return frame + struct.pack(">I", zlib.crc32(frame))


def _payload(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode("utf-8")
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_frame(
    event_type: str,
    payload_obj: Any,
    message_type: str = "event",
    content_type: str = "application/json",
) -> bytes:
    """An event frame with the header order real Kiro/Bedrock frames use."""
    headers = {
        ":event-type": event_type,
        ":content-type": content_type,
        ":message-type": message_type,
    }
    return encode_frame(headers, _payload(payload_obj))


def exception_frame(exception_type: str, message: str, **fields: Any) -> bytes:
    """A ``:message-type: exception`` frame with a JSON ``{"message": …}`` payload."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, _payload({"message": message, **fields}))


def error_frame(error_code: str, error_message: str) -> bytes:
    """A ``:message-type: error`` frame (code and message travel in headers, no payload)."""
    headers = {
        ":error-code": error_code,
        ":error-message": error_message,
        ":message-type": "error",
    }
    return encode_frame(headers, b"")


def bedrock_chunk_frame(anthropic_event: dict[str, Any]) -> bytes:
    """A Bedrock invoke-with-response-stream ``chunk`` frame carrying one Anthropic event."""
    raw = json.dumps(anthropic_event, separators=(",", ":")).encode("utf-8")
    return event_frame("chunk", {"bytes": base64.b64encode(raw).decode("ascii")})

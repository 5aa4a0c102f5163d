"""Turning a flow into what the file store writes: its line, index row and search pieces.

A flow's full line is ``{"v": FLOW_LINE_VERSION, ...LLMFlow.to_dict()}`` (the JSONL export
format). Format 2 of the store keeps that line in the content store (``content.py``, cut into
chunks stored once) and writes to the segment only a reference line
``{"v": REF_LINE_VERSION, "id": ..., "r": <recipe hex>}``. Segments of format 1 hold full lines
and are read as they are. Lines written before the version field existed (and the reference's
``{"flow": {...}}`` wrapper) read back unchanged: ``flow_from_json`` treats a missing ``"v"`` as
version 0, whose layout is version 1's.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import orjson

from flowbook.model import LLMFlow
from flowbook.schema import FLOW_LINE_VERSION, summary_row
from flowbook.store.pieces import FlowPieces, flow_pieces

IMPORTED_AT = "imported_at"  # metadata.extra key set by import_jsonl
REF_LINE_VERSION = 2  # a segment line that refers to its flow's line in the content store


def _json_default(value: Any) -> Any:
    # A stray non-JSON value (bytes in params, a set in extra) must not lose the whole flow.
    if isinstance(value, bytes | bytearray):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# One encoder for every line (``json.dumps`` builds one per call). No circular-reference
# check: a flow's dict is a tree (a cycle would still fail, with RecursionError).
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_json_default, check_circular=False
)


_ORJSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def dumps_line(d: dict[str, Any]) -> bytes:
    """One JSONL line. JSON escapes newlines inside strings, so the line has exactly one.

    orjson writes it (a flow's line is most of the file store's CPU per flow, and orjson takes a
    third of the stdlib's time); what it refuses (an int beyond 64 bits, a lone surrogate) goes
    through the stdlib encoder, which writes the same JSON values."""
    try:
        return orjson.dumps(d, default=_json_default, option=_ORJSON_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        return _ENCODER.encode(d).encode("utf-8", "surrogatepass") + b"\n"


def flow_line(flow: LLMFlow) -> bytes:
    """The versioned JSONL line that stores ``flow``."""
    return dumps_line({"v": FLOW_LINE_VERSION, **flow.to_dict()})


def ref_line(flow_id: str, rh: bytes) -> bytes:
    """The segment line of a flow whose full line is in the content store under ``rh``."""
    # The bytes of ``dumps_line({"v": 2, "id": flow_id, "r": rh.hex()})``, built directly.
    head = f'{{"v":{REF_LINE_VERSION},"id":{_ENCODER.encode(flow_id)},"r":"{rh.hex()}"}}\n'
    return head.encode("utf-8")


def ref_of(d: Any) -> bytes | None:
    """The recipe hash a decoded segment line refers to, or None for a full (format 1) line."""
    if isinstance(d, dict) and d.get("v") == REF_LINE_VERSION and isinstance(d.get("r"), str):
        try:
            return bytes.fromhex(d["r"])
        except ValueError:
            return None
    return None


def search_texts(flow: LLMFlow) -> tuple[str, str]:
    """(request text, response text) indexed for ``request:``/``response:``/``content:``."""
    request = flow.request.plain_text()
    response = flow.response.plain_text() if flow.response else ""
    if flow.error and flow.error.message:
        response = f"{response}\n{flow.error.message}" if response else flow.error.message
    return request, response


@dataclass
class Record:
    """A flow ready to store: its full line, summary row, search pieces and retention start."""

    id: str
    line: bytes  # the full line (format 1), or the segment line when read back from one
    row: dict[str, Any]
    pieces: FlowPieces
    retain_from: float


def record_for(flow: LLMFlow, line: bytes | None = None) -> Record:
    """Everything the store needs from a flow (``line`` given when it is already on disk)."""
    row = summary_row(flow)
    # Retention counts from capture, or from the import for loaded flows: loading last month's
    # session file must not hand it straight to the next cleanup.
    imported = flow.metadata.extra.get(IMPORTED_AT)
    retain_from = float(imported) if isinstance(imported, int | float) else float(row["timestamp"])
    if line is None:
        line = flow_line(flow)
    return Record(flow.id, line, row, flow_pieces(flow), retain_from)


def parse_line(data: bytes) -> LLMFlow | None:
    """The flow stored in a line, or None when the line is not a flow (corrupt, other record)."""
    try:
        d = json.loads(data)
    except ValueError:
        return None
    return flow_from_json(d)


def flow_from_json(d: Any) -> LLMFlow | None:
    """A flow from a decoded JSON value: a (versioned or unversioned) flow dict or
    ``{"flow": {...}}``; None for anything else. A line from a newer flowbook is read as the
    newest layout this one knows (it fails to None only if that layout does not fit)."""
    if isinstance(d, dict) and "flow" in d and isinstance(d["flow"], dict):
        d = d["flow"]
    if not isinstance(d, dict):
        return None
    version = d.get("v", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    if "v" in d:
        d = {k: v for k, v in d.items() if k != "v"}
    if not isinstance(d.get("id"), str) or "request" not in d:
        return None
    try:
        return LLMFlow.from_dict(d)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None

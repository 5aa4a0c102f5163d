"""JSON parsing on the capture's hot path: orjson first, the stdlib for what orjson refuses.

orjson parses a stream event in about a third of the stdlib's time, and a streamed response is
dozens of events. It is stricter than the stdlib (no ``NaN``/``Infinity``, integers within 64
bits, no lone surrogates); such input is parsed again by ``json.loads``, so every document
parses exactly as before and invalid JSON raises the stdlib's ``json.JSONDecodeError``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """``json.loads(data)``, faster."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)

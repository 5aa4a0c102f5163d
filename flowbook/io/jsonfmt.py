"""flowbook's lossless formats: JSON (an array of flows) and JSONL (one flow per line, the file
store's own line format). Both load back with ``fb.load``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from flowbook.model import LLMFlow


def _default(value: Any) -> Any:
    from flowbook.store.records import _json_default

    return _json_default(value)


def write_json(flows: Iterable[LLMFlow], out: TextIO) -> int:
    """A JSON array of full flows, written flow by flow."""
    n = 0
    out.write("[")
    for flow in flows:
        out.write(",\n" if n else "\n")
        out.write(json.dumps(flow.to_dict(), ensure_ascii=False, indent=2, default=_default))
        n += 1
    out.write("\n]\n")
    return n


def write_jsonl(flows: Iterable[LLMFlow], out: TextIO) -> int:
    """One compact flow per line, newline-terminated."""
    n = 0
    for flow in flows:
        line = json.dumps(flow.to_dict(), ensure_ascii=False, separators=(",", ":"),
                          default=_default)  # fmt: skip
        out.write(line + "\n")
        n += 1
    return n

"""``fb.load(path)``: HAR, mitmproxy flow files, flowbook JSONL and JSON exports, by content.

The format is sniffed from the bytes, not trusted from the file name: a ``.json`` may be a HAR,
a flowbook JSON export or one flow; JSONL is one flow per line (``.gz`` too); anything that
starts like a tnetstring is a mitmproxy flow file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from flowbook.io import source
from flowbook.model import LLMFlow


def detect_format(path: Path) -> str:
    """``har``, ``json``, ``jsonl`` or ``mitmproxy`` (raises ValueError when it is none)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:2] == b"\x1f\x8b" or path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1].isdigit():
        return "mitmproxy"  # tnetstring: "<length>:"
    if stripped[:1] == b"[":
        return "json"
    if stripped[:1] == b"{":
        text = path.read_text("utf-8-sig")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if "Extra data" in str(exc):
                return "jsonl"
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(doc, dict) and "log" in doc:
            return "har"
        return "json"
    raise ValueError(
        f"{path}: unknown format; fb.load reads HAR (.har), mitmproxy flow files "
        f"(mitmdump -w), flowbook JSONL and flowbook JSON exports"
    )


def read_flows(path: str | Path, fmt: str | None = None) -> list[LLMFlow]:
    """The LLM flows in a file, without storing them."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    fmt = fmt or detect_format(p)
    if fmt == "har":
        from flowbook.io import har_import

        return list(har_import.read(json.loads(p.read_text("utf-8-sig"))))
    if fmt == "mitmproxy":
        from flowbook.io import mitmproxy_io

        with open(p, "rb") as f:
            try:
                return list(mitmproxy_io.read(f))
            except Exception as exc:  # mitmproxy raises FlowReadException and friends
                raise ValueError(f"{p} is not a readable mitmproxy flow file: {exc}") from None
    if fmt == "json":
        return list(_json_flows(json.loads(p.read_text("utf-8-sig")), p))
    if fmt == "jsonl":
        import gzip

        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as f:
            return list(_json_flows([json.loads(line) for line in f if line.strip()], p))
    raise ValueError(f"unknown import format {fmt!r}")


def _json_flows(doc: object, path: Path) -> Iterable[LLMFlow]:
    from flowbook.store.records import flow_from_json

    items = doc if isinstance(doc, list) else (doc.get("flows") if isinstance(doc, dict)
                                               and "flows" in doc else [doc])  # fmt: skip
    flows = [flow_from_json(d) for d in items or []]
    good = [f for f in flows if f is not None]
    if not good and items:
        raise ValueError(f"{path} holds no flowbook flows")
    return good


def load(path: str | Path) -> list[str]:
    """Import every LLM call in ``path`` into the store; returns the ids added (flows already
    stored are skipped, so loading a file twice adds nothing the second time)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    fmt = detect_format(p)
    if fmt == "jsonl":
        return source.load_jsonl(p)
    return source.add_flows(read_flows(p, fmt))

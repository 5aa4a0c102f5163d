"""``fb.export``: one entry point for every format, streaming to disk for large selections."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flowbook.io import source
from flowbook.io.prepare import ExportOptions, prepare
from flowbook.io.progress import Progress
from flowbook.io.selection import Selection, resolve
from flowbook.model import LLMFlow
from flowbook.redact import RedactionRules

FORMATS = ("har", "markdown", "json", "jsonl", "csv", "parquet", "mitmproxy")
_ALIASES = {"md": "markdown", "ndjson": "jsonl", "mitm": "mitmproxy", "flows": "mitmproxy",
            "mitmdump": "mitmproxy", "pq": "parquet"}  # fmt: skip


def normalise_format(fmt: str) -> str:
    f = str(fmt).strip().lower()
    f = _ALIASES.get(f, f)
    if f not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return f


def _prepared(sel: Selection, opts: ExportOptions, progress: Progress) -> Iterator[LLMFlow]:
    for flow in sel.flows():
        yield prepare(flow, opts)
        progress.update(1)


def export(
    selection: Any = None,
    format: str = "har",
    path: str | Path | None = None,
    *,
    include_request_body: bool = True,
    include_response_body: bool = True,
    redact_sensitive: bool = True,
    include_history: bool = False,
    rules: RedactionRules | None = None,
    progress: bool | None = None,
) -> str | bytes | Path:
    """Export flows; see :func:`flowbook.api.export`."""
    fmt = normalise_format(format)
    opts = ExportOptions(include_request_body, include_response_body, redact_sensitive, rules)
    sel = resolve(selection, include_history=include_history)
    rules_used = opts.redaction() if redact_sensitive else None
    target = Path(path).expanduser() if path is not None else None
    if fmt == "parquet":
        if target is None:
            raise ValueError("Parquet export writes a directory: pass path=, e.g. 'flows-parquet/'")
        from flowbook.io.tabular import write_parquet

        def get(flow_id: str) -> LLMFlow | None:  # one flow at a time, prepared on demand
            flow = sel.given.get(flow_id) or source.get_flow(flow_id)
            return prepare(flow, opts) if flow is not None else None

        return write_parquet(sel.frame, target, rules_used, get,
                             include_request_body or include_response_body)  # fmt: skip
    bar = Progress(len(sel), f"export {fmt}", enabled=progress if target is not None else False)
    with bar:
        flows = _prepared(sel, opts, bar)
        if fmt == "mitmproxy":
            from flowbook.io import mitmproxy_io

            if target is None:
                buf = io.BytesIO()
                mitmproxy_io.write(flows, buf)
                return buf.getvalue()
            return _atomic(target, "wb", lambda f: mitmproxy_io.write(flows, f))
        writer = _text_writer(fmt, sel, flows, rules_used)
        if target is None:
            sbuf = io.StringIO()
            writer(sbuf)
            return sbuf.getvalue()
        return _atomic(target, "w", writer)


def _text_writer(fmt: str, sel: Selection, flows: Iterable[LLMFlow],
                 rules: RedactionRules | None) -> Any:  # fmt: skip
    if fmt == "har":
        from flowbook.io import har

        return lambda out: har.write(flows, out)
    if fmt == "json":
        from flowbook.io.jsonfmt import write_json

        return lambda out: write_json(flows, out)
    if fmt == "jsonl":
        from flowbook.io.jsonfmt import write_jsonl

        return lambda out: write_jsonl(flows, out)
    if fmt == "markdown":
        from flowbook.io.markdown import write_markdown

        return lambda out: write_markdown(flows, out, summary=sel.frame)
    from flowbook.io.tabular import write_csv

    def csv_writer(out: Any) -> int:
        for _ in flows:  # drives the progress bar; CSV needs only the summary rows
            pass
        return write_csv(sel.frame, out, rules)

    return csv_writer


def _atomic(target: Path, mode: str, write: Any) -> Path:
    """Write to ``target`` through a temporary file, so a failed export leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    kw: dict[str, Any] = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    try:
        with open(tmp, mode, **kw) as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target

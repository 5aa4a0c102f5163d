"""mitmproxy flow files: write flows so mitmweb/mitmproxy open them (``mitmweb -r FILE``), and
read files written by ``mitmdump -w`` (or mitmweb's "Save") into rebuilt LLMFlows.

Both sides use mitmproxy's own :mod:`mitmproxy.io` (FlowWriter/FlowReader), so the file format
is whatever the installed mitmproxy writes and reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO
from urllib.parse import urlsplit

from mitmproxy import connection, http, io
from mitmproxy import flow as mflow

from flowbook.io.builder import Exchange, build_flow
from flowbook.model import LLMFlow

FLOWBOOK_KEY = "flowbook_id"  # mitmproxy flow metadata key holding the flowbook id


def _addr(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    try:
        return (host.strip("[]") or text, int(port))
    except ValueError:
        return None


def to_mitmproxy(flow: LLMFlow) -> http.HTTPFlow:
    """An HTTPFlow holding the flow's request, response, error, times and annotations."""
    req = flow.request
    ts = flow.timestamps
    url = urlsplit(req.url or f"http://{req.host or 'localhost'}{req.path}")
    scheme = url.scheme or "http"
    port = url.port or (443 if scheme == "https" else 80)
    path = req.path or ((url.path or "/") + (f"?{url.query}" if url.query else ""))
    sent = ts.request_sent or ts.created
    client = connection.Client(
        peername=_addr(flow.metadata.client_address) or ("127.0.0.1", 0),
        sockname=("127.0.0.1", 0), timestamp_start=ts.created)  # fmt: skip
    server = connection.Server(address=(url.hostname or req.host, port))
    server.timestamp_start = ts.created
    hf = http.HTTPFlow(client, server)
    hf.request = http.Request(
        host=url.hostname or req.host, port=port, method=req.method.encode(),
        scheme=scheme.encode(), authority=b"", path=path.encode("utf-8", "surrogateescape"),
        http_version=b"HTTP/1.1",
        headers=http.Headers([(k.encode(), v.encode("utf-8", "replace"))
                              for k, v in req.headers.items()]),
        content=req.body or b"", trailers=None, timestamp_start=ts.created, timestamp_end=sent,
    )  # fmt: skip
    resp = flow.response
    if resp is not None:
        end = ts.completed or ts.first_byte or sent
        r = http.Response(
            http_version=b"HTTP/1.1", status_code=resp.status_code,
            reason=(resp.reason or "").encode("utf-8", "replace"),
            headers=http.Headers([(k.encode(), v.encode("utf-8", "replace"))
                                  for k, v in resp.headers.items()]),
            content=None, trailers=None, timestamp_start=ts.first_byte or sent,
            timestamp_end=end,
        )  # fmt: skip
        try:
            r.content = resp.body or b""  # re-applies the recorded content-encoding
        except ValueError:
            r.headers.pop("content-encoding", None)
            r.raw_content = resp.body or b""
        hf.response = r
    if flow.error is not None and (resp is None or flow.state == "cancelled"):
        hf.error = mflow.Error(flow.error.message, timestamp=ts.completed or sent)
    hf.comment = flow.annotations.comment or ""
    hf.marked = ":star:" if flow.annotations.bookmarked else ""
    hf.metadata[FLOWBOOK_KEY] = flow.id
    return hf


def write(flows: Iterable[LLMFlow], out: BinaryIO) -> int:
    """Write flows as a mitmproxy flow file; returns the count."""
    writer = io.FlowWriter(out)
    n = 0
    for flow in flows:
        writer.add(to_mitmproxy(flow))
        n += 1
    return n


def exchange(hf: http.HTTPFlow) -> Exchange:
    """The exchange an HTTPFlow recorded (bodies decoded by mitmproxy)."""
    rq, rs = hf.request, hf.response
    meta_id = hf.metadata.get(FLOWBOOK_KEY)
    flow_id = meta_id if isinstance(meta_id, str) else hashlib.sha256(
        hf.id.encode()).hexdigest()[:16]  # fmt: skip
    peer = hf.client_conn.peername
    server = hf.server_conn.peername or hf.server_conn.address
    return Exchange(
        method=rq.method,
        url=rq.pretty_url,
        request_headers={k: v for k, v in rq.headers.items(multi=True)},
        request_body=rq.get_content(strict=False) or b"",
        status=rs.status_code if rs is not None else None,
        reason=rs.reason if rs is not None else "",
        response_headers={k: v for k, v in rs.headers.items(multi=True)} if rs else {},
        response_body=(rs.get_content(strict=False) or b"") if rs is not None else None,
        response_body_decoded=True,
        created=rq.timestamp_start,
        request_sent=rq.timestamp_end,
        first_byte=rs.timestamp_start if rs is not None else None,
        completed=(rs.timestamp_end if rs is not None else None)
        or (hf.error.timestamp if hf.error else None),
        error=hf.error.msg if hf.error else None,
        client_address=f"{peer[0]}:{peer[1]}" if peer else None,
        server_address=f"{server[0]}:{server[1]}" if server else None,
        flow_id=flow_id,
    )


def read(f: BinaryIO) -> Iterator[LLMFlow]:
    """LLM flows in a mitmproxy flow file (non-LLM and non-HTTP flows are skipped)."""
    for hf in io.FlowReader(f).stream():
        if not isinstance(hf, http.HTTPFlow):
            continue
        flow = build_flow(exchange(hf))
        if flow is None:
            continue
        if hf.comment:
            flow.annotations.comment = hf.comment
        if hf.marked:
            flow.annotations.bookmarked = True
        yield flow

"""The 'bare mitmproxy' baseline: mitmdump with only what streaming needs (no capture)."""

from mitmproxy import http


def responseheaders(flow: http.HTTPFlow) -> None:
    ct = flow.response.headers.get("content-type", "") if flow.response else ""
    if "event-stream" in ct:
        flow.response.stream = True

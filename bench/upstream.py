"""A minimal, fast loopback upstream for the benchmarks (run as its own process).

``POST /json`` answers a small chat.completion at once; ``POST /sse`` waits ``--ttft`` seconds,
then sends ``--events`` SSE chunks ``--gap`` seconds apart. Kept deliberately simpler than the
fake LLM server so the upstream's own cost does not blur the proxies' overhead.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()


def sse_events(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
        }
        out.append(f"data: {json.dumps(chunk)}\n\n".encode())
    out.append(b"data: [DONE]\n\n")
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms) and buries the proxies' overhead in noise.
    disable_nagle_algorithm = True
    ttft = 0.05
    gap = 0.005
    events = 20

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(self.ttft)
            for i, ev in enumerate(sse_events(self.events)):
                if i:
                    time.sleep(self.gap)
                self.wfile.write(f"{len(ev):x}\r\n".encode() + ev + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        else:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(JSON_BODY)))
            self.end_headers()
            self.wfile.write(JSON_BODY)

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # P3 opens 32 connections at once per proxy; the default backlog of 5 made the kernel drop
    # SYNs and the proxies answer 502 (bare mitmdump as well as flowbook) during the warm-up.
    request_queue_size = 128


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttft", type=float, default=0.05)
    ap.add_argument("--gap", type=float, default=0.005)
    ap.add_argument("--events", type=int, default=20)
    a = ap.parse_args()
    Handler.ttft, Handler.gap, Handler.events = a.ttft, a.gap, a.events
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.serve_forever()


if __name__ == "__main__":
    main()

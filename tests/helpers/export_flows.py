"""Flows for the export, import and code generation tests, rebuilt from the recorded traffic in
tests/fixtures/real through flowbook's own import builder (deterministic times and ids)."""

from __future__ import annotations

import hashlib

from flowbook.io.builder import Exchange, build_flow
from flowbook.model import LLMFlow
from tests.helpers.fixtures import load_cassette

CASSETTES = (
    "openai/chat-stream-toolcalls-include-usage.cassette.yaml",
    "openai/responses-stream-function-call-then-text.cassette.yaml",
    "openai/chat-error-404-model-not-found.cassette.yaml",
    "anthropic/messages-stream-thinking-signature.cassette.yaml",
    "anthropic/messages-stream-tool-use-gzip.cassette.yaml",
    "anthropic/messages-cache-write-then-read.cassette.yaml",
    "gemini/stream-alt-sse-functioncall-thoughts.cassette.yaml",
    "gemini/generate-content-cached-content-tokens.cassette.yaml",
    "openai-compatible/openrouter-stream-reasoning-then-error.cassette.yaml",
)
T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC: a fixed clock for snapshot-stable output


def exchange_for(relative: str, index: int, t: float) -> Exchange:
    ia = load_cassette(relative)[index]
    return Exchange(
        method=ia.request.method,
        url=ia.request.uri,
        request_headers=dict(ia.request.headers),
        request_body=ia.request.body,
        status=ia.response.status,
        reason=ia.response.reason,
        response_headers=dict(ia.response.headers),
        response_body=ia.response.body,
        response_body_decoded=False,
        created=t,
        request_sent=t + 0.002,
        first_byte=t + 0.350,
        completed=t + 1.250,
        flow_id=hashlib.sha256(f"{relative}#{index}".encode()).hexdigest()[:16],
    )


def fixture_flows() -> list[LLMFlow]:
    """Every interaction of :data:`CASSETTES` as an LLMFlow, one second apart."""
    flows: list[LLMFlow] = []
    t = T0
    for rel in CASSETTES:
        for i in range(len(load_cassette(rel))):
            x = exchange_for(rel, i, t)
            x.flow_id = f"{len(flows) + 1:04d}" + "f1ab0c" + f"{i:06d}"
            flow = build_flow(x)
            assert flow is not None, f"{rel}[{i}] was not detected as an LLM call"
            flows.append(flow)
            t += 1.0
    return flows

"""Every codec writes what its provider reads: parse a real response, encode it (streamed and
not), parse the encoding, and get the same neutral response back.

Sources are the recordings in tests/fixtures/real (OpenAI Chat and Responses, DeepSeek,
Anthropic, Gemini SSE and JSON-array, Bedrock ConverseStream, Kiro) and, for Ollama, which has
no recording, the NDJSON the fake upstream writes. Bedrock InvokeModel re-frames the Anthropic
recordings as event-stream ``chunk`` frames.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowbook.fake_upstream import ollama_fmt
from flowbook.fake_upstream.common import FakeRequest
from flowbook.model import Api, LLMRequest, LLMResponse
from flowbook.providers import registry
from flowbook.providers.base import Provider, RequestView
from flowbook.providers.codec import EVENTSTREAM_TYPE, JSON_TYPE, NDJSON_TYPE, SSE_TYPE
from tests.helpers.fixtures import (
    FeedResult,
    feed_in_random_chunks,
    feed_whole,
    load_cassette,
    read_fixture,
    run_interaction,
)

CASSETTES = [
    "openai/chat-stream-toolcalls-include-usage.cassette.yaml",
    "openai/responses-stream-function-call-then-text.cassette.yaml",
    "openai/responses-stream-reasoning-usage.cassette.yaml",
    "openai-compatible/deepseek-reasoner-stream.cassette.yaml",
    "anthropic/messages-cache-write-then-read.cassette.yaml",
    "anthropic/messages-stream-thinking-signature.cassette.yaml",
    "anthropic/messages-stream-tool-use-gzip.cassette.yaml",
    "anthropic/messages-stream-tool-use-input-json-delta.cassette.yaml",
    "gemini/generate-content-cached-content-tokens.cassette.yaml",
    "gemini/stream-alt-sse-functioncall-thoughts.cassette.yaml",
    "gemini/stream-json-array-thought-functioncall-gzip.cassette.yaml",
    "bedrock/converse-stream-claude-reasoning.cassette.yaml",
]


def neutral(r: LLMResponse) -> dict[str, Any]:
    """What a codec must carry both ways (ids and provider extras are not part of it)."""
    return {
        "model": r.model,
        "text": r.text,
        "thinking": r.thinking,
        "refusal": r.refusal,
        "tool_calls": [(c.name, c.arguments) for c in r.tool_calls],
        "stop_reason": r.stop_reason,
        "usage": (r.usage.input, r.usage.output) if r.usage else None,
    }


def recorded() -> list[tuple[str, Provider, FeedResult]]:
    """(id, provider, rebuilt recording) for every successful recorded model call."""
    out = []
    for name in CASSETTES:
        for i, ia in enumerate(load_cassette(name)):
            found = registry.detect(ia.request.view())
            assert found is not None, name
            provider, det = found
            if ia.response.status >= 400 or provider.codec(det.api) is None:
                continue
            result = run_interaction(provider, ia)
            assert result.error is None, (name, i, result.error)
            out.append((f"{name}#{i}", provider, result))
    return out


def kiro_recorded() -> list[tuple[str, Provider, FeedResult]]:
    row = json.loads(read_fixture("kiro/gar-cli-text.row.json"))
    view = RequestView(
        "POST",
        row["url"],
        "q.us-east-1.amazonaws.com",
        "/",
        row["reqHeaders"],
        row["reqBody"].encode(),
    )
    provider = registry.get("kiro")
    out = []
    for name in ("kiro/gar-cli-text.response.bin", "kiro/gar-cli-tooluse.response.bin"):
        result = feed_whole(provider, "kiro", view, EVENTSTREAM_TYPE, None, read_fixture(name))
        assert result.error is None
        out.append((name, provider, result))
    return out


def ollama_from_fake() -> list[tuple[str, Provider, FeedResult]]:
    provider = registry.get("ollama")
    out = []
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/api/chat", {"model": "llama3", "messages": [{"role": "user", "content": "hi there"}]}),
        (
            "/api/chat",
            {
                "model": "qwen3",
                "think": True,
                "messages": [{"role": "user", "content": "what is the weather?"}],
                "tools": [{"type": "function", "function": {"name": "get_weather"}}],
            },
        ),
        ("/api/generate", {"model": "llama3", "prompt": "say something", "think": True}),
    ]
    for path, body in cases:
        raw = json.dumps(body).encode()
        reply = ollama_fmt.chat(FakeRequest("POST", path, {}, {}, raw, body))
        wire = b"".join(reply.events or [])
        view = RequestView("POST", f"http://localhost:11434{path}", "localhost", path, {}, raw)
        view.port = 11434
        det = provider.detect(view)
        assert det is not None
        result = feed_whole(provider, det.api, view, NDJSON_TYPE, None, wire)
        assert result.error is None and (result.response.text or result.response.tool_calls)
        out.append((f"ollama{path}:{body['model']}", provider, result))
    return out


SOURCES = recorded() + kiro_recorded() + ollama_from_fake()
IDS = [s[0] for s in SOURCES]


def reparse(
    provider: Provider, api: str, request: LLMRequest, body: bytes, ctype: str, seed: int | None
) -> FeedResult:
    return feed_in_random_chunks(provider, api, request, ctype, None, body, seed)


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
@pytest.mark.parametrize(("name", "provider", "original"), SOURCES, ids=IDS)
def test_encode_then_parse_gives_the_same_response(
    name: str, provider: Provider, original: FeedResult, stream: bool
) -> None:
    api = _api(provider, original)
    codec = provider.codec(api)
    assert codec is not None
    encoded = codec.encode_response(original.response, stream=stream, request=original.request)
    want = neutral(original.response)
    assert want["text"] or want["tool_calls"], "the source must say something"
    for seed in (None, 3):
        again = reparse(provider, api, original.request, encoded.body, encoded.content_type, seed)
        assert again.error is None, (again.error, again.decoder_errors)
        assert not again.decoder_errors
        assert neutral(again.response) == want
    if stream and encoded.content_type != JSON_TYPE:
        # (Gemini's JSON-array stream is application/json; a generateContent call reads it whole.)
        assert again.streamed and again.events, "a stream must go through a framing decoder"
    if not stream and provider.name != "kiro":  # Kiro answers only with an event stream
        assert encoded.content_type == JSON_TYPE and isinstance(json.loads(encoded.body), dict)


def _api(provider: Provider, result: FeedResult) -> str:
    view = RequestView(
        "POST",
        result.request.url,
        result.request.host,
        result.request.path,
        result.request.headers,
        result.request.body or b"",
    )
    if provider.name == "ollama":
        view.port = 11434
    det = provider.detect(view)
    assert det is not None
    return det.api


ANTHROPIC = [s for s in SOURCES if s[1].name == "anthropic"]


@pytest.mark.parametrize(("name", "provider", "original"), ANTHROPIC, ids=[s[0] for s in ANTHROPIC])
def test_bedrock_invoke_frames_anthropic_events(
    name: str, provider: Provider, original: FeedResult
) -> None:
    """InvokeModelWithResponseStream: the same events, base64 in event-stream chunk frames."""
    bedrock = registry.get("bedrock")
    codec = bedrock.codec(Api.MESSAGES)
    assert codec is not None
    path = "/model/anthropic.claude-sonnet-4-5/invoke-with-response-stream"
    request = LLMRequest(url="https://bedrock-runtime.us-east-1.amazonaws.com" + path, path=path)
    encoded = codec.encode_response(original.response, stream=True, request=request)
    assert encoded.content_type == EVENTSTREAM_TYPE
    again = feed_whole(bedrock, "messages", request, encoded.content_type, None, encoded.body)
    assert again.error is None and again.framing == "eventstream"
    assert neutral(again.response) == neutral(original.response)


def test_stream_content_types() -> None:
    """Each API streams in its own framing; Gemini's depends on ``alt=sse``."""
    codecs = registry.api_codecs()
    assert codecs[Api.CHAT].stream_content_type() == SSE_TYPE
    assert codecs[Api.KIRO].stream_content_type() == EVENTSTREAM_TYPE
    assert codecs[Api.CONVERSE].stream_content_type() == EVENTSTREAM_TYPE
    assert codecs[Api.GENERATE].stream_content_type() == NDJSON_TYPE
    gemini = codecs[Api.GENERATE_CONTENT]
    assert (
        gemini.stream_content_type(LLMRequest(path="/x:streamGenerateContent?alt=sse")) == SSE_TYPE
    )
    assert gemini.stream_content_type(LLMRequest(path="/x:streamGenerateContent")) == JSON_TYPE


def test_rebuild_response_reads_bodies_streams_and_errors() -> None:
    """The one whole-body rebuild: framing chosen by the provider, errors by status."""
    from flowbook.providers.rebuild import rebuild_response

    provider = registry.get("anthropic")
    view = RequestView(
        "POST",
        "https://api.anthropic.com/v1/messages",
        "api.anthropic.com",
        "/v1/messages",
        {},
        b'{"stream": true}',
    )
    request = LLMRequest(model="claude")
    resp = LLMResponse(text="hi there", stop_reason="end_turn", model="claude")
    codec = provider.codec(Api.MESSAGES)
    assert codec is not None
    for stream in (False, True):
        enc = codec.encode_response(resp, stream=stream)
        rebuilt = rebuild_response(
            provider,
            "messages",
            request,
            view,
            status=200,
            headers={"Content-Type": enc.content_type},
            body=enc.body,
            keep_events=True,
            t=5.0,
        )
        assert rebuilt.error is None and rebuilt.parse_errors == []
        assert (rebuilt.response.text, rebuilt.response.stop_reason) == ("hi there", "end_turn")
        assert bool(rebuilt.response.events) is stream
    into = LLMResponse(status_code=200, reason="OK")
    enc = codec.encode_response(resp, stream=False)
    rebuilt = rebuild_response(
        provider,
        "messages",
        request,
        view,
        status=200,
        headers={"content-type": "application/json"},
        body=enc.body,
        into=into,
    )
    assert rebuilt.response is into and into.text == "hi there" and into.reason == "OK"
    err = codec.error_body(429, "slow down", code="x")
    rebuilt = rebuild_response(
        provider,
        "messages",
        request,
        view,
        status=429,
        headers={"content-type": "application/json"},
        body=json.dumps(err).encode(),
    )
    assert rebuilt.error is not None and rebuilt.error.message == "slow down"
    rebuilt = rebuild_response(
        provider,
        "messages",
        request,
        view,
        status=200,
        headers={"content-type": "application/json"},
        body=b"{not json",
    )
    assert rebuilt.parse_errors == ["response body is not valid JSON"]

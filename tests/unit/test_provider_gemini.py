"""Gemini generateContent: every recording rebuilt whole and in random chunks (SSE with CRLF,
gzip JSON-array streams, plain JSON), plus Vertex, Code Assist, mid-stream errors, safety
blocks, detection and error mapping."""

from __future__ import annotations

import json

import pytest

from flowbook.model import ErrorType, LLMRequest, LLMResponse, StreamEvent
from flowbook.providers import registry
from flowbook.providers.base import HOST, JSON, JSON_ARRAY, PATH, SHAPE, SSE, RequestView
from flowbook.providers.gemini import (
    GeminiAssembler,
    GeminiCodeAssistProvider,
    GeminiProvider,
    GeminiVertexProvider,
)
from tests.helpers.fixtures import (
    canonical,
    feed_in_random_chunks,
    feed_whole,
    load_cassette,
    read_fixture,
    run_interaction,
)

P = GeminiProvider()
SEEDS = range(5)
SSE_CASSETTE = "gemini/stream-alt-sse-functioncall-thoughts.cassette.yaml"
ARRAY_CASSETTE = "gemini/stream-json-array-thought-functioncall-gzip.cassette.yaml"
CACHED = "gemini/generate-content-cached-content-tokens.cassette.yaml"
CASSETTES = [
    CACHED,
    "gemini/generate-content-error-404.cassette.yaml",
    SSE_CASSETTE,
    ARRAY_CASSETTE,
]
CASES = [(c, i) for c in CASSETTES for i in range(len(load_cassette(c)))]


def chunks_of(ia_body: bytes, framing: str) -> list[dict]:
    """The recorded chunks read naively, for expected values."""
    text = ia_body.decode()
    if framing == JSON_ARRAY:
        return json.loads(text)
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def expected_output(chunks: list[dict]) -> tuple[str, str, dict]:
    text = thinking = ""
    for c in chunks:
        for part in c["candidates"][0]["content"].get("parts", []):
            if "text" in part:
                if part.get("thought"):
                    thinking += part["text"]
                else:
                    text += part["text"]
    return text, thinking, chunks[-1]["usageMetadata"]


@pytest.mark.parametrize(("cassette", "index"), CASES)
def test_every_recording_rebuilds_the_same_in_random_chunks(cassette: str, index: int) -> None:
    ia = load_cassette(cassette)[index]
    whole = run_interaction(P, ia)
    assert whole.decoder_errors == []
    if ia.response.status < 400:
        assert whole.error is None
        r = whole.response
        chunks = chunks_of(ia.response.decoded_body(), whole.framing)
        if whole.framing == JSON:
            chunks = [json.loads(ia.response.decoded_body())]
        text, thinking, last_usage = expected_output(chunks)
        assert (r.text, r.thinking) == (text, thinking)
        assert r.usage is not None
        assert r.usage.input == last_usage["promptTokenCount"]
        assert r.usage.output == last_usage.get("candidatesTokenCount", 0) + last_usage.get(
            "thoughtsTokenCount", 0
        )
        assert r.usage.total == last_usage["totalTokenCount"]
        assert r.stop_reason == "STOP"
    for seed in SEEDS:
        assert canonical(run_interaction(P, ia, seed=seed, max_size=23)) == canonical(whole)


def test_alt_sse_function_call_with_thought_signature() -> None:
    ia1, ia2 = load_cassette(SSE_CASSETTE)
    r1 = run_interaction(P, ia1, seed=0)
    assert r1.framing == SSE
    [call] = r1.response.tool_calls
    assert (call.name, call.arguments, call.arguments_raw) == ("get_country", {}, "{}")
    [sig] = r1.response.extra["thought_signatures"]
    assert sig.startswith("EpwICpkIAXLI2nxlU6gsWZaZ")
    u = r1.response.usage
    assert u is not None
    # 29 prompt + 10 candidates + 202 thoughts = 241; thoughts are output, and reasoning.
    assert (u.input, u.output, u.reasoning, u.total) == (29, 212, 202, 241)
    assert r1.response.model == "gemini-3-pro-preview"
    assert r1.response.response_id == "QUVVadTSNJ6_qtsPvN7J8Q0"
    r2 = run_interaction(P, ia2, seed=1).response
    assert r2.text == "The capital of Mexico is Mexico City."
    assert r2.usage is not None
    # promptTokenCount is 55, 55, then 257: the last chunk wins, nothing is summed.
    assert (r2.usage.input, r2.usage.output, r2.usage.total) == (257, 8, 265)


def test_alt_sse_request_is_parsed() -> None:
    _, ia2 = load_cassette(SSE_CASSETTE)
    req = run_interaction(P, ia2).request
    assert (req.model, req.stream) == ("gemini-3-pro-preview", True)
    user, model, tool_turn = req.messages
    assert (user.role, model.role, tool_turn.role) == ("user", "assistant", "user")
    [call] = model.parts
    assert (call.type, call.name, call.arguments) == ("tool_call", "get_country", {})
    [result] = tool_turn.parts
    assert (result.type, result.name, result.content) == (
        "tool_result",
        "get_country",
        {"return_value": "Mexico"},
    )
    assert result.tool_call_id == call.id == "pyd_ai_29bf73b69e02448588e15893d47a3e7e"
    [tool] = req.tools
    assert tool.name == "get_country" and tool.parameters["type"] == "object"
    assert req.params == {"responseModalities": ["TEXT"]}


def test_extracted_crlf_sse_file() -> None:
    body = read_fixture("gemini/stream-alt-sse-functioncall-thoughts.response-1.sse.txt")
    assert b"\r\n\r\n" in body
    results = [
        feed_in_random_chunks(
            P, "generate_content", LLMRequest(), "text/event-stream", None, body, s
        )
        for s in (None, *SEEDS)
    ]
    for r in results:
        assert len(r.events) == 2 and r.error is None and r.decoder_errors == []
        assert r.response.tool_calls[0].name == "get_country"
        assert canonical(r) == canonical(results[0])


def test_json_array_gzip_stream() -> None:
    ia1, _, ia3 = load_cassette(ARRAY_CASSETTE)
    assert ia1.response.content_encoding == "gzip"
    r1 = run_interaction(P, ia1, seed=2, max_size=11)
    assert r1.framing == JSON_ARRAY and len(r1.events) == 2
    resp = r1.response
    assert resp.thinking.startswith("**Generating Pelican Names**\n\nOkay, I'm thinking")
    assert resp.text == ""
    [call] = resp.tool_calls
    assert (call.name, call.arguments) == ("pelican_name_generator", {})
    assert resp.extra["finish_message"] == "Model generated function call(s)."
    assert len(resp.extra["thought_signatures"]) == 1
    u = resp.usage
    assert u is not None and (u.input, u.output, u.reasoning, u.total) == (32, 54, 42, 86)
    assert u.details["serviceTier"] == "standard"
    assert run_interaction(P, ia3).response.text == "How about Charles and Sammy?"
    # The extracted (gunzipped) body gives the same rebuild as the gzip cassette.
    decoded = read_fixture(
        "gemini/stream-json-array-thought-functioncall-gzip.response-1.decoded.json"
    )
    view = ia1.request.view()
    for seed in (None, 0, 1):
        r = feed_in_random_chunks(
            P, "generate_content", view, "application/json", None, decoded, seed
        )
        assert canonical(r)["response"] | {"body": None} == canonical(r1)["response"] | {
            "body": None
        }


def test_json_array_request_is_parsed() -> None:
    ia1, _, _ = load_cassette(ARRAY_CASSETTE)
    req = run_interaction(P, ia1).request
    assert (req.model, req.stream) == ("gemini-2.5-flash", True)
    assert req.messages[0].text == "Two names for a pet pelican"
    assert "thinkingConfig" in req.params and "safetySettings" in req.params
    assert req.params["safetySettings"][0]["threshold"] == "BLOCK_NONE"


def test_cached_content_tokens_non_streamed() -> None:
    [ia] = load_cassette(CACHED)
    r = run_interaction(P, ia)
    assert r.framing == JSON
    u = r.response.usage
    assert u is not None
    assert (u.input, u.cache_read, u.output, u.reasoning, u.total) == (
        17713,
        17379,
        889,
        821,
        18602,
    )
    assert [d["modality"] for d in u.details["cacheTokensDetails"]] == ["AUDIO", "TEXT", "VIDEO"]
    assert r.response.text.startswith("This video demonstrates an AI assistant")
    req = r.request
    assert req.system == "You are a helpful chatbot." and req.stream is False
    text, video = req.messages[0].parts
    assert text.text == "Explain me this video in a few sentences"
    assert (video.type, video.media_type, video.url) == (
        "document",
        "video/mp4",
        "https://m.youtube.com/watch?v=lCdaVNyHtjU",
    )


def test_http_404_error() -> None:
    [ia] = load_cassette("gemini/generate-content-error-404.cassette.yaml")
    err = run_interaction(P, ia).error
    assert err is not None
    assert (err.type, err.status, err.code) == (ErrorType.MODEL_UNAVAILABLE, 404, "NOT_FOUND")
    assert err.message.startswith("models/gemini-3.6-flahs is not found")


@pytest.mark.parametrize(
    ("rpc", "code", "expected"),
    [
        ("NOT_FOUND", 404, ErrorType.MODEL_UNAVAILABLE),
        ("INVALID_ARGUMENT", 400, ErrorType.BAD_REQUEST),
        ("PERMISSION_DENIED", 403, ErrorType.AUTHENTICATION),
        ("UNAUTHENTICATED", 401, ErrorType.AUTHENTICATION),
        ("RESOURCE_EXHAUSTED", 429, ErrorType.RATE_LIMIT),
        ("INTERNAL", 500, ErrorType.SERVER_ERROR),
        ("UNAVAILABLE", 503, ErrorType.SERVER_ERROR),
        ("DEADLINE_EXCEEDED", 504, ErrorType.TIMEOUT),
        ("SOMETHING_NEW", 429, ErrorType.RATE_LIMIT),
    ],
)
def test_error_statuses(rpc: str, code: int, expected: ErrorType) -> None:
    err_obj = {"error": {"code": code, "message": "why", "status": rpc}}
    for body in (err_obj, [err_obj]):  # a failed streamed call answers with an array
        err = P.parse_error(code, body, {})
        assert (err.type, err.code, err.message, err.status) == (expected, rpc, "why", code)


def data_lines(*chunks: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def text_chunk(text: str, **extra: object) -> dict:
    cand: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    cand.update(extra)
    return {"candidates": [cand], "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}


def test_mid_stream_bare_json_error_keeps_partial_text() -> None:
    bare = (
        b'{\r\n  "error": {\r\n    "code": 503,\r\n    "message": "The model is overloaded.",\r\n'
        b'    "status": "UNAVAILABLE"\r\n  }\r\n}\r\n'
    )
    body = data_lines(text_chunk("Once upon"), text_chunk(" a time")) + bare
    for seed in (None, 0, 1, 2, 3):
        r = feed_in_random_chunks(
            P, "generate_content", LLMRequest(), "text/event-stream", None, body, seed
        )
        assert r.response.text == "Once upon a time"
        assert r.error is not None
        assert (r.error.type, r.error.code, r.error.status, r.error.retryable) == (
            ErrorType.SERVER_ERROR,
            "UNAVAILABLE",
            503,
            True,
        )
        assert r.error.message == "The model is overloaded."


def test_torn_bare_error_is_still_reported() -> None:
    asm = GeminiAssembler(LLMRequest(), LLMResponse())
    asm.feed(StreamEvent(0.0, None, '{\n "error": {\n "code": 429,\n "message": "Quota exceeded",'))
    assert asm.error is not None
    assert (asm.error.type, asm.error.message) == (ErrorType.RATE_LIMIT, "Quota exceeded")
    junk = GeminiAssembler(LLMRequest(), LLMResponse())
    junk.feed(StreamEvent(0.0, None, "hello?"))
    assert junk.error is not None and junk.error.type == ErrorType.PARSE


def test_error_element_inside_a_json_array_stream() -> None:
    body = b"[" + json.dumps(text_chunk("Hi")).encode() + b",\r\n"
    body += b'{"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}\n]'
    req = RequestView(
        "POST",
        "https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent",
        "generativelanguage.googleapis.com",
        "/v1beta/models/g:streamGenerateContent",
    )
    for seed in (None, 0, 1):
        r = feed_in_random_chunks(P, "generate_content", req, "application/json", None, body, seed)
        assert r.framing == JSON_ARRAY and r.response.text == "Hi"
        assert r.error is not None and r.error.type == ErrorType.SERVER_ERROR


def test_prompt_blocked_by_safety() -> None:
    body = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    }
    asm = GeminiAssembler(LLMRequest(), LLMResponse())
    asm.feed_body(body)
    asm.finish()
    assert asm.error is not None
    assert (asm.error.type, asm.error.code, asm.error.retryable) == (
        ErrorType.CONTENT_FILTER,
        "SAFETY",
        False,
    )
    assert asm.response.stop_reason == "SAFETY"
    assert asm.response.usage is not None and asm.response.usage.input == 8


def test_output_stopped_by_a_filter_keeps_partial_text() -> None:
    body = data_lines(text_chunk("Some "), text_chunk("text", finishReason="PROHIBITED_CONTENT"))
    r = feed_in_random_chunks(
        P, "generate_content", LLMRequest(), "text/event-stream", None, body, 3
    )
    assert r.response.text == "Some text" and r.response.stop_reason == "PROHIBITED_CONTENT"
    assert r.error is not None and r.error.type == ErrorType.CONTENT_FILTER
    fine = feed_whole(
        P,
        "generate_content",
        LLMRequest(),
        "text/event-stream",
        None,
        data_lines(text_chunk("ok", finishReason="MAX_TOKENS")),
    )
    assert fine.error is None and fine.response.stop_reason == "MAX_TOKENS"


def test_other_candidates_and_other_parts_are_kept_apart() -> None:
    chunk = {
        "candidates": [
            {"content": {"parts": [{"text": "A"}, {"executableCode": {"code": "1"}}]}, "index": 0},
            {"content": {"parts": [{"text": "B"}]}, "index": 1},
        ]
    }
    asm = GeminiAssembler(LLMRequest(), LLMResponse())
    assert asm.feed(StreamEvent(0.0, None, chunk)) is True
    asm.finish()
    r = asm.response
    assert r.text == "A" and r.extra["other_candidates"] == {"1": "B"}
    assert r.extra["other_parts"] == [{"executableCode": {"code": "1"}}]
    assert r.usage is None  # nothing reported: the pipeline estimates


def view(host: str, path: str, body: object = None, **headers: str) -> RequestView:
    raw = json.dumps(body).encode() if body is not None else b""
    return RequestView("POST", f"https://{host}{path}", host, path, dict(headers), raw)


GEN_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
API_HOST = "generativelanguage.googleapis.com"


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (
            view(API_HOST, "/v1beta/models/gemini-2.5-flash:generateContent"),
            ("generate_content", HOST),
        ),
        (
            view(API_HOST, "/v1/models/g:streamGenerateContent?key=K&alt=sse"),
            ("generate_content", HOST),
        ),
        (view(API_HOST, "/v1beta/models/g:countTokens"), ("other", HOST)),
        (view(API_HOST, "/v1beta/models/e:batchEmbedContents"), ("embeddings", HOST)),
        (view(API_HOST, "/v1beta/cachedContents"), ("other", HOST)),
        (
            view("proxy.local", "/gemini/v1beta/models/g:generateContent"),
            ("generate_content", PATH),
        ),
        (view("proxy.local", "/anything", GEN_BODY), ("generate_content", SHAPE)),
        (view("proxy.local", "/anything", {"messages": []}), None),
        (
            view(
                "us-central1-aiplatform.googleapis.com",
                "/v1/projects/p/locations/l/publishers/google/models/g:generateContent",
            ),
            None,
        ),
    ],
)
def test_detection(req: RequestView, expected: tuple[str, int] | None) -> None:
    d = P.detect(req)
    assert (None if d is None else (d.api, d.strength)) == expected


@pytest.mark.parametrize(
    ("path", "content_type", "framing"),
    [
        ("/v1beta/models/g:streamGenerateContent?alt=sse", "text/event-stream", SSE),
        ("/v1beta/models/g:streamGenerateContent?key=K&alt=sse", "", SSE),
        ("/v1beta/models/g:streamGenerateContent?alt=sse&key=K", "text/event-stream", SSE),
        ("/v1beta/models/g:streamGenerateContent", "application/json; charset=UTF-8", JSON_ARRAY),
        ("/v1beta/models/g:streamGenerateContent?key=K", "", JSON_ARRAY),
        ("/v1beta/models/g:generateContent?key=K", "application/json", JSON),
    ],
)
def test_framing(path: str, content_type: str, framing: str) -> None:
    assert P.framing(view(API_HOST, path), "generate_content", content_type) == framing


VERTEX_PATH = (
    "/v1beta1/projects/p/locations/global/publishers/google/models/"
    "gemini-2.5-pro:streamGenerateContent?alt=sse"
)


def test_vertex() -> None:
    req = view("aiplatform.googleapis.com", VERTEX_PATH, GEN_BODY, authorization="Bearer x")
    found = registry.detect(req)
    assert found is not None
    provider, det = found
    assert (provider.name, det.provider, det.api, det.strength) == (
        "gemini_vertex",
        "gemini_vertex",
        "generate_content",
        HOST,
    )
    assert registry.get("gemini_vertex") is provider
    parsed = provider.parse_request(req, det.api)
    assert (parsed.model, parsed.stream, parsed.messages[0].text) == ("gemini-2.5-pro", True, "hi")
    other_host = GeminiVertexProvider().detect(view("vertex.corp", VERTEX_PATH))
    assert other_host is not None and other_host.strength == PATH
    assert GeminiVertexProvider().detect(view(API_HOST, "/v1beta/models/g:generateContent")) is None


def test_code_assist_envelopes() -> None:
    body = {
        "model": "gemini-2.5-pro",
        "project": "proj-1",
        "user_prompt_id": "u-1",
        "request": {
            "contents": [{"role": "user", "parts": [{"text": "list files"}]}],
            "systemInstruction": {"role": "user", "parts": [{"text": "You are a CLI."}]},
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "ls",
                            "description": "list",
                            "parametersJsonSchema": {"type": "object"},
                        }
                    ]
                },
                {"googleSearch": {}},
            ],
            "generationConfig": {"temperature": 0, "thinkingConfig": {"includeThoughts": True}},
            "session_id": "s-1",
        },
    }
    req = view("cloudcode-pa.googleapis.com", "/v1internal:streamGenerateContent?alt=sse", body)
    found = registry.detect(req)
    assert found is not None
    provider, det = found
    assert (provider.name, det.api, det.strength) == (
        "gemini_code_assist",
        "generate_content",
        HOST,
    )
    parsed = provider.parse_request(req, det.api)
    assert (parsed.model, parsed.stream, parsed.system) == (
        "gemini-2.5-pro",
        True,
        "You are a CLI.",
    )
    assert parsed.messages[0].text == "list files"
    assert [(t.name, t.type) for t in parsed.tools] == [
        ("ls", "function"),
        ("googleSearch", "googleSearch"),
    ]
    assert parsed.tools[0].parameters == {"type": "object"}
    assert parsed.params["temperature"] == 0 and parsed.params["project"] == "proj-1"
    assert parsed.params["session_id"] == "s-1"

    def wrap(chunk: dict) -> dict:
        return {"response": chunk, "traceId": "trace-9"}

    thought = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Plan.", "thought": True}]}}
        ]
    }
    call = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "ls", "args": {"path": "."}}}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 40,
            "toolUsePromptTokenCount": 7,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 3,
            "totalTokenCount": 115,
        },
    }
    stream = data_lines(wrap(thought), wrap(call))
    for seed in (None, 0, 1):
        r = feed_in_random_chunks(provider, det.api, req, "text/event-stream", None, stream, seed)
        resp = r.response
        assert r.error is None and resp.thinking == "Plan." and resp.extra["trace_id"] == "trace-9"
        [tc] = resp.tool_calls
        assert (tc.name, tc.arguments, tc.arguments_raw) == ("ls", {"path": "."}, '{"path": "."}')
        u = resp.usage
        assert u is not None
        assert (u.input, u.cache_read, u.output, u.reasoning, u.total) == (107, 40, 8, 3, 115)
    other = GeminiCodeAssistProvider().detect(
        view("cloudcode-pa.googleapis.com", "/v1internal:loadCodeAssist")
    )
    assert other is not None and other.api == "other"
    assert P.detect(req) is None  # the envelope is no plain Gemini body
    shape_only = GeminiCodeAssistProvider().detect(view("gw.corp", "/x", body))
    assert shape_only is not None and shape_only.strength == SHAPE

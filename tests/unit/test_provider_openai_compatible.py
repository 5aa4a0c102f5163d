"""OpenAI-compatible servers (DeepSeek, OpenRouter, vLLM, local) and Ollama's native NDJSON API."""

from __future__ import annotations

import json

import pytest

from flowbook.model import ErrorType
from flowbook.providers import registry
from flowbook.providers.base import HOST, JSON, NDJSON, PATH, RequestView
from flowbook.streams import make_decoder
from flowbook.streams.ndjson import NDJSONDecoder
from tests.helpers.fixtures import (
    canonical,
    feed_body,
    feed_in_random_chunks,
    feed_whole,
    load_cassette,
    read_fixture,
    run_interaction,
    split_random,
)

DEEPSEEK = "openai-compatible/deepseek-reasoner-stream.cassette.yaml"
OPENROUTER = "openai-compatible/openrouter-stream-reasoning-then-error.cassette.yaml"
OLLAMA = registry.get("ollama")


def replay(cassette: str, seed: int | None = None, max_size: int = 64):
    ia = load_cassette(cassette)[0]
    found = registry.detect(ia.request.view())
    assert found is not None
    return run_interaction(found[0], ia, seed=seed, max_size=max_size)


def view(url: str, body: object = None, method: str = "POST") -> RequestView:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    raw = json.dumps(body).encode() if body is not None else b""
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return RequestView(method, url, parts.hostname or "", path, {}, raw, parts.port)


@pytest.mark.parametrize("cassette", [DEEPSEEK, OPENROUTER])
def test_random_chunking_matches_whole_body(cassette: str) -> None:
    whole = canonical(replay(cassette))
    for seed in range(6):
        assert canonical(replay(cassette, seed)) == whole, f"seed {seed}"
    assert canonical(replay(cassette, 7, max_size=3)) == whole


def test_deepseek_reasoning_and_cache_usage() -> None:
    r = replay(DEEPSEEK)
    assert r.request.model == "deepseek-reasoner"
    assert r.response.text == "Hello there! 😊 How can I help you today?"
    assert r.response.thinking.startswith('Hmm, the user just said "Hello".')
    assert r.response.stop_reason == "stop" and r.error is None
    u = r.response.usage
    assert u is not None and u.source == "reported"
    # Usage came in the finish_reason chunk; hit/miss give cache_read and input.
    assert (u.input, u.cache_read, u.output, u.reasoning, u.total) == (6, 0, 212, 198, 218)
    assert u.details["prompt_cache_miss_tokens"] == 6
    assert r.first_output == 1  # the first chunk's reasoning_content is empty


def test_openrouter_in_stream_error_keeps_partial_and_usage() -> None:
    r = replay(OPENROUTER)
    assert r.response.thinking == "We need to respond to a greeting. The user"
    assert r.response.text == ""
    assert r.response.stop_reason == "length"  # the error chunk's null finish does not erase it
    assert r.error is not None
    assert r.error.type == ErrorType.BAD_REQUEST and r.error.message == "Token limit reached"
    u = r.response.usage
    assert u is not None and (u.input, u.output, u.reasoning) == (43, 10, 11)
    assert r.response.extra["provider_cost"] == 0
    assert r.response.model == "minimax/minimax-m2:free"


def test_openrouter_extracted_body_matches_cassette() -> None:
    ia = load_cassette(OPENROUTER)[0]
    provider = registry.get("openrouter")
    body = read_fixture(OPENROUTER.replace("cassette.yaml", "response.sse.txt"))
    r = feed_whole(provider, "chat", ia.request.view(), "text/event-stream", None, body)
    assert canonical(r) == canonical(run_interaction(provider, ia))


def test_vllm_reasoning_field_and_continuous_usage() -> None:
    def chunk(delta: dict, usage: dict, finish: str | None = None) -> bytes:
        c = {"model": "qwen3", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
             "usage": usage}  # fmt: skip
        return b"data: " + json.dumps(c).encode() + b"\n\n"

    body = (
        chunk({"reasoning": "hm"}, {"prompt_tokens": 9, "completion_tokens": 1})
        + chunk({"content": "Yes"}, {"prompt_tokens": 9, "completion_tokens": 2}, "stop")
        + b"data: [DONE]\n\n"
    )
    req = view("http://127.0.0.1:8000/v1/chat/completions", {"model": "qwen3", "messages": []})
    provider, det = registry.detect(req) or (None, None)
    assert provider is not None and det is not None and det.provider == "openai_compatible"
    r = feed_whole(provider, "chat", req, "text/event-stream", None, body)
    assert (r.response.thinking, r.response.text) == ("hm", "Yes")
    assert r.response.usage is not None and r.response.usage.output == 2  # last, not summed


# --- Ollama native ------------------------------------------------------------------------------

OLLAMA_CHAT_LINES = [
    {"model": "qwen3", "message": {"role": "assistant", "content": "", "thinking": "Let me "},
     "done": False},
    {"model": "qwen3", "message": {"role": "assistant", "content": "", "thinking": "see."},
     "done": False},
    {"model": "qwen3", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, "done": False},
    {"model": "qwen3", "message": {"role": "assistant", "content": "Héllo"}, "done": False},
    {"model": "qwen3", "message": {"role": "assistant", "content": " 🌍"}, "done": False},
    {"model": "qwen3", "message": {"role": "assistant", "content": ""}, "done": True,
     "done_reason": "stop", "total_duration": 5000, "prompt_eval_count": 26, "eval_count": 12},
]  # fmt: skip
OLLAMA_CHAT = b"".join(
    json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in OLLAMA_CHAT_LINES
)


def ollama_chat_view(stream: bool | None = None) -> RequestView:
    body: dict = {
        "model": "qwen3",
        "messages": [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "Weather?", "images": ["iVBOR"]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ],
        "think": True,
        "options": {"temperature": 0},
    }  # fmt: skip
    if stream is not None:
        body["stream"] = stream
    v = view("http://localhost:11434/api/chat", body)
    v.port = 11434
    return v


def test_ollama_stream_any_chunking() -> None:
    req = ollama_chat_view()
    assert OLLAMA.framing(req, "chat", "application/x-ndjson") == NDJSON
    whole = feed_whole(OLLAMA, "chat", req, "application/x-ndjson", None, OLLAMA_CHAT)
    r = whole.response
    assert (r.text, r.thinking, r.stop_reason, r.model) == (
        "Héllo 🌍",
        "Let me see.",
        "stop",
        "qwen3",
    )
    [call] = r.tool_calls
    assert (call.name, call.arguments, json.loads(call.arguments_raw)) == (
        "get_weather", {"city": "Paris"}, {"city": "Paris"},
    )  # fmt: skip
    assert r.usage is not None and (r.usage.input, r.usage.output) == (26, 12)
    assert r.usage.source == "reported" and r.extra["ollama_timings_ns"]["total_duration"] == 5000
    assert whole.error is None and not whole.decoder_errors and whole.first_output == 0
    for seed in range(6):
        chunked = feed_in_random_chunks(
            OLLAMA, "chat", req, "application/x-ndjson", None, OLLAMA_CHAT, seed, max_size=16
        )
        assert canonical(chunked) == canonical(whole), f"seed {seed}"


def test_ollama_request_parsing() -> None:
    req = OLLAMA.parse_request(ollama_chat_view(), "chat")
    assert req.stream  # stream absent means streamed
    assert req.system == "Be nice." and req.model == "qwen3"
    assert [m.role for m in req.messages] == ["user", "assistant", "tool"]
    assert [p.type for p in req.messages[0].parts] == ["text", "image"]
    assert req.messages[1].parts[0].arguments == {"city": "Paris"}
    assert req.messages[2].parts[0].content == "sunny"
    assert req.params == {"think": True, "options": {"temperature": 0}}
    assert not OLLAMA.parse_request(ollama_chat_view(stream=False), "chat").stream


def test_ollama_non_streamed_and_generate() -> None:
    req = ollama_chat_view(stream=False)
    assert OLLAMA.framing(req, "chat", "application/json; charset=utf-8") == JSON
    r = feed_body(OLLAMA, "chat", req, json.dumps(OLLAMA_CHAT_LINES[-1] | {
        "message": {"role": "assistant", "content": "Hi"}}))  # fmt: skip
    assert r.response.text == "Hi" and r.response.usage is not None
    gen = view("http://localhost:11434/api/generate", {"model": "llama3", "prompt": "Why?",
               "system": "Short."})  # fmt: skip
    greq = OLLAMA.parse_request(gen, "generate")
    assert greq.system == "Short." and greq.messages[0].text == "Why?" and greq.stream
    body = (
        b'{"model":"llama3","response":"Be","done":false}\n'
        b'{"model":"llama3","response":"cause","done":true,"done_reason":"length",'
        b'"prompt_eval_count":3,"eval_count":2}\n'
    )
    g = feed_whole(OLLAMA, "generate", gen, "application/x-ndjson", None, body)
    assert g.response.text == "Because" and g.response.stop_reason == "length"
    # A streamed body handed over whole (e.g. from an import) still parses line by line.
    assert feed_body(OLLAMA, "generate", gen, body).response.text == "Because"


def test_ollama_errors() -> None:
    req = ollama_chat_view()
    body = OLLAMA_CHAT[: OLLAMA_CHAT.index(b"\n") + 1] + b'{"error":"model runner crashed"}\n'
    r = feed_whole(OLLAMA, "chat", req, "application/x-ndjson", None, body)
    assert r.response.thinking == "Let me " and r.error is not None
    assert r.error.message == "model runner crashed"
    err = OLLAMA.parse_error(404, {"error": "model 'nope' not found"}, {})
    assert err.type == ErrorType.MODEL_UNAVAILABLE and err.message == "model 'nope' not found"
    bad = feed_whole(OLLAMA, "chat", req, "application/x-ndjson", None, b'{"done":\n')
    assert bad.error is not None and bad.error.type == ErrorType.PARSE and bad.decoder_errors


def test_ndjson_decoder_chunking_and_torn_tail() -> None:
    data = b'{"a":1}\r\n\n{"b":"\xc3\xa9"}\n{"c":3}'
    for seed in range(5):
        dec = make_decoder(NDJSON)
        events = [e for piece in split_random(data, seed, 1, 3) for e in dec.feed(piece, 0.0)]
        events += dec.close(1.0)
        assert [e.data for e in events] == [{"a": 1}, {"b": "é"}, {"c": 3}]
        assert dec.errors == []  # an unterminated last line that parses is fine
    dec = NDJSONDecoder()
    assert dec.feed(b'{"a":1}\n{"b":', 0.0)[0].data == {"a": 1}
    tail = dec.close(0.0)
    assert tail[0].data == '{"b":' and "ended inside" in dec.errors[0]


@pytest.mark.parametrize(
    ("url", "body", "port", "api", "strength"),
    [
        ("http://localhost:11434/api/chat", {"model": "m", "messages": []}, 11434, "chat", HOST),
        ("http://gpu-box:8080/api/generate", {"model": "m", "prompt": "x"}, 8080, "generate", PATH),
        ("http://localhost:11434/api/tags", None, 11434, "other", PATH),
    ],
)
def test_ollama_detection(url: str, body: object, port: int, api: str, strength: int) -> None:
    v = view(url, body, "POST" if body else "GET")
    v.port = port
    found = registry.detect(v)
    assert found is not None and found[0] is OLLAMA
    assert (found[1].api, found[1].strength) == (api, strength)


def test_ollama_openai_compatible_path_goes_to_compatible_provider() -> None:
    v = view("http://localhost:11434/v1/chat/completions", {"model": "m", "messages": []})
    v.port = 11434
    found = registry.detect(v)
    assert found is not None and found[1].provider == "openai_compatible"
    assert OLLAMA.detect(view("http://x/api/chat", {"messages": []})) is None  # no model

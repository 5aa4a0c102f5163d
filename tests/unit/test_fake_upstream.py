"""The fake upstream against the real official SDKs (and raw httpx), without flowbook's proxy."""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from flowbook.fake_upstream import FakeUpstream
from flowbook.streams.eventstream import EventStreamDecoder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"
WEATHER_TOOL_OAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as f:
        yield f


@pytest.fixture
def oai(fake: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-fake", max_retries=0)


@pytest.fixture
def claude(fake: FakeUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-fake", max_retries=0)


@pytest.fixture
def gem(fake: FakeUpstream) -> genai.Client:
    return genai.Client(api_key="fake", http_options=gtypes.HttpOptions(base_url=fake.url))


def _sse_data(raw: bytes) -> list[Any]:
    """The JSON ``data:`` payloads of an SSE body (``[DONE]`` kept as a string)."""
    out: list[Any] = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                d = line[6:]
                out.append(d if d == "[DONE]" else json.loads(d))
    return out


# --- OpenAI ------------------------------------------------------------------------------


def test_openai_chat_non_stream_echoes_and_reports_usage(fake, oai) -> None:
    r = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    assert r.choices[0].message.content == "Echo: hello there"
    assert r.model == "gpt-4o-mini"
    assert r.usage is not None and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    seen = fake.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.json["messages"][0]["content"] == "hello there"
    assert seen.headers["authorization"] == "Bearer sk-fake"


def test_openai_chat_stream_usage_only_with_include_usage(oai) -> None:
    msgs = [{"role": "user", "content": "one two three four"}]
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=msgs, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"
    plain = list(oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True))
    assert all(c.usage is None for c in plain)
    assert sum(1 for c in plain if c.choices and c.choices[0].delta.content) >= 4


def test_openai_chat_stream_tool_call_fragments(oai) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL_OAI],
        stream=True,
    )
    args, names, finish, fragments = "", [], None, 0
    for c in stream:
        ch = c.choices[0]
        for tc in ch.delta.tool_calls or []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
                fragments += 1
        finish = ch.finish_reason or finish
    assert names == ["get_weather"] and json.loads(args) == {"city": "Paris"}
    assert fragments > 2 and finish == "tool_calls"


def test_openai_chat_after_tool_result_answers_text(oai) -> None:
    r = oai.chat.completions.create(
        model="gpt-4o-mini",
        tools=[WEATHER_TOOL_OAI],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )
    assert r.choices[0].message.content == "The tool said: sunny"
    assert not r.choices[0].message.tool_calls


@pytest.mark.parametrize(
    ("model", "exc"),
    [
        ("error-400", openai.BadRequestError),
        ("error-401", openai.AuthenticationError),
        ("error-404", openai.NotFoundError),
        ("error-429", openai.RateLimitError),
        ("error-500", openai.InternalServerError),
    ],
)
def test_openai_errors_raise_sdk_exceptions(oai, model, exc) -> None:
    with pytest.raises(exc) as info:
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert isinstance(info.value.body, dict) and "message" in info.value.body


def test_openai_midstream_error_raises(oai) -> None:
    stream = oai.chat.completions.create(
        model="error-midstream", messages=[{"role": "user", "content": "a b c d e"}], stream=True
    )
    got: list[str] = []
    with pytest.raises(openai.APIError, match="server had an error"):
        for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "Echo: a "


def test_openai_responses_non_stream_with_reasoning(oai) -> None:
    r = oai.responses.create(
        model="gpt-5", input="hi you", reasoning={"effort": "low", "summary": "auto"}
    )
    assert r.output_text == "Echo: hi you"
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert r.usage is not None and r.usage.output_tokens_details.reasoning_tokens > 0


def test_openai_responses_stream_text_and_reasoning_summary(oai) -> None:
    events = list(
        oai.responses.create(
            model="gpt-5",
            input=[{"role": "user", "content": "tell me"}],
            reasoning={"effort": "low", "summary": "auto"},
            stream=True,
        )
    )
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.reasoning_summary_text.delta" in types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: tell me"
    assert events[0].response.usage is None and events[-1].response.usage is not None


def test_openai_responses_stream_function_call(oai) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    with oai.responses.stream(model="gpt-5", input="weather in Paris", tools=[tool]) as st:
        deltas = [e.delta for e in st if e.type == "response.function_call_arguments.delta"]
        final = st.get_final_response()
    assert len(deltas) > 2 and json.loads("".join(deltas)) == {"city": "Paris"}
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"


def test_openai_models_and_embeddings(oai) -> None:
    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]
    e = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 8
    assert e.data[0].embedding != e.data[1].embedding


# --- Anthropic ---------------------------------------------------------------------------


def test_anthropic_non_stream_with_thinking(claude) -> None:
    m = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "hello"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[1].text == "Echo: hello" and m.content[0].signature
    assert m.model == "claude-sonnet-4-5" and m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_anthropic_stream_thinking_then_text(claude) -> None:
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "stream please"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as st:
        kinds = [e.type for e in st]
        msg = st.get_final_message()
    assert kinds[0] == "message_start" and "message_stop" in kinds
    assert msg.content[0].type == "thinking" and msg.content[0].thinking
    assert msg.content[1].text == "Echo: stream please"
    assert msg.usage.output_tokens > 1  # message_delta overrides the placeholder 1


def test_anthropic_stream_tool_use(claude) -> None:
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "what is the weather"}],
        tools=[tool],
    ) as st:
        msg = st.get_final_message()
    assert msg.stop_reason == "tool_use"
    assert msg.content[0].type == "tool_use" and msg.content[0].input == {"city": "Paris"}


def test_anthropic_raw_stream_has_padding_and_ping(fake) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    r = httpx.post(fake.url + "/v1/messages?beta=true", json=body)
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["request-id"].startswith("req_")
    assert 'event: ping\ndata: {"type": "ping"}\n\n' in r.text
    assert any(line.endswith(" }") for line in r.text.splitlines())
    assert fake.requests[-1].query == {"beta": "true"}


@pytest.mark.parametrize(
    ("model", "exc"),
    [
        ("error-400", anthropic.BadRequestError),
        ("error-401", anthropic.AuthenticationError),
        ("error-429", anthropic.RateLimitError),
        ("error-500", anthropic.InternalServerError),
    ],
)
def test_anthropic_errors(claude, model, exc) -> None:
    with pytest.raises(exc) as info:
        claude.messages.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["type"] == "error"


def test_anthropic_midstream_error(claude) -> None:
    with pytest.raises(anthropic.APIError, match="Overloaded"):  # noqa: SIM117
        with claude.messages.stream(
            model="error-midstream", max_tokens=5, messages=[{"role": "user", "content": "a b c"}]
        ) as st:
            for _ in st:
                pass


# --- Gemini ------------------------------------------------------------------------------


def test_gemini_generate_content(fake, gem) -> None:
    r = gem.models.generate_content(model="gemini-2.5-flash", contents="hello gem")
    assert r.text == "Echo: hello gem"
    u = r.usage_metadata
    assert u is not None and u.total_token_count == u.prompt_token_count + u.candidates_token_count
    assert fake.requests[-1].path.endswith("/models/gemini-2.5-flash:generateContent")
    assert fake.requests[-1].headers["x-goog-api-key"] == "fake"


def test_gemini_stream_thoughts_and_cumulative_usage(gem) -> None:
    cfg = gtypes.GenerateContentConfig(thinking_config=gtypes.ThinkingConfig(include_thoughts=True))
    chunks = list(
        gem.models.generate_content_stream(model="gemini-2.5-flash", contents="a b c", config=cfg)
    )
    first = chunks[0].candidates[0].content.parts[0]
    assert first.thought is True and first.text
    assert chunks[0].usage_metadata.candidates_token_count is None
    text = "".join(p.text for c in chunks[1:] for p in c.candidates[0].content.parts)
    assert text == "Echo: a b c"
    counts = [c.usage_metadata.candidates_token_count for c in chunks[1:]]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    assert all(c.usage_metadata.thoughts_token_count for c in chunks)
    assert chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.STOP


def test_gemini_function_call(gem) -> None:
    decl = gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema={"type": "object"})
    cfg = gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[decl])],
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
    )
    r = gem.models.generate_content(model="gemini-2.5-flash", contents="weather?", config=cfg)
    assert r.function_calls and r.function_calls[0].name == "get_weather"
    assert r.function_calls[0].args == {"city": "Paris"}


@pytest.mark.parametrize(
    ("model", "exc", "code"),
    [
        ("error-404", genai_errors.ClientError, 404),
        ("error-429", genai_errors.ClientError, 429),
        ("error-500", genai_errors.ServerError, 500),
    ],
)
def test_gemini_errors(gem, model, exc, code) -> None:
    with pytest.raises(exc) as info:
        gem.models.generate_content(model=model, contents="x")
    assert info.value.code == code and info.value.status


def test_gemini_raw_sse_uses_crlf_and_json_array_parses(fake) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]}
    base = fake.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    sse = httpx.post(base + "?alt=sse", json=body)
    assert sse.headers["content-type"] == "text/event-stream"
    assert sse.content.endswith(b"}\r\n\r\n") and b"\n\n" not in sse.content
    arr = httpx.post(base, json=body)
    assert arr.content.startswith(b"[{\n") and b"\n,\r\n{" in arr.content
    assert arr.content.endswith(b"\n]")
    elems = json.loads(arr.content)
    events = _sse_data(sse.content)
    for e in (*elems, *events):
        e.pop("responseId")
    assert elems == events  # same chunks, two framings
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elems)
    assert text == "Echo: hi there"


# --- Kiro --------------------------------------------------------------------------------


def _kiro_body(text: str, model: str = "claude-sonnet-4.5", tools: bool = False) -> dict:
    ctx: dict[str, Any] = {"envState": {"operatingSystem": "linux"}}
    if tools:
        schema = {"json": {"type": "object"}}
        ctx["tools"] = [{"toolSpecification": {"name": "get_weather", "inputSchema": schema}}]
    msg = {"content": text, "modelId": model, "origin": "AI_EDITOR"}
    msg["userInputMessageContext"] = ctx
    return {
        "conversationState": {"conversationId": "c1", "currentMessage": {"userInputMessage": msg}}
    }


def _kiro_events(raw: bytes) -> list[Any]:
    dec = EventStreamDecoder()
    events = dec.feed(raw) + dec.close()
    assert dec.errors == []
    return events


def test_kiro_text_stream_decodes(fake) -> None:
    r = httpx.post(fake.url + "/generateAssistantResponse", json=_kiro_body("hello kiro"))
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    events = _kiro_events(r.content)
    names = [e.event for e in events]
    assert names[0] == "initial-response" and names[-2:] == ["contextUsageEvent", "meteringEvent"]
    text = "".join(e.data["content"] for e in events if e.event == "assistantResponseEvent")
    assert text == "Echo: hello kiro"
    assert {e.data["modelId"] for e in events if e.event == "assistantResponseEvent"} == {
        "claude-sonnet-4.5"
    }


def test_kiro_tool_use_via_amz_target(fake) -> None:
    target = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"
    r = httpx.post(
        fake.url + "/",
        json=_kiro_body("weather in Paris?", tools=True),
        headers={"x-amz-target": target, "content-type": "application/x-amz-json-1.0"},
    )
    tool = [e.data for e in _kiro_events(r.content) if e.event == "toolUseEvent"]
    assert tool[0].keys() == {"name", "toolUseId"} and tool[-1]["stop"] is True
    args = "".join(d.get("input", "") for d in tool)
    assert json.loads(args) == {"city": "Paris"}


def test_kiro_error_and_midstream_exception(fake) -> None:
    r = httpx.post(fake.url + "/generateAssistantResponse", json=_kiro_body("x", "error-400"))
    assert r.status_code == 400 and r.json()["__type"].endswith("#ValidationException")
    r = httpx.post(
        fake.url + "/generateAssistantResponse", json=_kiro_body("a b c", "error-midstream")
    )
    last = _kiro_events(r.content)[-1]
    assert last.event == "InternalServerException"


# --- Ollama ------------------------------------------------------------------------------


def test_ollama_ndjson_stream_and_non_stream(fake) -> None:
    body = {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hi llama"}],
        "think": True,
    }
    r = httpx.post(fake.url + "/api/chat", json=body)
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert all(not x["done"] for x in lines[:-1]) and lines[-1]["done"] is True
    assert "".join(x["message"]["content"] for x in lines) == "Echo: hi llama"
    assert "".join(x["message"].get("thinking", "") for x in lines)
    assert lines[-1]["prompt_eval_count"] > 0 and lines[-1]["eval_count"] > 0
    whole = httpx.post(fake.url + "/api/chat", json={**body, "stream": False}).json()
    assert whole["message"]["content"] == "Echo: hi llama" and whole["done"] is True


# --- transport: script mode, gzip, die, delay, TLS, concurrency, keep-alive -----------------


def test_script_replays_fixture_byte_exact(fake) -> None:
    raw = (
        FIXTURES / "openai" / "chat-stream-toolcalls-include-usage.response-2.sse.txt"
    ).read_bytes()
    pieces = [raw[i : i + 97] for i in range(0, len(raw), 97)]
    fake.script(
        "/v1/chat/completions", headers={"Content-Type": "text/event-stream"}, chunks=pieces
    )
    with httpx.stream("POST", fake.url + "/v1/chat/completions", json={}) as r:
        got = list(r.iter_raw())
    assert b"".join(got) == raw
    # The script was used once: the next request is answered normally again.
    body = {"model": "m", "messages": [{"role": "user", "content": "again"}]}
    assert (
        httpx.post(fake.url + "/v1/chat/completions", json=body).json()["object"]
        == "chat.completion"
    )


def test_script_disconnect_and_repeat(fake) -> None:
    fake.script("/boom", chunks=[b"data: partial\n\n", FakeUpstream.DISCONNECT], repeat=True)
    for _ in range(2):
        got = b""
        with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", fake.url + "/boom") as r:
            for c in r.iter_raw():
                got += c
        assert got == b"data: partial\n\n"
    fake.clear()
    assert httpx.get(fake.url + "/boom").status_code == 404


def test_gzip_stream_is_flushed_per_event(fake) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "zip it"}]}
    with httpx.stream(
        "POST", fake.url + "/v1/chat/completions", json=body, headers={"x-fake-gzip": "1"}
    ) as r:
        assert r.headers["content-encoding"] == "gzip"
        raw = list(r.iter_raw())
    first = zlib.decompressobj(31).decompress(raw[0])
    assert first.startswith(b"data: {") and first.endswith(b"\n\n")
    assert gzip.decompress(b"".join(raw)).endswith(b"data: [DONE]\n\n")


def test_die_midstream_drops_connection(fake) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b c d e f"}]}
    got = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            fake.url + "/v1/chat/completions",
            json=body,
            headers={"x-fake-die-midstream": "1"},
        ) as r,
    ):
        for c in r.iter_raw():
            got += c
    assert got.count(b"data: ") == 3 and b"[DONE]" not in got


def test_x_fake_delay_spreads_events(oai) -> None:
    stamps = [
        time.monotonic()
        for _ in oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
            extra_headers={"x-fake-delay": "0.1"},
        )
    ]
    assert len(stamps) >= 4
    assert stamps[-1] - stamps[0] >= 0.1 * (len(stamps) - 1) * 0.8


def test_two_slow_streams_overlap(fake) -> None:
    arrivals: dict[str, list[float]] = {"a": [], "b": []}
    started = threading.Event()

    def run(name: str) -> None:
        client = openai.OpenAI(base_url=fake.url + "/v1", api_key="k", max_retries=0)
        for _ in client.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "one two three four"}], stream=True
        ):
            arrivals[name].append(time.monotonic())
            started.set()

    ta = threading.Thread(target=run, args=("a",))
    ta.start()
    assert started.wait(10)
    run("b")  # runs while "a" is still streaming
    ta.join(10)
    assert len(arrivals["a"]) == len(arrivals["b"]) >= 6
    assert arrivals["b"][0] < arrivals["a"][-1]


def test_keep_alive_reuses_connection(fake) -> None:
    with httpx.Client() as c:
        c.get(fake.url + "/v1/models")
        c.get(fake.url + "/v1/models")
    assert fake.requests[-1].client_port == fake.requests[-2].client_port


def test_tls_mode_with_ca_cert() -> None:
    with FakeUpstream(tls=True) as f:
        assert f.url.startswith("https://127.0.0.1:") and f.ca_cert_path is not None
        ctx = ssl.create_default_context(cafile=str(f.ca_cert_path))
        with httpx.Client(verify=ctx) as c:
            assert c.get(f.url + "/v1/models").json()["object"] == "list"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f.url + "/v1/models")  # not trusted by default
        client = openai.OpenAI(
            base_url=f.url + "/v1", api_key="k", http_client=httpx.Client(verify=ctx)
        )
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "tls"}])
        assert r.choices[0].message.content == "Echo: tls"
        ca = f.ca_cert_path
    assert not ca.exists()


def test_die_midstream_truncates_a_fixed_body(fake) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "cut me"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            fake.url + "/v1/chat/completions", json=body, headers={"x-fake-die-midstream": "1"}
        )


def test_gemini_midstream_error_raises(gem) -> None:
    got: list[str] = []
    with pytest.raises(genai_errors.ServerError):
        for ch in gem.models.generate_content_stream(model="error-midstream", contents="a b c"):
            got.append(ch.text or "")
    assert "".join(got) == "Echo: a "


def test_gemini_json_array_gzip(fake) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "zipped"}]}]}
    url = fake.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    r = httpx.post(url, json=body, headers={"x-fake-gzip": "1"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"] == "application/json; charset=UTF-8"
    last = json.loads(r.content)[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"

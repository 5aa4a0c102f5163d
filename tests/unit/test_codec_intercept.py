"""Interception writes through the flow's codec: mocks, edits and error replies come out in the
provider's own format, framing included, and the provider's assembler reads them back.

Covers the providers whose variant of an API differs on the wire (Bedrock InvokeModel's
event-stream chunk frames, Converse, Vertex, Code Assist's envelope, Ollama /api/generate) on
mitmproxy test flows, without a proxy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from flowbook.intercept import actions as act
from flowbook.intercept.edit import validate_response_body
from flowbook.intercept.render import api_of, codec_of
from flowbook.model import Api, FlowMetadata, LLMFlow, LLMRequest
from flowbook.providers.anthropic_encode import MessagesCodec, VertexMessagesCodec
from flowbook.providers.bedrock_encode import ConverseCodec, InvokeMessagesCodec
from flowbook.providers.codec import EVENTSTREAM_TYPE, NDJSON_TYPE, SSE_TYPE
from flowbook.providers.gemini_encode import GenerateContentCodec
from flowbook.providers.ollama_encode import OllamaGenerateCodec
from flowbook.providers.openai_encode import ChatCodec

BEDROCK = "bedrock-runtime.us-east-1.amazonaws.com"
CASES = [
    # provider, api, host, path, codec class, stream content type
    (
        "bedrock",
        "messages",
        BEDROCK,
        "/model/anthropic.claude-sonnet-4-5/invoke-with-response-stream",
        InvokeMessagesCodec,
        EVENTSTREAM_TYPE,
    ),
    ("bedrock", "converse", BEDROCK, "/model/m-1/converse-stream", ConverseCodec, EVENTSTREAM_TYPE),
    (
        "anthropic_vertex",
        "messages",
        "us-east5-aiplatform.googleapis.com",
        "/v1/projects/p/locations/l/publishers/anthropic/models/claude:streamRawPredict",
        VertexMessagesCodec,
        SSE_TYPE,
    ),
    (
        "gemini_code_assist",
        "generate_content",
        "cloudcode-pa.googleapis.com",
        "/v1internal:streamGenerateContent?alt=sse",
        GenerateContentCodec,
        SSE_TYPE,
    ),
    ("ollama", "generate", "localhost", "/api/generate", OllamaGenerateCodec, NDJSON_TYPE),
]


def make(provider: str, api: str, host: str, path: str) -> tuple[http.HTTPFlow, LLMFlow]:
    f = tflow.tflow()
    f.request.host = host
    f.request.path = path
    f.request.content = json.dumps({"model": "m-1", "prompt": "hi"}).encode()
    f.metadata["flowbook_client_stream"] = True
    url = f"https://{host}{path}"
    llm = LLMFlow(
        request=LLMRequest(model="m-1", stream=True, host=host, path=path, url=url),
        metadata=FlowMetadata(provider=provider, api=api),
    )
    return f, llm


@pytest.mark.parametrize(("provider", "api", "host", "path", "codec_type", "ctype"), CASES)
def test_mock_stream_in_the_providers_own_framing(
    provider: str, api: str, host: str, path: str, codec_type: type, ctype: str
) -> None:
    f, llm = make(provider, api, host, path)
    codec = codec_of(llm)
    assert type(codec) is codec_type
    body = act.mock_body(llm, "canned answer", None)
    validate_response_body(api_of(llm), body)  # what the panel would accept
    act.send_body(f, llm, body)
    assert f.response is not None and f.response.headers["content-type"] == ctype
    rebuilt = act.assemble(f, llm, f.response.content or b"")
    assert rebuilt.text == "canned answer"


def test_code_assist_answers_inside_its_envelope() -> None:
    f, llm = make("gemini_code_assist", "generate_content", *CASES[3][2:4])
    body = act.mock_body(llm, "wrapped", None)
    assert set(body) == {"response"} and "candidates" in body["response"]
    act.send_body(f, llm, body)
    assert f.response is not None
    first = (f.response.content or b"").split(b"\r\n")[0]
    assert json.loads(first.removeprefix(b"data: "))["response"]["candidates"]


@pytest.mark.parametrize(
    ("provider", "api", "expected"),
    [
        ("openai", "embeddings", ChatCodec),  # no codec of its own: OpenAI chat, as before
        ("ollama", "chat", ChatCodec),  # "chat" validates as OpenAI Chat, so it answers as one
        ("nobody", "messages", MessagesCodec),  # an unknown provider: the API's own codec
    ],
)
def test_fallbacks(provider: str, api: str, expected: type) -> None:
    llm = LLMFlow(metadata=FlowMetadata(provider=provider, api=api))
    assert type(codec_of(llm)) is expected


def test_error_reply_in_the_codecs_envelope() -> None:
    f, llm = make("bedrock", "converse", BEDROCK, "/model/m-1/converse")
    host: Any = _NullHost()
    act.send_error(f, llm, host, 400, "dropped here", "dropped")
    assert f.response is not None and f.response.status_code == 400
    assert json.loads(f.response.content or b"") == {"message": "dropped here"}
    assert api_of(llm) == Api.CONVERSE


class _NullHost:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

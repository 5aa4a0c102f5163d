"""Provider-format bodies the interceptor writes itself: mock replies, error replies for dropped
or blocked flows, and the editable non-streamed form of a (possibly streamed) response.

The bodies come from the flow's codec (:mod:`flowbook.providers.codec`), chosen by its ``api``
(``chat``, ``responses``, ``messages``, ``generate_content``, ``kiro``, ``converse``,
``generate``; anything else is answered in OpenAI chat format) and, where the provider has its
own variant of that API (Bedrock, Vertex, Code Assist), by its provider. Shapes are described in
docs/wire-formats.md; :mod:`flowbook.intercept.render_stream` turns a body into the matching
stream.
"""

from __future__ import annotations

from typing import Any

from flowbook.model import Api, LLMFlow, LLMResponse
from flowbook.providers.codec import WireCodec, dumps
from flowbook.providers.gemini_encode import uses_sse
from flowbook.providers.kiro_encode import ERROR_TYPE as KIRO_ERROR_TYPE
from flowbook.providers.registry import api_codecs, codec_for, codec_for_api

__all__ = [
    "KIRO_ERROR_TYPE",
    "api_of",
    "body_from_parts",
    "body_from_response",
    "codec_of",
    "error_body",
    "error_reply",
    "gemini_uses_sse",
]


def api_of(flow: LLMFlow) -> Api:
    """The wire format to answer in; APIs without a codec get OpenAI chat (the common
    denominator)."""
    api = flow.metadata.api
    return Api(api) if api in api_codecs() else Api.CHAT


def codec_of(flow: LLMFlow) -> WireCodec:
    """The codec that writes this flow's bodies (:func:`flowbook.providers.registry.codec_for`)."""
    return codec_for(flow.metadata.provider, api_of(flow))


def gemini_uses_sse(flow: LLMFlow) -> bool:
    """Gemini streams SSE with ``alt=sse`` and a growing JSON array without it."""
    return uses_sse(flow.request)


def error_body(
    api: str, status: int, message: str, *, code: str = "flowbook_intercept"
) -> dict[str, Any]:
    """The provider's own HTTP error envelope, so its SDK raises a readable error."""
    return codec_for_api(api).error_body(status, message, code=code)


def error_reply(
    api: str, status: int, message: str, *, codec: WireCodec | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an error reply. ``x-should-retry: false`` stops SDK retries."""
    c = codec or codec_for_api(api)
    headers = {
        "content-type": c.error_content_type,
        "x-should-retry": "false",
        "x-flowbook-intercept": "1",
    }
    return status, headers, dumps(c.error_body(status, message, code="flowbook_intercept"))


def body_from_parts(
    api: str,
    *,
    text: str = "",
    model: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    thinking: str = "",
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A non-streamed body in ``api``'s format. ``tool_calls``: [{id, name, arguments(dict)}]."""
    return codec_for_api(api).body_from_parts(
        text=text,
        model=model,
        tool_calls=tool_calls,
        thinking=thinking,
        stop_reason=stop_reason,
        usage=usage,
    )


def body_from_response(api: str, response: LLMResponse, model: str | None) -> dict[str, Any]:
    """The non-streamed equivalent of a reconstructed response: what the panel edits."""
    return codec_for_api(api).response_body(response, model=model)

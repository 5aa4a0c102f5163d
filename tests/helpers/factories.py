"""One factory for the LLMFlows that tests build by hand, and the request views the capture sees.

``make_flow()`` gives a completed, non-streamed OpenAI chat call with reported usage; every part
can be changed by keyword::

    from tests.helpers.factories import make_flow

    f = make_flow("a", provider="anthropic", model="claude-sonnet-4", text="", stream=True,
                  usage=Usage(input=5000, output=800, source="reported"), latency_s=3.5)

``response=False`` leaves the response out (a flow still pending); ``error=`` sets the error and,
unless ``state`` says otherwise, makes the flow an Error. :func:`request_view` builds the
:class:`~flowbook.providers.base.RequestView` the capture hands the providers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from flowbook.model import (
    FlowAnnotations,
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Tool,
    ToolCall,
    Usage,
)
from flowbook.providers.base import RequestView

#: The ``created`` time of every factory flow unless given (2023-11-14 22:13:20 UTC).
T0 = 1_700_000_000.0
_DEFAULT_USAGE = Usage(input=12, output=5, source="reported")


def make_flow(
    id: str = "f0001",
    *,
    state: FlowState | None = None,
    provider: str = "openai",
    api: str = "chat",
    model: str | None = "gpt-4o",
    method: str = "POST",
    host: str = "api.openai.com",
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    request_body: bytes | None = None,
    system: str | None = None,
    user: str | None = "hello",
    messages: list[Message] | None = None,
    tools: Iterable[str] = (),
    stream: bool = False,
    response: bool = True,
    status: int = 200,
    response_headers: dict[str, str] | None = None,
    response_body: bytes | None = None,
    text: str = "hi there",
    thinking: str = "",
    tool_calls: Iterable[str | ToolCall] = (),
    stop_reason: str | None = "stop",
    usage: Usage | None = _DEFAULT_USAGE,
    error: FlowError | None = None,
    cost: float | None = None,
    session: str | None = None,
    client: str | None = None,
    created: float = T0,
    latency_s: float | None = None,
    ttft_s: float | None = None,
    bookmarked: bool = False,
    tags: Iterable[str] = (),
    comment: str | None = None,
) -> LLMFlow:
    """An LLMFlow with sensible defaults; see the module docstring."""
    if messages is None:
        messages = [Message("user", [Part("text", text=user)])] if user is not None else []
    request = LLMRequest(
        method=method,
        url=f"https://{host}{path}",
        host=host,
        path=path,
        headers=dict(headers or {"content-type": "application/json"}),
        body=request_body,
        model=model,
        system=system,
        messages=messages,
        tools=[Tool(name=n) for n in tools],
        stream=stream,
    )
    resp = None
    if response:
        calls = [
            c if isinstance(c, ToolCall) else ToolCall(id=f"c{i}", name=c, arguments_raw="{}")
            for i, c in enumerate(tool_calls)
        ]
        resp = LLMResponse(
            status_code=status,
            headers=dict(response_headers or {}),
            body=response_body,
            model=model,
            text=text,
            thinking=thinking,
            tool_calls=calls,
            stop_reason=stop_reason,
            usage=copy.deepcopy(usage),  # never share the default between flows
        )
    ts = FlowTimestamps(created=created)
    if latency_s is not None:
        ts.completed = created + latency_s
        ts.first_token = created + (ttft_s if ttft_s is not None else latency_s / 4)
    if state is None:
        if not response:
            state = FlowState.PENDING
        else:
            state = FlowState.ERROR if error is not None else FlowState.COMPLETED
    return LLMFlow(
        id=id,
        flow_type=api,
        state=state,
        request=request,
        response=resp,
        error=error,
        metadata=FlowMetadata(
            provider=provider, api=api, cost_usd=cost, session=session, client=client
        ),
        timestamps=ts,
        annotations=FlowAnnotations(bookmarked=bookmarked, tags=list(tags), comment=comment),
    )


def request_view(
    path: str = "/v1/chat/completions",
    body: bytes | dict[str, Any] | None = None,
    *,
    method: str = "POST",
    host: str = "127.0.0.1",
    port: int = 8000,
    headers: dict[str, str] | None = None,
) -> RequestView:
    """The RequestView of a request to ``http://host:port/path`` (a dict body is sent as JSON)."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    hdrs = {"content-type": "application/json"} if headers is None else dict(headers)
    return RequestView(
        method=method,
        url=f"http://{host}:{port}{path}",
        host=host,
        path=path,
        headers={k.lower(): v for k, v in hdrs.items()},
        body=raw,
        port=port,
    )

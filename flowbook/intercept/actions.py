"""What the interceptor does to a mitmproxy flow: edit the request, answer it itself (mock,
block, drop), or replace the response; :func:`apply_decision` carries out what was decided for a
paused flow. Runs on the proxy loop, called by the controller.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowbook.intercept.edit import modify_body
from flowbook.intercept.host import InterceptHost
from flowbook.intercept.pending import Decision, PendingFlow
from flowbook.intercept.render import api_of, codec_of, error_reply
from flowbook.model import Api, ErrorType, FlowError, FlowState, LLMFlow, LLMResponse

if TYPE_CHECKING:  # these run on the proxy loop; importing this module must not load mitmproxy
    from mitmproxy import http

ORIG_REQ_KEY = "flowbook_intercept_orig_request"
ORIG_RESP_KEY = "flowbook_intercept_orig_response"
LLM_KEY = "flowbook_intercept_llm"
OUTCOME_KEY = "flowbook_intercept_outcome"


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def client_stream(flow: http.HTTPFlow, llm: LLMFlow) -> bool:
    """Does the client expect a stream? (The addon notes it when it buffers a stream.)"""
    if api_of(llm) == Api.KIRO:  # Kiro answers only as an event stream
        return True
    noted = flow.metadata.get("flowbook_client_stream")
    if noted is not None:
        return bool(noted)
    if flow.response is not None:
        ct = flow.response.headers.get("content-type", "").lower()
        if "event-stream" in ct or "eventstream" in ct:
            return True
    return bool(llm.request.stream) or "streamGenerateContent" in flow.request.path


def keep_original_request(flow: http.HTTPFlow, llm: LLMFlow, host: InterceptHost) -> None:
    """Record the request as it arrived, once, before the first change."""
    if not flow.metadata.get(ORIG_REQ_KEY):
        flow.metadata[ORIG_REQ_KEY] = True
        host.record_original_request(llm.id, llm.request.to_dict())


def keep_original_response(flow: http.HTTPFlow, llm: LLMFlow, host: InterceptHost) -> None:
    if flow.metadata.get(ORIG_RESP_KEY) or flow.response is None:
        return
    flow.metadata[ORIG_RESP_KEY] = True
    resp = flow.response
    original = LLMResponse(
        status_code=resp.status_code,
        reason=resp.reason,
        headers={k.lower(): v for k, v in resp.headers.items()},
        body=resp.get_content(strict=False),
    )
    host.record_original_response(llm.id, original.to_dict(include_events=False))


def request_json(flow: http.HTTPFlow) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(flow.request.get_content(strict=False) or b"")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def apply_headers(headers: http.Headers, changes: dict[str, str | None]) -> None:
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value


def apply_modify(
    flow: http.HTTPFlow, llm: LLMFlow, host: InterceptHost, params: dict[str, Any]
) -> None:
    """A modify rule: JSON field overrides and header changes on the outgoing request."""
    keep_original_request(flow, llm, host)
    codec = codec_of(llm)
    body_keys = {"model", "temperature", "max_tokens", "top_p", "system", "set", "remove"}
    if body_keys & set(params):
        body = request_json(flow)
        if body is None:
            host.notify(
                f"flow {llm.id}: request body is not JSON; modify changed headers only",
                level="warning",
            )
        else:
            flow.request.content = dumps(modify_body(codec.api, body, params, codec=codec))
    if not codec.model_in_body() and "model" in params:
        flow.request.path = codec.model_path(flow.request.path, str(params["model"]))
    changes: dict[str, str | None] = {k: str(v) for k, v in (params.get("headers") or {}).items()}
    changes.update({k: None for k in params.get("remove_headers") or []})
    apply_headers(flow.request.headers, changes)
    host.request_changed(llm.id)


def replace_request(
    flow: http.HTTPFlow,
    llm: LLMFlow,
    host: InterceptHost,
    body: dict[str, Any] | None,
    headers: dict[str, str | None] | None,
) -> None:
    """A resume with an edited request."""
    keep_original_request(flow, llm, host)
    if body is not None:
        flow.request.content = dumps(body)
        model = body.get("model")
        codec = codec_of(llm)
        if not codec.model_in_body() and isinstance(model, str):
            flow.request.path = codec.model_path(flow.request.path, model)
    if headers:
        apply_headers(flow.request.headers, headers)
    host.request_changed(llm.id)


def _set_response(
    flow: http.HTTPFlow,
    status: int,
    content: bytes,
    ctype: str,
    extra: dict[str, str] | None = None,
) -> None:
    headers = {"content-type": ctype, **(extra or {})}
    if flow.response is None:
        from mitmproxy import http

        flow.response = http.Response.make(status, content, headers)
    else:
        # Keep upstream's other headers, but the body is ours now: no stale length or encoding.
        resp = flow.response
        for name in ("content-encoding", "content-length", "transfer-encoding"):
            resp.headers.pop(name, None)
        resp.status_code = status
        resp.headers.update(headers)
        resp.content = content


def mock_body(
    llm: LLMFlow, text: str | None, body: dict[str, Any] | None, model: str | None = None
) -> dict[str, Any]:
    """The body a mock answers with: the given body, or ``text`` in the provider's format."""
    if body is not None:
        return body
    return codec_of(llm).body_from_parts(text=text or "", model=model or llm.model)


def send_body(
    flow: http.HTTPFlow,
    llm: LLMFlow,
    body: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer (or re-answer) with ``body``, as a stream when the client asked for one."""
    if client_stream(flow, llm) and status < 400:
        encoded = codec_of(llm).encode_stream(body, llm.request)
        content, ctype = encoded.body, encoded.content_type
    else:
        content, ctype = dumps(body), "application/json"
    _set_response(flow, status, content, ctype, {"x-flowbook-intercept": "1", **(headers or {})})


def send_error(
    flow: http.HTTPFlow, llm: LLMFlow, host: InterceptHost, status: int, message: str, outcome: str
) -> None:
    """End the flow with an error reply in the provider's format; the flow is Cancelled."""
    if flow.response is not None:
        keep_original_response(flow, llm, host)
    status, headers, content = error_reply(api_of(llm), status, message, codec=codec_of(llm))
    ctype = headers.pop("content-type")
    _set_response(flow, status, content, ctype, headers)
    flow.metadata[OUTCOME_KEY] = outcome
    host.set_error(
        llm.id, FlowError(type=ErrorType.CANCELLED, message=message, status=status, retryable=False)
    )


def editable_response(flow: http.HTTPFlow, llm: LLMFlow) -> dict[str, Any] | None:
    """The response as a JSON object to edit: the body itself, or a stream's equivalent body."""
    resp = flow.response
    if resp is None:
        return None
    content = resp.get_content(strict=False) or b""
    if not client_stream(flow, llm) or resp.status_code >= 400:
        try:
            body = json.loads(content)
            return body if isinstance(body, dict) else {"body": body}
        except ValueError:
            return {"text": content.decode("utf-8", "replace")}
    rebuilt = assemble(flow, llm, content)
    return codec_of(llm).response_body(rebuilt, model=llm.model)


def assemble(flow: http.HTTPFlow, llm: LLMFlow, content: bytes) -> LLMResponse:
    """Rebuild a buffered stream with the provider's own decoder and assembler."""
    from flowbook.providers import registry
    from flowbook.providers.base import RequestView
    from flowbook.providers.rebuild import rebuild_response

    resp = flow.response
    assert resp is not None
    try:
        provider = registry.get(llm.metadata.provider)
    except KeyError as exc:  # the editable view is best effort; traffic is unaffected
        out = LLMResponse(status_code=resp.status_code)
        out.text = f"(flowbook could not rebuild this stream: {exc})"
        return out
    view = RequestView(
        method=flow.request.method,
        url=flow.request.pretty_url,
        host=flow.request.pretty_host,
        path=flow.request.path,
        headers={k.lower(): v for k, v in flow.request.headers.items()},
        body=flow.request.get_content(strict=False) or b"",
    )
    rebuilt = rebuild_response(
        provider,
        llm.metadata.api,
        llm.request,
        view,
        status=resp.status_code,
        headers=dict(resp.headers.items()),
        body=content,
    )
    out = rebuilt.response
    failed = [e for e in rebuilt.parse_errors if e.startswith("rebuild failed")]
    if failed and not out.text:
        out.text = f"(flowbook could not rebuild this stream: {failed[0]})"
    return out


def apply_decision(
    flow: http.HTTPFlow,
    llm: LLMFlow,
    host: InterceptHost,
    p: PendingFlow,
    d: Decision,
    notice: Callable[[str, str, str], Any],
) -> bool:
    """Carry out the decision on a paused flow; True when the flow was answered or ended here.

    ``notice(kind, flow_id, message)`` is the controller's notice signal (timeout, released).
    """
    kind = d.kind
    outcome = "resumed"
    if kind == "timeout":
        kind = "drop" if p.timeout_action == "drop" else "resume"
        outcome = f"timeout_{p.timeout_action}"
        msg = f"Flow {p.id} auto-released after {p.timeout:g}s ({p.timeout_action})"
        host.notify(msg, level="warning")
        notice("timeout", p.id, msg)
    ended = False
    if kind == "drop":
        why = (
            "was not approved within the intercept timeout"
            if d.kind == "timeout"
            else "was dropped by flowbook's interceptor"
        )
        send_error(flow, llm, host, 400, f"Request {why} (flowbook flow {p.id}).", "dropped")
        outcome = outcome if d.kind == "timeout" else "dropped"
        ended = True
    elif kind == "mock":
        if p.stage == "response":
            keep_original_response(flow, llm, host)
        body = mock_body(llm, d.mock_text, d.mock_body)
        send_body(flow, llm, body)
        flow.metadata[OUTCOME_KEY] = outcome = "mocked"
        host.set_state(llm.id, FlowState.PENDING)
        if p.stage == "response":
            host.response_changed(llm.id)
        ended = True
    else:
        if p.stage == "request" and (d.request_body is not None or d.headers):
            replace_request(flow, llm, host, d.request_body, d.headers)
            outcome = "edited"
        elif p.stage == "response" and (d.response_body is not None or d.headers):
            keep_original_response(flow, llm, host)
            if d.response_body is not None:
                status = flow.response.status_code if flow.response else 200
                send_body(flow, llm, d.response_body, status=status)
            if d.headers and flow.response is not None:
                apply_headers(flow.response.headers, d.headers)
            host.response_changed(llm.id)
            outcome = "edited"
        host.set_state(llm.id, FlowState.PENDING)
    if d.kind != "timeout":
        notice("released", p.id, f"flow {p.id} {outcome}")
    host.record_intercept(
        llm.id,
        {
            "stage": p.stage,
            "reason": p.reason,
            "paused_at": p.paused_at,
            "released_at": time.time(),
            "outcome": outcome,
        },
    )
    return ended

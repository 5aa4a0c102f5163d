"""Malformed requests to LLM endpoints are flows (issue 11 §2).

Through the real proxy in reverse mode in front of the fake upstream: a body that is invalid,
truncated, binary, empty-object JSON or sent with the wrong content type still reaches the
upstream and the client, and it is exactly one flow with its raw bytes, a request parse error
saying what is wrong, and the upstream's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.model import ErrorType, LLMFlow
from tests.helpers.flows import wait_until_final

JSON = "application/json"
CHAT = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
MESSAGES = (
    b'{"model": "claude-haiku-4-5", "max_tokens": 50, '
    b'"messages": [{"role": "user", "content": "hi"}]}'
)

# case → (body, content type, what the request parse error must say)
CASES: dict[str, tuple[bytes, str, str]] = {
    "invalid_json": (b'{"model": "gpt-4o", "messages": [}', JSON, "not valid JSON"),
    "truncated": (b'{"model": "gpt-4o", "messages": [', JSON, "ends before its JSON is complete"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", JSON, "binary"),
    "empty_object": (b"{}", JSON, "has no 'model'"),
    "form_encoded": (
        b"model=gpt-4o&messages=hi",
        "application/x-www-form-urlencoded",
        "content-type is 'application/x-www-form-urlencoded'",
    ),
}
PATHS = ["/v1/chat/completions", "/v1/messages"]


@pytest.fixture(params=[False, True], ids=["proxy-thread", "proxy-process"])
def proxy_url(
    upstream: FakeUpstream, data_dir: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The capture with mitmproxy in a thread, and in a child process of its own."""
    mon = fb.start(
        port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir, own_process=request.param
    )
    yield mon.proxy_url
    fb.stop()


def one_new_flow(before: set[str]) -> LLMFlow:
    assert wait_until_final()
    new = set(fb.flows()["id"]) - before
    assert len(new) == 1, f"expected exactly one new flow, got {len(new)}"
    flow = fb.get_flow(new.pop())
    assert flow is not None
    return flow


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_request_is_one_flow_with_its_bytes_error_and_answer(
    proxy_url: str, path: str, case: str
) -> None:
    body, ctype, problem = CASES[case]
    before = set(fb.flows()["id"])
    with httpx.Client(base_url=proxy_url, timeout=10) as c:
        got = c.post(path, content=body, headers={"content-type": ctype})
    flow = one_new_flow(before)
    assert flow.request is not None and flow.request.body == body
    assert flow.request.path == path
    assert flow.error is not None and flow.error.type == ErrorType.PARSE
    assert flow.error.code == "request_parse"
    assert problem in flow.error.message, flow.error.message
    assert any(e.startswith("request: ") for e in flow.metadata.parse_errors)
    # Whatever the upstream answered is on the flow, as the client received it.
    assert flow.response is not None
    assert flow.response.status_code == got.status_code
    assert flow.response.body == got.content
    assert flow.state == ("error" if got.status_code >= 400 else "completed")
    if got.status_code >= 400:
        assert f"upstream answered {got.status_code}" in flow.error.message


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)]
)
def test_a_well_formed_body_sent_as_text_plain_is_noted_only_when_rejected(
    proxy_url: str, upstream: FakeUpstream, path: str, body: bytes
) -> None:
    """Many servers read a JSON body whatever its label: the label is a problem only beside a
    bad body (above) or when the upstream rejects the call."""
    before = set(fb.flows()["id"])
    with httpx.Client(base_url=proxy_url, timeout=10) as c:
        got = c.post(path, content=body, headers={"content-type": "text/plain"})
    assert got.status_code == 200  # the fake, like many servers, reads it anyway
    flow = one_new_flow(before)
    assert flow.request is not None and flow.request.body == body
    assert flow.request.model is not None  # the body itself was understood
    assert flow.state == "completed" and flow.error is None

    rejection = b'{"error": {"message": "use application/json"}}'
    upstream.script(path, status=415, headers={"Content-Type": JSON}, chunks=[rejection])
    before = set(fb.flows()["id"])
    with httpx.Client(base_url=proxy_url, timeout=10) as c:
        got = c.post(path, content=body, headers={"content-type": "text/plain"})
    assert got.status_code == 415
    flow = one_new_flow(before)
    assert flow.state == "error"
    assert flow.error is not None and flow.error.type == ErrorType.PARSE
    assert "content-type is 'text/plain', not application/json" in flow.error.message
    assert "upstream answered 415: use application/json" in flow.error.message
    assert flow.response is not None and flow.response.body == got.content


def test_well_formed_calls_have_no_request_error(proxy_url: str) -> None:
    before = set(fb.flows()["id"])
    with httpx.Client(base_url=proxy_url, timeout=10) as c:
        assert c.post("/v1/chat/completions", content=CHAT, headers={"content-type": JSON})
    flow = one_new_flow(before)
    assert flow.state == "completed" and flow.error is None
    assert flow.metadata.parse_errors == []


def test_other_requests_to_the_target_are_still_no_flows(proxy_url: str) -> None:
    with httpx.Client(base_url=proxy_url, timeout=10) as c:
        c.post("/some/other/api", content=b"{not json", headers={"content-type": JSON})
        c.get("/v1/chat/completions")  # not a call: no body, wrong method
    fb.wait_idle()
    assert len(fb.flows()) == 0

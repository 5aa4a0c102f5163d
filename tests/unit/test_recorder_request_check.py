"""What the recorder says is wrong with a request, and which requests count as calls at all."""

from __future__ import annotations

import pytest

from flowbook.capture.detection import CallDetector
from flowbook.capture.request_check import (
    ENDPOINT_ONLY,
    content_type_problem,
    request_problems,
)
from flowbook.providers.base import PATH, Detection
from tests.helpers.factories import request_view

CHAT = Detection("openai_compatible", "chat", ENDPOINT_ONLY)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "request body is empty (expected a JSON object)"),
        (b"  \n", "request body is empty (expected a JSON object)"),
        (b'{"model": "x", "messages": [', "request body ends before its JSON is complete"),
        (b'{"model": x}', "request body is not valid JSON: Expecting value (line 1 column 11)"),
        (b"\xff\xfe{}", "request body is binary (4 bytes, not UTF-8 text at byte 0)"),
        (b"[1, 2]", "request body is a JSON array, not an object"),
        (b'"hi"', "request body is a JSON string, not an object"),
        (b"{}", "request body has no 'model', 'messages'"),
        (b'{"model": "x"}', "request body has no 'messages'"),
        (b'{"model": "x", "messages": 3}', "request body does not look like a"),
    ],
)
def test_body_problems_are_named(body: bytes, expected: str) -> None:
    problems = request_problems(request_view(body=body), CHAT)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_missing_fields_are_checked_only_for_calls_known_by_their_endpoint_alone() -> None:
    by_path = Detection("openai", "chat", PATH)
    assert request_problems(request_view(body=b"{}"), by_path) == []
    assert request_problems(request_view(body=b"{oops"), by_path) != []  # invalid is invalid


def test_other_apis_and_methods_are_not_checked() -> None:
    other = Detection("openai", "other", PATH)
    assert request_problems(request_view("/v1/models", b"", method="POST"), other) == []
    assert request_problems(request_view(body=b"", method="GET"), CHAT) == []


def test_content_type_problem() -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert content_type_problem(request_view(body=b"a=b", headers=form), CHAT) == (
        "content-type is 'application/x-www-form-urlencoded', not application/json"
    )
    kiro = {"content-type": "application/x-amz-json-1.0"}
    assert content_type_problem(request_view(body=b"{}", headers=kiro), CHAT) is None
    assert content_type_problem(request_view(body=b"{}", headers={}), CHAT) is None
    ollama = Detection("ollama", "chat", ENDPOINT_ONLY)
    assert content_type_problem(request_view("/api/chat", b"{}", headers=form), ollama) is None


@pytest.mark.parametrize(
    ("path", "provider", "api"),
    [
        ("/v1/chat/completions", "openai_compatible", "chat"),
        ("/openai/v1/chat/completions/", "openai_compatible", "chat"),
        ("/v1/responses", "openai_compatible", "responses"),
        ("/v1/embeddings", "openai_compatible", "embeddings"),
        ("/v1/messages", "anthropic", "messages"),
        ("/api/chat", "ollama", "chat"),
        ("/api/generate", "ollama", "generate"),
    ],
)
def test_known_endpoints_are_calls_whatever_the_body(path: str, provider: str, api: str) -> None:
    found = CallDetector().detect(request_view(path, b"\x00garbage"))
    assert found is not None
    assert (found[1].provider, found[1].api, found[1].strength) == (provider, api, ENDPOINT_ONLY)


def test_unknown_paths_and_reads_are_not_calls() -> None:
    d = CallDetector()
    assert d.detect(request_view("/some/other/api", b"{oops")) is None
    assert d.detect(request_view("/v1/chat/completions", b"", method="GET")) is None


def test_well_formed_calls_keep_the_providers_detection() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    found = CallDetector().detect(request_view(body=body))
    assert found is not None and found[1].strength > ENDPOINT_ONLY

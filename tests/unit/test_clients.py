"""detect_client: a short client name from request headers."""

from __future__ import annotations

import pytest

from flowbook.providers.clients import detect_client
from tests.helpers.fixtures import load_cassette

KIRO_CLI_UA = (
    "aws-sdk-rust/1.3.16 ua/2.1 api/codewhispererstreaming/0.1.16551 os/linux "
    "lang/rust/1.92.0 md/appVersion-2.4.1 app/AmazonQ-For-CLI"
)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"User-Agent": "claude-cli/1.0.83 (external, cli)", "x-app": "cli"}, "Claude Code 1.0.83"),
        ({"user-agent": "claude-cli/2.0.1 (external, sdk-ts)"}, "Claude Code 2.0.1"),
        ({"user-agent": "codex_cli_rs/0.20.0 (Mac OS 14.5; arm64)", "originator": "codex_cli_rs"},
         "Codex CLI 0.20.0"),
        ({"user-agent": "codex-tui/0.135.0 (Linux)", "originator": "codex-tui"},
         "Codex CLI 0.135.0"),
        ({"user-agent": KIRO_CLI_UA, "x-amz-user-agent": "aws-sdk-rust/1.3.16 app/AmazonQ-For-CLI"},
         "Kiro CLI 2.4.1"),
        ({"x-amz-user-agent": "aws-sdk-js/1.0.34 KiroIDE-0.2.13-66c23a8c5d15afab",
          "user-agent": "aws-sdk-js/1.0.34 ua/2.1 os/darwin lang/js"}, "Kiro IDE 0.2.13"),
        ({"user-agent": "Cursor/1.2.3"}, "Cursor 1.2.3"),
        ({"user-agent": "GeminiCLI/0.1.5 (linux; x64)"}, "Gemini CLI 0.1.5"),
        ({"User-Agent": "OpenAI/Python 1.99.9"}, "OpenAI Python SDK 1.99.9"),
        ({"User-Agent": "OpenAI/JS 5.1.0"}, "OpenAI Node SDK 5.1.0"),
        ({"User-Agent": "Anthropic/Python 0.89.0"}, "Anthropic Python SDK 0.89.0"),
        ({"user-agent": "google-genai-sdk/1.20.0 gl-python/3.12.1"},
         "google-genai Python SDK 1.20.0"),
        ({"user-agent": "curl/8.5.0"}, "curl 8.5.0"),
        ({"user-agent": "python-httpx/0.28.1"}, "httpx 0.28.1"),
        ({"x-stainless-lang": "js", "x-stainless-package-version": "0.50.0",
          "anthropic-version": "2023-06-01"}, "Anthropic Node SDK 0.50.0"),
        ({"user-agent": "MyInternalTool/3.1"}, "MyInternalTool"),
        ({}, None),
    ],
)  # fmt: skip
def test_detect_client(headers: dict[str, str], expected: str | None) -> None:
    assert detect_client(headers) == expected


def test_recorded_headers() -> None:
    ia = load_cassette("anthropic/messages-stream-tool-use-gzip.cassette.yaml")[0]
    assert detect_client(ia.request.headers) == "Anthropic Python SDK 0.89.0"
    ia = load_cassette("openai/responses-stream-function-call-then-text.cassette.yaml")[0]
    assert detect_client(ia.request.headers) == "OpenAI Python SDK 2.34.0"

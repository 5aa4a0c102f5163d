"""Generated code, run for real against flowbook's fake upstream, gets the original answer.

The original call is made by the official SDK through flowbook's proxy (reverse mode); the
code generated from the captured flow then calls the fake upstream directly. Every output is
turned back into a response by flowbook's own import builder (same provider parsers as live
capture) and compared with what the original call received. The prompt is hostile on purpose:
quotes, ``$``, backticks, backslashes, newlines, unicode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import flowbook as fb
from flowbook.io.builder import Exchange, build_flow
from flowbook.model import LLMFlow
from tests.helpers.flows import only_flow, wait_until_final

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ESBUILD = ROOT / "widgets" / "node_modules" / ".bin" / "esbuild"
PROMPT = 'Say "hi" it\'s $HOME `whoami` \\n back\\slash ünïcødé 🎉 \u2028\nnext line $(id)'
KEYS = {
    "OPENAI_API_KEY": "sk-proj-codegenTest0123456789abcdefXYZ",
    "ANTHROPIC_API_KEY": "sk-ant-api03-codegenTest0123456789abcdefXYZ",
    "GEMINI_API_KEY": "AIzaSyCodegenTest0123456789abcdefghijk",
    # The fake upstream on 127.0.0.1 is an OpenAI-compatible server: its key is API_KEY.
    "API_KEY": "sk-proj-codegenTest0123456789abcdefXYZ",
}


def _openai_chat(url: str, stream: bool) -> None:
    c = openai.OpenAI(api_key=KEYS["OPENAI_API_KEY"], base_url=url + "/v1", max_retries=0)
    r = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=stream
    )
    if stream:
        list(r)  # type: ignore[arg-type]


def _openai_responses(url: str, stream: bool) -> None:
    c = openai.OpenAI(api_key=KEYS["OPENAI_API_KEY"], base_url=url + "/v1", max_retries=0)
    r = c.responses.create(model="gpt-4.1-mini", input=PROMPT, stream=stream)
    if stream:
        list(r)  # type: ignore[arg-type]


def _anthropic(url: str, stream: bool) -> None:
    c = anthropic.Anthropic(api_key=KEYS["ANTHROPIC_API_KEY"], base_url=url, max_retries=0)
    r = c.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": PROMPT}],
        stream=stream,
    )
    if stream:
        list(r)  # type: ignore[arg-type]


def _gemini(url: str, stream: bool) -> None:
    c = genai.Client(api_key=KEYS["GEMINI_API_KEY"], http_options=types.HttpOptions(base_url=url))
    if stream:
        list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    else:
        c.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)


CALLS: dict[str, tuple[Callable[[str, bool], None], bool]] = {
    "openai-chat-stream": (_openai_chat, True),
    "openai-chat": (_openai_chat, False),
    "openai-responses-stream": (_openai_responses, True),
    "anthropic-stream": (_anthropic, True),
    "anthropic": (_anthropic, False),
    "gemini-stream": (_gemini, True),
    "gemini": (_gemini, False),
}


def capture(name: str, proxy_url: str) -> LLMFlow:
    call, stream = CALLS[name]
    call(proxy_url, stream)
    assert wait_until_final()
    flow = only_flow()
    assert flow.response is not None and flow.response.text, flow
    return flow


def rebuilt_text(original: LLMFlow, stdout: bytes) -> str:
    """What flowbook's parsers make of a program's output, taken as the response body."""
    req = original.request
    assert original.response is not None
    x = Exchange(
        method=req.method,
        url=req.url,
        request_headers=dict(req.headers),
        request_body=req.body or b"",
        status=200,
        response_headers={"content-type": original.response.headers.get("content-type", "")},
        response_body=stdout,
        response_body_decoded=True,
        created=1.0,
    )
    flow = build_flow(x)
    assert flow is not None and flow.response is not None
    return flow.response.text


def run(cmd: list[str], cwd: Path, timeout: float = 180) -> bytes:
    env = {**os.environ, **KEYS}
    env.pop("HTTPS_PROXY", None)
    env.pop("HTTP_PROXY", None)
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-4000:])
    return r.stdout


def check_output(flow: LLMFlow, stdout: bytes, streamed_text: bool) -> None:
    """Printed text (streamed programs) or a JSON body (the rest) gives the original answer."""
    assert flow.response is not None
    expected = flow.response.text
    if streamed_text:
        assert stdout.decode("utf-8") == expected + "\n"
    else:
        assert rebuilt_text(flow, stdout) == expected


def no_literal_secret(code: str) -> None:
    for key in KEYS.values():
        assert key not in code and key[-12:] not in code


@pytest.mark.parametrize("name", list(CALLS))
def test_curl_and_python_repeat_the_call(name: str, proxy_url: str, tmp_path: Path) -> None:
    flow = capture(name, proxy_url)
    stream = CALLS[name][1]
    curl = fb.generate_code(flow.id, "curl")
    no_literal_secret(curl)
    (tmp_path / "call.sh").write_text(curl)
    check_output(flow, run(["sh", "call.sh"], tmp_path), streamed_text=False)
    if stream and shutil.which("jq"):
        # The comment's pipeline turns curl's raw events into the text alone.
        marker = "# text only: append  "
        lines = curl.split("\n")  # not splitlines(): the prompt holds U+2028
        pipe = next(ln for ln in lines if ln.startswith(marker))[len(marker) :]
        command = "\n".join(ln for ln in lines if not ln.startswith("#")).rstrip("\n")
        (tmp_path / "text.sh").write_text(command + " " + pipe + "\n")
        assert run(["sh", "text.sh"], tmp_path).decode() == flow.response.text  # type: ignore[union-attr]

    py = fb.generate_code(flow.id, "python")
    no_literal_secret(py)
    (tmp_path / "call.py").write_text(py)
    check_output(flow, run([sys.executable, "call.py"], tmp_path), streamed_text=stream)

    sdk = fb.generate_code(flow.id, "python", sdk=True)
    no_literal_secret(sdk)
    (tmp_path / "call_sdk.py").write_text(sdk)
    out = run([sys.executable, "call_sdk.py"], tmp_path)
    check_output(flow, out, streamed_text=stream)


@pytest.mark.parametrize("name", list(CALLS))
def test_typescript_runs_under_node(name: str, proxy_url: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not ESBUILD.exists():
        pytest.skip("needs node and widgets/node_modules/.bin/esbuild (make setup)")
    flow = capture(name, proxy_url)
    ts = fb.generate_code(flow.id, "typescript")
    no_literal_secret(ts)
    (tmp_path / "call.ts").write_text(ts)
    run([str(ESBUILD), "call.ts", "--outfile=call.js", "--log-level=warning"], tmp_path)
    check_output(flow, run([node, "call.js"], tmp_path), streamed_text=CALLS[name][1])


@pytest.mark.parametrize("name", ["openai-chat-stream", "anthropic-stream", "gemini"])
def test_go_compiles_and_runs(name: str, proxy_url: str, tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs Go (Debian's golang package; `make test` installs it)")
    flow = capture(name, proxy_url)
    code = fb.generate_code(flow.id, "go")
    no_literal_secret(code)
    (tmp_path / "main.go").write_text(code)
    os.environ.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    out = run([go, "run", "main.go"], tmp_path, timeout=600)
    check_output(flow, out, streamed_text=CALLS[name][1])


@pytest.mark.parametrize("name", ["openai-chat-stream", "anthropic", "gemini-stream"])
def test_rust_parses(name: str, proxy_url: str, tmp_path: Path) -> None:
    """rustfmt parses the program (reqwest and serde_json are not available offline, so it is
    not compiled here)."""
    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        pytest.skip("needs rustfmt (rustup component add rustfmt)")
    flow = capture(name, proxy_url)
    code = fb.generate_code(flow.id, "rust")
    no_literal_secret(code)
    (tmp_path / "main.rs").write_text(code)
    r = subprocess.run(
        [rustfmt, "--edition", "2021", "--check", "main.rs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "error" not in r.stderr, r.stderr
    assert "fn main()" in code and "reqwest::blocking" in code

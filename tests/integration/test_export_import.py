"""Export and import end to end: a real ``mitmdump -w`` file imported, live captures exported
as HAR and loaded back, and the ``%flowmon export`` / ``flowbook export`` commands."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from mitmproxy import io as mio

import flowbook as fb
from flowbook import api
from flowbook.fake_upstream import FakeUpstream
from tests.helpers.flows import wait_until_final
from tests.unit.test_export_har import assert_same_flow, validator

pytestmark = pytest.mark.integration

MITMDUMP = Path(sys.executable).with_name("mitmdump")
KEY = "sk-proj-MitmdumpImportKey0123456789abcdef"
PROMPT = 'What\'s the weather in Paris? `quote` "and" $HOME'


@pytest.fixture
def mitmdump_file(upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real mitmdump reverse-proxying to the fake upstream and writing every flow to a file."""
    out = tmp_path / "capture.mitm"
    proc = subprocess.Popen(
        [
            str(MITMDUMP),
            "--mode",
            f"reverse:{upstream.url}",
            "--listen-host",
            "127.0.0.1",
            "-p",
            "0",
            "-w",
            str(out),
            "--set",
            "termlog_verbosity=info",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    port = None
    for line in proc.stdout:
        m = re.search(r"listening at 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    assert port, "mitmdump did not start"
    try:
        yield f"http://127.0.0.1:{port}", out
    finally:
        proc.send_signal(signal.SIGINT)  # mitmdump flushes and closes the file on SIGINT
        proc.wait(timeout=30)


def test_a_mitmdump_file_imports_every_llm_call(
    mitmdump_file: tuple[str, Path], data_dir: Path
) -> None:
    url, out = mitmdump_file
    oa = openai.OpenAI(api_key=KEY, base_url=url + "/v1", max_retries=0)
    chunks = list(
        oa.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    an = anthropic.Anthropic(api_key="sk-ant-api03-" + "x" * 30, base_url=url, max_retries=0)
    msg = an.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": PROMPT}],
        tools=[
            {
                "name": "get_weather",
                "description": "weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
    )
    gm = genai.Client(api_key="AIzaSy" + "k" * 33, http_options=types.HttpOptions(base_url=url))
    g_text = "".join(
        c.text or ""
        for c in gm.models.generate_content_stream(model="gemini-2.5-flash", contents="hello there")
    )
    import httpx

    httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {KEY}"})  # not an LLM call
    # mitmdump writes flows as they finish; stop it to flush the file.
    mitmdump_file_stop(out)
    with open(out, "rb") as f:
        assert len(list(mio.FlowReader(f).stream())) == 4
    ids = fb.load(out)
    assert len(ids) == 3
    flows = {f.provider: f for f in (fb.get_flow(i) for i in ids)}
    chat = flows["openai_compatible"] if "openai_compatible" in flows else flows["openai"]
    assert chat.request.stream and chat.response.text == streamed  # type: ignore[union-attr]
    assert chat.usage.source == "reported" and len(chat.response.events) > 3  # type: ignore[union-attr]
    assert chat.request.messages[0].text == PROMPT
    claude = flows["anthropic"]
    assert [c.name for c in claude.response.tool_calls] == [  # type: ignore[union-attr]
        b.name for b in msg.content if b.type == "tool_use"
    ]
    assert flows["gemini"].response.text == g_text  # type: ignore[union-attr]
    everything = json.dumps([f.to_dict() for f in flows.values()])
    assert "MitmdumpImportKey" not in everything, "secrets are masked at rest on import too"
    assert fb.load(out) == [], "a second load adds nothing"


def mitmdump_file_stop(out: Path) -> None:
    """Wait until mitmdump has written the four flows (it appends each as it completes)."""
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with open(out, "rb") as f:
                if len(list(mio.FlowReader(f).stream())) >= 4:
                    return
        except Exception:
            pass
        time.sleep(0.1)


def test_live_capture_exports_har_that_loads_back_equal(
    proxy_url: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oa = openai.OpenAI(api_key=KEY, base_url=proxy_url + "/v1", max_retries=0)
    list(
        oa.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": PROMPT}]
        )
    )
    an = anthropic.Anthropic(api_key="sk-ant-api03-" + "y" * 30, base_url=proxy_url, max_retries=0)
    with an.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        s.until_done()
    assert wait_until_final()
    captured = [fb.get_flow(i) for i in fb.flows(sort_order="asc")["id"]]
    assert len(captured) == 2 and all(f.response and f.response.events for f in captured)
    path = fb.export(None, "har", tmp_path / "live.har")
    doc = json.loads(Path(path).read_text())
    assert not list(validator().iter_errors(doc))
    assert KEY not in Path(path).read_text()
    for entry in doc["log"]["entries"]:
        offsets = [e["offset_ms"] for e in entry["_llm"]["stream_events"]]
        assert offsets == sorted(offsets) and offsets[0] >= entry["timings"]["send"]
    fb.stop()
    monkeypatch.setenv("FLOWBOOK_DATA_DIR", str(tmp_path / "elsewhere"))
    api._reset_for_tests()
    assert fb.load(path) == [f.id for f in captured]
    for flow in captured:
        assert_same_flow(fb.get_flow(flow.id), flow)


def test_flowmon_export_and_the_flowbook_command(
    proxy_url: str, data_dir: Path, tmp_path: Path
) -> None:
    # run_line is what %flowmon runs (test_magics_cli drives the registered magic itself;
    # IPython's global test shell can be started only once per process).
    from flowbook.magics import MagicUsageError, run_line

    oa = openai.OpenAI(api_key=KEY, base_url=proxy_url + "/v1", max_retries=0)
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    assert wait_until_final()
    target = tmp_path / "magic.har"
    assert run_line(f"export har {target} --filter model:gpt-4o") == f"exported to {target}"
    assert len(json.loads(target.read_text())["log"]["entries"]) == 1

    with pytest.raises(MagicUsageError, match="unknown export format 'xls'"):
        run_line(f"export xls {tmp_path / 'x'}")
    fb.stop()
    md = tmp_path / "cli.md"
    env = {**os.environ, "FLOWBOOK_DATA_DIR": str(tmp_path / "unused")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowbook.cli",
            "export",
            "markdown",
            str(md),
            "--filter",
            "model:gpt-4o",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "exported to" in r.stdout and md.read_text().startswith("# LLM flows (1)")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowbook.cli",
            "export",
            "xml",
            str(md),
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "unknown export format" in r.stderr


def test_mitmdump_reads_a_flowbook_written_flow_file(data_dir: Path, tmp_path: Path) -> None:
    """The real mitmdump process reads the file flowbook writes (what mitmweb -r does too)."""
    from flowbook.io import source
    from tests.helpers.export_flows import fixture_flows

    flows = fixture_flows()[:4]
    source.add_flows(flows)
    path = fb.export([f.id for f in flows], "mitmproxy", tmp_path / "flowbook.mitm")
    r = subprocess.run(
        [str(MITMDUMP), "-n", "-r", str(path), "--set", "flow_detail=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for flow in flows:
        assert flow.request.path.split("?")[0] in r.stdout
    assert r.stdout.count("POST") == len(flows)

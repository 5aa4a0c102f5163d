"""``mon.client_env()`` on its own routes real programs (curl, Node's fetch and https) through the
monitor; the variables it sets, what it keeps from the user's environment, base-URL mode, and
the capture.json a running monitor announces itself with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowbook as fb
from flowbook.capture import client_env, discovery
from flowbook.capture.monitor import ModeInfo
from flowbook.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(tls=True) as up:
        yield up


def body(text: str) -> str:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})


def test_client_env_alone_captures_curl_and_node(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    for tool in ("curl", "node"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    mon = fb.start(port=0, data_dir=data_dir, ssl_insecure=True)
    try:
        env = {**os.environ, **mon.client_env()}
        url = f"{tls_upstream.url}/v1/chat/completions"
        curl = subprocess.run(
            ["curl", "-sS", "--fail", "-X", "POST", url, "-d", body("curl via client_env")],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert curl.returncode == 0, curl.stderr
        js = (
            f"const r = await fetch({json.dumps(url)}, {{method: 'POST', "
            f"body: {json.dumps(body('fetch via client_env'))}}});"
            "console.log((await r.json()).choices[0].message.content);"
            "const https = await import('node:https');"
            f"const req = https.request({json.dumps(url)}, {{method: 'POST'}}, (res) => {{"
            "  let d = ''; res.on('data', (c) => (d += c));"
            "  res.on('end', () => console.log(JSON.parse(d).choices[0].message.content)); });"
            f"req.end({json.dumps(body('https via client_env'))});"
        )
        node = subprocess.run(
            ["node", "--input-type=module", "-e", js],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert node.returncode == 0, node.stderr
        assert node.stdout.splitlines() == [
            "Echo: fetch via client_env",
            "Echo: https via client_env",
        ]
        fb.wait_idle()
        previews = sorted(fb.flows()["preview"])
        assert previews == ["curl via client_env", "fetch via client_env", "https via client_env"]
    finally:
        fb.stop()


def test_variables_and_what_is_kept_from_the_users_environment(data_dir: Path) -> None:
    mon = fb.start(port=0, data_dir=data_dir)
    try:
        user = {"NODE_OPTIONS": "--max-old-space-size=4096", "NO_PROXY": "localhost,.corp"}
        env = mon.client_env(user)
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            assert env[name] == mon.proxy_url
        # every local server is an LLM call worth seeing: the user's bypass list is not kept
        assert env["NO_PROXY"] == env["no_proxy"] == ""
        bundle = Path(env["SSL_CERT_FILE"])
        assert env["REQUESTS_CA_BUNDLE"] == env["CURL_CA_BUNDLE"] == str(bundle)
        assert mon.ca_cert_path.read_text().strip() in bundle.read_text()
        assert "BEGIN CERTIFICATE" in bundle.read_text().split(mon.ca_cert_path.read_text())[0]
        assert env["NODE_EXTRA_CA_CERTS"] == str(mon.ca_cert_path)
        assert env["NODE_USE_ENV_PROXY"] == "1"
        if shutil.which("keytool"):
            java = env["JAVA_TOOL_OPTIONS"]
            assert f"-Dhttps.proxyPort={mon.port}" in java
            assert (mon.confdir / "java-truststore.p12").exists()
        preload = client_env.PRELOAD
        assert preload.exists(), "build it: cd widgets && node build.mjs"
        assert env["NODE_OPTIONS"] == f'--max-old-space-size=4096 --import "{preload.as_uri()}"'
        again = mon.client_env({**user, "NODE_OPTIONS": env["NODE_OPTIONS"]})
        assert again["NODE_OPTIONS"] == env["NODE_OPTIONS"], "appended once, not twice"
        line = mon.shell_line()
        assert line.startswith("export ") and f"HTTPS_PROXY={mon.proxy_url}" in line
        out = subprocess.run(
            ["sh", "-c", f"{line}; echo $CURL_CA_BUNDLE; echo $NODE_OPTIONS"],
            capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
        assert out.stdout.splitlines() == [str(bundle), f'--import "{preload.as_uri()}"']
        assert "flowbook run --data-dir" in repr(mon) or "flowbook.cli run" in repr(mon)
        assert "mon.run(" in repr(mon)
    finally:
        fb.stop()


def test_base_url_mode_keeps_each_providers_destination_and_path() -> None:
    user = {"OPENAI_BASE_URL": "https://gateway.example:8443/openai/v1/", "NO_PROXY": ".corp"}
    specs = client_env.reverse_modes(user)
    assert specs == [
        "reverse:https://gateway.example:8443",
        "reverse:https://api.anthropic.com",
        "reverse:https://generativelanguage.googleapis.com",
    ]
    modes = [
        ModeInfo(spec=s, kind="reverse", host="127.0.0.1", port=9000 + i)
        for i, s in enumerate(specs)
    ]
    env = client_env.build_env(modes, Path("/nonexistent"), user)
    assert env["OPENAI_BASE_URL"] == env["OPENAI_API_BASE"] == "http://127.0.0.1:9000/openai/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9001"
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9002"
    assert env["NO_PROXY"] == ".corp,127.0.0.1", "a corporate proxy must not take our calls"
    assert "HTTPS_PROXY" not in env and "SSL_CERT_FILE" not in env


def test_forward_and_reverse_together_never_capture_twice(data_dir: Path) -> None:
    mon = fb.start(port=0, mode=["regular", "reverse:https://api.anthropic.com"], data_dir=data_dir)
    try:
        env = mon.client_env({})
        rev = mon.modes[1]
        assert env["ANTHROPIC_BASE_URL"] == rev.url
        assert env["NO_PROXY"] == f"127.0.0.1:{rev.port}"
        assert env["HTTPS_PROXY"] == mon.modes[0].url != rev.url
    finally:
        fb.stop()


def test_capture_json_is_written_removed_and_stale_files_ignored(data_dir: Path) -> None:
    mon = fb.start(port=0, data_dir=data_dir)
    path = data_dir / "capture.json"
    try:
        assert path.stat().st_mode & 0o077 == 0
        live = discovery.read_live(data_dir)
        assert live is not None and live.pid == os.getpid()
        assert [m.url for m in live.modes] == [m.url for m in mon.modes]
        assert live.ca_cert_path == mon.ca_cert_path and live.control_port is None
        data = json.loads(path.read_text())
        assert set(data) == {
            "pid", "host", "port", "modes", "proxy_url", "ca_cert_path", "started",
            "control_port",
        }  # fmt: skip
    finally:
        fb.stop()
    assert not path.exists()
    # a file left by a process that died is stale
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({**data, "pid": dead.pid}))
    assert discovery.read_live(data_dir) is None
    # so is one whose process lives but no longer listens
    path.write_text(json.dumps({**data, "pid": os.getpid()}))
    assert discovery.read_live(data_dir) is None

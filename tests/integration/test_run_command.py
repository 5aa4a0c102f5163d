"""``flowbook run -- CMD``: real programs (curl, Python requests, Node fetch, the official openai
npm package) calling flowbook's fake upstream over TLS with a self-signed certificate, each
unchanged, each call captured; the exit code passed through; ``--reverse`` for programs that
ignore proxies; joining a capture another process runs; ``mon.run`` and ``%flowmon run``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.model import LLMFlow

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


@pytest.fixture
def tls_upstream() -> Iterator[FakeUpstream]:
    """The fake provider over HTTPS, its certificate signed by a CA no client trusts."""
    with FakeUpstream(tls=True) as up:
        yield up


def flowbook_run(
    data_dir: Path, *args: str, extra: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "flowbook.cli", "run", "--data-dir", str(data_dir)]
    cmd += [*(extra or ["--ssl-insecure"]), "--", *args]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=full_env)


def chat_body(text: str, model: str = "gpt-4o-mini") -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})


def stored(data_dir: Path) -> list[LLMFlow]:
    """Every flow on disk in ``data_dir``, oldest first, read back as a later process would."""
    df = fb.flows(include_history=True, sort_order="asc")
    return [fb.get_flow(i) for i in df["id"]]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def test_curl_unchanged_is_captured(data_dir: Path, tls_upstream: FakeUpstream) -> None:
    need("curl")
    url = f"{tls_upstream.url}/v1/chat/completions"
    out = flowbook_run(
        data_dir, "curl", "-sS", "-X", "POST", url, "-H", "content-type: application/json",
        "-d", chat_body("hello from curl"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)["choices"][0]["message"]["content"]
    assert answer == "Echo: hello from curl"
    assert "1 call · 0 errors" in out.stderr and "gpt-4o-mini" in out.stderr
    (flow,) = stored(data_dir)
    assert flow.request.url == url
    assert flow.response is not None and flow.response.text == answer
    assert not (data_dir / "capture.json").exists(), "capture.json removed at the end"


def test_python_requests_unchanged_and_exit_code_passed_through(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    prog = (
        "import requests, sys\n"
        f"r = requests.post('{tls_upstream.url}/v1/chat/completions',"
        f" data={chat_body('hello from requests')!r},"
        " headers={'content-type': 'application/json'})\n"
        "print(r.json()['choices'][0]['message']['content'])\n"
        "sys.exit(5)\n"
    )
    out = flowbook_run(data_dir, sys.executable, "-c", prog)
    assert out.returncode == 5, out.stderr
    assert out.stdout.strip() == "Echo: hello from requests"
    assert "exited 5" in out.stderr
    (flow,) = stored(data_dir)
    assert flow.request.url.startswith(tls_upstream.url)
    assert flow.response is not None and flow.response.text == "Echo: hello from requests"


NODE_FETCH_AND_HTTPS = """
const url = process.argv[1] + "/v1/chat/completions";
const body = (t) => JSON.stringify({model: "gpt-4o-mini", messages: [{role: "user", content: t}]});
const r = await fetch(url, {method: "POST", headers: {"content-type": "application/json"},
                            body: body("hello from fetch")});
console.log((await r.json()).choices[0].message.content);
const https = await import("node:https");
const text = await new Promise((resolve, reject) => {
  const req = https.request(url, {method: "POST", headers: {"content-type": "application/json"}},
    (res) => { let d = ""; res.on("data", (c) => (d += c)); res.on("end", () => resolve(d)); });
  req.on("error", reject);
  req.end(body("hello from https.request"));
});
console.log(JSON.parse(text).choices[0].message.content);
process.exitCode = 7;
"""


def node_major() -> int:
    out = subprocess.run([need("node"), "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().lstrip("v").split(".")[0])


def test_node_fetch_and_https_unchanged_are_captured(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    # On Node < 24 (20 on the test machine) this is the preload's work; from 24 Node's own
    # NODE_USE_ENV_PROXY does it, and the test checks that the result is the same.
    node_major()
    out = flowbook_run(
        data_dir, "node", "--input-type=module", "-e", NODE_FETCH_AND_HTTPS, tls_upstream.url
    )
    assert out.returncode == 7, out.stderr
    assert out.stdout.splitlines() == ["Echo: hello from fetch", "Echo: hello from https.request"]
    flows = stored(data_dir)
    assert [f.response.text for f in flows if f.response] == out.stdout.splitlines()


def _npm_sdk() -> Path:
    need("node")
    script = NODE_DIR / "openai_chat.mjs"
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("the openai npm package is not installed: run `npm ci --prefix tests/node`")
    return script


def _assert_openai_npm_captured(out: subprocess.CompletedProcess[str], data_dir: Path) -> None:
    assert out.returncode == 3, out.stderr
    printed = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert printed == {"plain": "Echo: hi npm (plain)", "streamed": "Echo: hi npm (streamed)"}
    plain, streamed = stored(data_dir)
    assert not plain.request.stream and streamed.request.stream
    assert plain.response is not None and plain.response.text == printed["plain"]
    assert streamed.response is not None and streamed.response.text == printed["streamed"]
    assert streamed.usage is not None and streamed.usage.source == "reported"
    assert "2 calls · 0 errors" in out.stderr


def test_openai_npm_package_streamed_and_not(data_dir: Path, tls_upstream: FakeUpstream) -> None:
    script = _npm_sdk()
    env = {"OPENAI_BASE_URL": f"{tls_upstream.url}/v1", "OPENAI_API_KEY": "sk-test-npm"}
    out = flowbook_run(data_dir, "node", str(script), "hi npm", env={**env, "EXIT_CODE": "3"})
    _assert_openai_npm_captured(out, data_dir)


def test_reverse_captures_the_npm_sdk_without_proxy_or_ca(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    """--reverse: Node 20's fetch ignores proxy variables and no preload is loaded; the SDK's
    OPENAI_BASE_URL (here a self-hosted endpoint) is pointed at a reverse listener instead."""
    script = _npm_sdk()
    env = {
        "OPENAI_BASE_URL": f"{tls_upstream.url}/v1",
        "OPENAI_API_KEY": "sk-test-npm",
        "EXIT_CODE": "3",
        "NODE_OPTIONS": "",
    }
    out = flowbook_run(
        data_dir, "node", str(script), "hi npm", extra=["--reverse", "--ssl-insecure"], env=env
    )
    _assert_openai_npm_captured(out, data_dir)
    assert all(f.request.url.startswith(tls_upstream.url) for f in stored(data_dir))


def test_reverse_captures_python_sdks_that_ignore_proxies(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    prog = (
        "import os, httpx, openai, anthropic\n"
        "assert 'HTTPS_PROXY' not in os.environ and 'https_proxy' not in os.environ\n"
        "direct = httpx.Client(trust_env=False)  # proxy variables ignored\n"
        "o = openai.OpenAI(api_key='sk-x', http_client=direct, max_retries=0)\n"
        "r = o.chat.completions.create(model='gpt-4o-mini',"
        " messages=[{'role': 'user', 'content': 'to openai'}])\n"
        "print(r.choices[0].message.content)\n"
        "a = anthropic.Anthropic(api_key='sk-ant-x', max_retries=0,"
        " http_client=anthropic.DefaultHttpxClient(trust_env=False))\n"
        "m = a.messages.create(model='claude-sonnet-4-5', max_tokens=50,"
        " messages=[{'role': 'user', 'content': 'to anthropic'}])\n"
        "print(m.content[0].text)\n"
    )
    env = {
        "OPENAI_BASE_URL": f"{tls_upstream.url}/v1",
        "ANTHROPIC_BASE_URL": tls_upstream.url,
    }
    out = flowbook_run(
        data_dir, sys.executable, "-c", prog, extra=["--reverse", "--ssl-insecure"], env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Echo: to openai", "Echo: to anthropic"]
    flows = stored(data_dir)
    assert [f.provider for f in flows][1] == "anthropic"
    assert [f.response.text for f in flows if f.response] == out.stdout.splitlines()


def test_run_joins_the_capture_running_for_the_data_dir(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    need("curl")
    mon = fb.start(port=0, data_dir=data_dir, ssl_insecure=True)
    try:
        announced = json.loads((data_dir / "capture.json").read_text())
        assert announced["pid"] == os.getpid() and announced["port"] == mon.port
        assert announced["proxy_url"] == mon.proxy_url
        assert announced["ca_cert_path"] == str(mon.ca_cert_path)
        assert announced["modes"] == ["regular"] and announced["control_port"] is None
        url = f"{tls_upstream.url}/v1/chat/completions"
        out = flowbook_run(
            data_dir, "curl", "-sS", "-X", "POST", url, "-d", chat_body("joined"), extra=[]
        )
        assert out.returncode == 0, out.stderr
        assert f"joining the capture running for {data_dir}" in out.stderr
        assert "1 call · 0 errors" in out.stderr
        fb.wait_idle()
        assert list(fb.flows()["preview"]) == ["joined"], "captured by this process's monitor"
    finally:
        fb.stop()
    assert not (data_dir / "capture.json").exists()


def test_mon_run_shows_output_and_flows_appear_while_it_runs(
    data_dir: Path, tls_upstream: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mon = fb.start(port=0, data_dir=data_dir, ssl_insecure=True)
    gate = tmp_path / "go-on"
    prog = (
        "import os, time, httpx\n"
        f"r = httpx.post('{tls_upstream.url}/v1/chat/completions', content={chat_body('live')!r})\n"
        "print('first:', r.json()['choices'][0]['message']['content'], flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.05)\n"
        "print('done')\n"
    )
    seen_live: list[str] = []

    def watch() -> None:
        # The program is still running (waiting for the gate) when its flow shows up.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen_live:
            seen_live.extend(fb.flows()["preview"])
            time.sleep(0.05)
        gate.touch()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = mon.run([sys.executable, "-c", prog])
    finally:
        gate.touch()
        watcher.join()
        fb.stop()
    assert seen_live == ["live"]
    assert result.returncode == 0
    assert capsys.readouterr().out == "first: Echo: live\ndone\n"
    assert list(result.flows["preview"]) == ["live"]
    assert "1 call · 0 errors" in repr(result)


def test_flowmon_run_magic(data_dir: Path, tls_upstream: FakeUpstream) -> None:
    from flowbook.magics import run_line

    fb.start(port=0, data_dir=data_dir, ssl_insecure=True)
    try:
        code = (
            "import httpx, sys; httpx.post("
            f"'{tls_upstream.url}/v1/chat/completions', content={chat_body('magic run')!r});"
            " sys.exit(4)"
        )
        result = run_line(f"run {sys.executable} -c {json.dumps(code)}")
        assert result.returncode == 4
        assert list(result.flows["preview"]) == ["magic run"]
    finally:
        fb.stop()


def test_run_without_a_command_or_with_a_missing_one_says_what_to_do(data_dir: Path) -> None:
    cmd = [sys.executable, "-m", "flowbook.cli", "run", "--data-dir", str(data_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "flowbook run -- python app.py" in out.stdout
    out = subprocess.run(
        [*cmd, "--", "no-such-program-xyz"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 127 and "command not found: 'no-such-program-xyz'" in out.stderr


GO_CLIENT = """package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello from go"}]}`
	url := os.Args[1] + "/v1/chat/completions"
	r, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(r.Body)
	fmt.Print(string(b))
}
"""


def _non_loopback_ipv4() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        return str(s.getsockname()[0])


def test_go_net_http_unchanged_is_captured(data_dir: Path, tmp_path: Path) -> None:
    """Go's net/http reads HTTPS_PROXY and SSL_CERT_FILE, but never proxies loopback hosts, so
    the upstream listens on this machine's own non-loopback address."""
    go = shutil.which("go") or next(
        (p for p in ("/usr/lib/go/bin/go", "/usr/local/go/bin/go") if Path(p).exists()), None
    )
    if go is None:
        pytest.skip("go is not installed")
    (tmp_path / "main.go").write_text(GO_CLIENT)
    env = {**os.environ, "GOCACHE": str(tmp_path / "gocache"), "HOME": str(tmp_path)}
    subprocess.run(
        [go, "build", "-o", "client", "main.go"], cwd=tmp_path, env=env, check=True, timeout=300
    )
    with FakeUpstream(host=_non_loopback_ipv4(), tls=True) as up:
        out = flowbook_run(data_dir, str(tmp_path / "client"), up.url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["choices"][0]["message"]["content"] == "Echo: hello from go"
    (flow,) = stored(data_dir)
    assert flow.request.url.startswith(up.url) and flow.response is not None


JAVA_CLIENT = """
import java.net.*;
import java.net.http.*;

public class Client {
  public static void main(String[] a) throws Exception {
    String url = a[0] + "/v1/chat/completions";
    String body = "{\\"model\\":\\"gpt-4o-mini\\",\\"messages\\":"
        + "[{\\"role\\":\\"user\\",\\"content\\":\\"hello from java\\"}]}";
    HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
    c.setRequestMethod("POST");
    c.setDoOutput(true);
    c.getOutputStream().write(body.getBytes());
    System.out.println(new String(c.getInputStream().readAllBytes()));
    // java.net.http uses a proxy only when asked: ProxySelector.getDefault() reads the
    // https.proxyHost property flowbook sets.
    HttpClient hc = HttpClient.newBuilder().proxy(ProxySelector.getDefault()).build();
    HttpRequest req = HttpRequest.newBuilder(URI.create(url))
        .POST(HttpRequest.BodyPublishers.ofString(body)).build();
    System.out.println(hc.send(req, HttpResponse.BodyHandlers.ofString()).body());
  }
}
"""


def test_java_unchanged_is_captured(
    data_dir: Path, tls_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The JDK reads neither proxy variables nor SSL_CERT_FILE: JAVA_TOOL_OPTIONS carries the
    proxy properties and a trust store with flowbook's CA (built with the JDK's keytool)."""
    javac = need("javac")
    (tmp_path / "Client.java").write_text(JAVA_CLIENT)
    subprocess.run([javac, "Client.java"], cwd=tmp_path, check=True, timeout=300)
    out = flowbook_run(data_dir, "java", "-cp", str(tmp_path), "Client", tls_upstream.url)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    answers = [json.loads(line)["choices"][0]["message"]["content"] for line in lines]
    assert answers == ["Echo: hello from java"] * 2
    assert len(stored(data_dir)) == 2


def test_official_python_sdks_unchanged_are_captured(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    """openai (httpx), anthropic (httpx2) and google-genai, configured only by their base-URL
    variables (a self-hosted endpoint here), trust flowbook's CA and use its proxy."""
    prog = (
        "import openai, anthropic\n"
        "from google import genai\n"
        "o = openai.OpenAI(api_key='sk-x', max_retries=0)\n"
        "r = o.chat.completions.create(model='gpt-4o-mini',"
        " messages=[{'role': 'user', 'content': 'py openai'}])\n"
        "print(r.choices[0].message.content)\n"
        "a = anthropic.Anthropic(api_key='sk-ant-x', max_retries=0)\n"
        "m = a.messages.create(model='claude-sonnet-4-5', max_tokens=50,"
        " messages=[{'role': 'user', 'content': 'py anthropic'}])\n"
        "print(m.content[0].text)\n"
        "g = genai.Client(api_key='g-x')\n"
        "print(g.models.generate_content(model='gemini-2.5-flash', contents='py gemini').text)\n"
    )
    env = {
        "OPENAI_BASE_URL": f"{tls_upstream.url}/v1",
        "ANTHROPIC_BASE_URL": tls_upstream.url,
        "GOOGLE_GEMINI_BASE_URL": tls_upstream.url,
    }
    out = flowbook_run(data_dir, sys.executable, "-c", prog, env=env)
    assert out.returncode == 0, out.stderr
    said = ["Echo: py openai", "Echo: py anthropic", "Echo: py gemini"]
    assert out.stdout.splitlines() == said
    flows = stored(data_dir)
    assert [f.response.text for f in flows if f.response] == said
    assert [f.provider for f in flows][1:] == ["anthropic", "gemini"]


def test_flowbook_capture_announces_itself_and_run_joins_it(
    data_dir: Path, tls_upstream: FakeUpstream
) -> None:
    """The detached set-up: `flowbook capture` in one terminal, `flowbook run` in another."""
    import signal

    need("curl")
    capture = subprocess.Popen(
        [sys.executable, "-m", "flowbook.cli", "capture", "--port", "0",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    announced = data_dir / "capture.json"
    try:
        deadline = time.monotonic() + 60
        while not announced.exists() and time.monotonic() < deadline:
            assert capture.poll() is None, capture.stdout.read() if capture.stdout else ""
            time.sleep(0.1)
        info = json.loads(announced.read_text())
        assert info["pid"] == capture.pid and info["modes"] == ["regular"]
        url = f"{tls_upstream.url}/v1/chat/completions"
        # the capture was started without --ssl-insecure: the joined run trusts nothing more,
        # so this call fails upstream verification and is captured as an error (502)
        out = flowbook_run(data_dir, "curl", "-sS", "-X", "POST", url, "-d", chat_body("x"))
        assert f"joining the capture running for {data_dir} (pid {capture.pid}" in out.stderr
        assert "1 call · 1 error" in out.stderr
    finally:
        capture.send_signal(signal.SIGINT)
        capture.wait(60)
    assert capture.returncode == 0
    assert not announced.exists(), "removed at a clean stop"

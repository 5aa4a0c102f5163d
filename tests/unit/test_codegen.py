"""Code generation: hostile content survives every generator exactly, secrets become
environment variables, and each language's literal quoting is checked by that language itself
(sh, Python, Node, Go, rustc) on hypothesis-generated strings."""

from __future__ import annotations

import ast
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowbook.io.codegen import generate, quote
from flowbook.io.codegen.common import code_request
from flowbook.model import FlowMetadata, LLMFlow, LLMRequest

HOSTILE = [
    '"',
    "'",
    "\\",
    "\\n",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "$HOME",
    "${X}",
    "$(id)",
    "`id`",
    "```",
    "'\\''",
    '"""',
    "\u2028\u2029",
    "\ufeff",
    "😀",
    "\U0010fffd",
    "\x7f",
    "\x01",
    "é",
    "#",
    "/*",
    "*/",
    "//",
    "</script>",
    "%s %d %%",
    "{}",
    "{{x}}",
    "\\u0041",
    "a\\",
    'r#"x"#',
    '"#',
]
# Text without NUL (no shell can pass it) and without lone surrogates (not encodable).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FAST = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def chat_flow(content: str, extra: Any = None, *, stream: bool = False) -> LLMFlow:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    }
    if extra is not None:
        body["metadata"] = {"x": extra}
    req = LLMRequest(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        host="api.openai.com",
        path="/v1/chat/completions",
        headers={
            "authorization": "Bearer sk-…a1b2",
            "content-type": "application/json",
            "x-title": content[:20].replace("\n", " ").replace("\r", " "),
        },
        body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        stream=stream,
    )
    return LLMFlow(
        id="c0de000000000001",
        flow_type="chat",
        request=req,
        metadata=FlowMetadata(provider="openai", api="chat"),
    )


def curl_body(code: str) -> str:
    lines = [ln for ln in code.split("\n") if not ln.startswith("#")]  # U+2028 is no break
    args = shlex.split("\n".join(lines).replace("\\\n", " "))
    return args[args.index("--data-binary") + 1]


def python_assign(code: str, name: str) -> Any:
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} in the generated code")


def ts_payload(code: str) -> Any:
    start = code.index("const payload: unknown = ") + len("const payload: unknown = ")
    value, end = json.JSONDecoder().raw_decode(code, start)
    assert code[end] == ";"
    return value


@FAST
@given(content=TEXT, extra=JSON_VALUES)
def test_hostile_bodies_come_back_out_of_every_generator(content: str, extra: Any) -> None:
    flow = chat_flow(content, extra)
    cr = code_request(flow)
    assert cr.body is not None
    expected = json.loads(cr.body)
    assert curl_body(generate(flow, "curl")) == cr.body
    assert python_assign(generate(flow, "python"), "PAYLOAD") == expected
    assert ts_payload(generate(flow, "typescript")) == expected
    sdk = ast.parse(generate(flow, "python", sdk=True))  # valid Python whatever the content
    assert any(isinstance(n, ast.Assign) for n in sdk.body)
    for lang in ("go", "rust"):
        code = generate(flow, lang)
        assert quote.go(cr.body) in code if lang == "go" else quote.rust(cr.body) in code


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_in_the_body_round_trip(text: str) -> None:
    flow = chat_flow(text, {text: [text]})
    cr = code_request(flow)
    assert curl_body(generate(flow, "curl")) == cr.body
    assert python_assign(generate(flow, "python"), "PAYLOAD") == json.loads(cr.body or "")


def collect_strings() -> list[str]:
    found: list[str] = []

    @settings(max_examples=120, deadline=None, database=None)
    @given(TEXT)
    def collect(s: str) -> None:
        found.append(s)

    collect()
    return HOSTILE + found


def _hex_lines(data: str) -> list[str]:
    return [ln.strip() for ln in data.splitlines()]


def test_sh_and_python_literals_read_back_exactly() -> None:
    strings = collect_strings()
    out = subprocess.run(
        ["sh", "-c", "printf '%s\\0' " + " ".join(quote.sh(s) for s in strings)],
        capture_output=True,
        check=True,
    ).stdout
    assert out.decode("utf-8").split("\0")[:-1] == strings
    assert [ast.literal_eval(quote.py(s)) for s in strings] == strings


def test_javascript_literals_read_back_exactly(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    strings = collect_strings()
    src = "const s = [" + ",".join(quote.js(s) for s in strings) + "];\n"
    src += "for (const x of s) console.log(Buffer.from(x, 'utf8').toString('hex'));\n"
    (tmp_path / "t.js").write_text(src, "utf-8")
    r = subprocess.run([node, "t.js"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _hex_lines(r.stdout) == [s.encode().hex() for s in strings]


def test_go_literals_read_back_exactly(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs Go (Debian's golang package; `make test` installs it)")
    strings = collect_strings()
    src = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfor _, s := range []string{\n'
    src += "".join(f"\t\t{quote.go(s)},\n" for s in strings)
    src += '\t} {\n\t\tfmt.Printf("%x\\n", s)\n\t}\n}\n'
    (tmp_path / "main.go").write_text(src, "utf-8")
    out = subprocess.run([go, "run", "main.go"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _hex_lines(out.stdout) == [s.encode().hex() for s in strings]


def test_rust_literals_read_back_exactly(tmp_path: Path) -> None:
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("needs rustc")
    strings = collect_strings()
    src = "fn main() {\n    let all: &[&str] = &[\n"
    src += "".join(f"        {quote.rust(s)},\n" for s in strings)
    src += "    ];\n    for s in all {\n"
    src += '        let hex: String = s.bytes().map(|b| format!("{:02x}", b)).collect();\n'
    src += '        println!("{}", hex);\n    }\n}\n'
    (tmp_path / "main.rs").write_text(src, "utf-8")
    r = subprocess.run(
        [rustc, "--edition", "2021", "-o", "t", "main.rs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout
    assert _hex_lines(out) == [s.encode().hex() for s in strings]


@FAST
@given(content=TEXT)
def test_generated_go_and_rust_parse_with_hostile_content(content: str) -> None:
    gofmt, rustfmt = shutil.which("gofmt"), shutil.which("rustfmt")
    if gofmt is None or rustfmt is None:
        pytest.skip("needs gofmt (golang) and rustfmt")
    flow = chat_flow(content, stream=True)
    for tool, lang in ((gofmt, "go"), (rustfmt, "rust")):
        args = [tool, "-e"] if lang == "go" else [tool, "--edition", "2021", "--check"]
        r = subprocess.run([*args], input=generate(flow, lang), capture_output=True, text=True)
        assert "error" not in r.stderr.lower(), (lang, r.stderr)


def test_secrets_become_environment_variables() -> None:
    flow = chat_flow("hi")
    flow.request.headers["x-api-key"] = "sk-ant-…wxyz"
    flow.request.url += "?api_key=abcdef0123456789"
    for lang, marker in (
        ("curl", '"${OPENAI_API_KEY}"'),
        ("python", 'os.environ["OPENAI_API_KEY"]'),
        ("typescript", 'process.env["OPENAI_API_KEY"]'),
        ("go", 'os.Getenv("OPENAI_API_KEY")'),
        ("rust", 'env::var("OPENAI_API_KEY")'),
    ):
        code = generate(flow, lang)
        assert marker in code, lang
        assert "abcdef0123456789" not in code and "sk-…a1b2" not in code and "…wxyz" not in code
        assert "OPENAI_API_KEY" in code.splitlines()[1], "the comment names the variable"
    bare = generate(flow, "python", include_comments=False)
    assert not bare.startswith("#")


def test_streamed_calls_generate_streaming_code() -> None:
    flow = chat_flow("hi", stream=True)
    assert " -N " in generate(flow, "curl")
    assert "httpx.stream(" in generate(flow, "python")
    assert "getReader()" in generate(flow, "typescript")
    assert "bufio.NewScanner" in generate(flow, "go")
    assert "BufReader::new(response).lines()" in generate(flow, "rust")
    assert "for chunk in response:" in generate(flow, "python", sdk=True)


def test_bad_requests_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="unknown code format 'cobol'"):
        generate(chat_flow("x"), "cobol")
    with pytest.raises(ValueError, match="sdk=True is for format='python'"):
        generate(chat_flow("x"), "go", sdk=True)
    flow = chat_flow("x")
    flow.metadata.provider = "ollama"
    with pytest.raises(ValueError, match="no official SDK form"):
        generate(flow, "python", sdk=True)

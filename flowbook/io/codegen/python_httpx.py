"""Python with httpx: the request as plain data, streaming with ``iter_lines``."""

from __future__ import annotations

from flowbook.io.codegen import quote
from flowbook.io.codegen.common import CodeRequest, Segment

DELTA = {
    "openai_chat": [
        'return "".join((c.get("delta") or {}).get("content") or ""',
        '               for c in event.get("choices") or [])',
    ],
    "openai_responses": [
        'if event.get("type") == "response.output_text.delta":',
        '    return event.get("delta") or ""',
        'return ""',
    ],
    "anthropic": [
        'delta = event.get("delta") or {}',
        'if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":',
        '    return delta.get("text") or ""',
        'return ""',
    ],
    "gemini": [
        'candidates = event.get("candidates") or [{}]',
        'parts = (candidates[0].get("content") or {}).get("parts") or []',
        'return "".join(p.get("text") or "" for p in parts if not p.get("thought"))',
    ],
    "ollama_chat": ['return (event.get("message") or {}).get("content") or ""'],
    "ollama_generate": ['return event.get("response") or ""'],
}


def value(segs: list[Segment]) -> str:
    pieces = [quote.py(t) if k == "lit" else f"os.environ[{quote.py(t)}]" for k, t in segs]
    return " + ".join(pieces) or '""'


def generate(cr: CodeRequest, comments: list[str]) -> str:
    out = [f"# {c}" for c in comments]
    out += ["import json", "import os", "import sys", "", "import httpx", ""]
    out.append(f"URL = {value(cr.url)}")
    out.append("HEADERS = {")
    out += [f"    {quote.py(n)}: {value(s)}," for n, s in cr.headers]
    out.append("}")
    if cr.is_json:
        out.append(f"PAYLOAD = {quote.py_value(cr.json_body)}")
        send = "json=PAYLOAD"
    elif cr.body is not None:
        out.append(f"BODY = {quote.py(cr.body)}")
        send = 'content=BODY.encode("utf-8")'
    else:
        send = ""
    call = f"{quote.py(cr.method)}, URL, headers=HEADERS" + (f", {send}" if send else "")
    out.append("")
    if cr.stream and cr.style in DELTA:
        out.append("")
        out.append("def delta_text(event: dict) -> str:")
        out.append('    """The text one stream event adds."""')
        out += [f"    {ln}" for ln in DELTA[cr.style]]
        out += ["", ""]
        sse = not cr.style.startswith("ollama")
        out += ["def handle_line(line: str) -> None:"]
        if sse:
            out += [
                '    if not line.startswith("data:"):',
                "        return",
                "    data = line[5:].strip()",
                '    if not data or data == "[DONE]":',
                "        return",
            ]
        else:
            out += ["    data = line.strip()", "    if not data:", "        return"]
        out += [
            "    event = json.loads(data)",
            '    if isinstance(event, dict) and "error" in event:',
            '        print("\\nerror:", json.dumps(event["error"]), file=sys.stderr)',
            "        sys.exit(1)",
            '    print(delta_text(event), end="", flush=True)',
            "",
            "",
            f"with httpx.stream({call}, timeout=300) as response:",
            "    if response.status_code >= 400:",
            "        error = response.read().decode()",
            '        print(f"HTTP {response.status_code}:", error, file=sys.stderr)',
            "        sys.exit(1)",
            "    # Split on \\n only: text may hold U+2028 and friends, which str.splitlines()",
            "    # (and so iter_lines) would treat as line breaks.",
            '    buffer = b""',
            "    for chunk in response.iter_bytes():",
            "        buffer += chunk",
            '        while b"\\n" in buffer:',
            '            raw, buffer = buffer.split(b"\\n", 1)',
            '            handle_line(raw.decode("utf-8").rstrip("\\r"))',
            "    if buffer.strip():",
            '        handle_line(buffer.decode("utf-8"))',
            "print()",
        ]
    elif cr.stream:
        out += [
            f"with httpx.stream({call}, timeout=300) as response:",
            "    for chunk in response.iter_bytes():",
            "        sys.stdout.buffer.write(chunk)",
            "        sys.stdout.buffer.flush()",
        ]
    else:
        out += [
            f"response = httpx.request({call}, timeout=300)",
            "if response.status_code >= 400:",
            '    print(f"HTTP {response.status_code}", file=sys.stderr)',
            "try:",
            "    print(json.dumps(response.json(), indent=2, ensure_ascii=False))",
            "except ValueError:",
            "    print(response.text)",
        ]
    return "\n".join(out) + "\n"

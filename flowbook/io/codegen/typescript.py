"""TypeScript with the global ``fetch`` (Node 18+, Deno, browsers); streams read with the body's
reader. The payload is JSON text, which is a valid JavaScript expression."""

from __future__ import annotations

import json

from flowbook.io.codegen import quote
from flowbook.io.codegen.common import CodeRequest, Segment

DELTA = {
    "openai_chat": [
        'return (event.choices ?? []).map((c: any) => c.delta?.content ?? "").join("");'
    ],
    "openai_responses": [
        'return event.type === "response.output_text.delta" ? (event.delta ?? "") : "";'
    ],
    "anthropic": [
        'if (event.type === "content_block_delta" && event.delta?.type === "text_delta") {',
        '  return event.delta.text ?? "";',
        "}",
        'return "";',
    ],
    "gemini": [
        "const parts = event.candidates?.[0]?.content?.parts ?? [];",
        'return parts.filter((p: any) => !p.thought).map((p: any) => p.text ?? "").join("");',
    ],
    "ollama_chat": ['return event.message?.content ?? "";'],
    "ollama_generate": ['return event.response ?? "";'],
}


def value(segs: list[Segment]) -> str:
    pieces = [quote.js(t) if k == "lit" else f'(process.env[{quote.js(t)}] ?? "")' for k, t in segs]
    return " + ".join(pieces) or '""'


def _payload(cr: CodeRequest) -> str:
    text = json.dumps(cr.json_body, ensure_ascii=False, indent=2)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def generate(cr: CodeRequest, comments: list[str]) -> str:
    out = [f"// {c}" for c in comments]
    out.append(f"const url: string = {value(cr.url)};")
    out.append("const headers: Record<string, string> = {")
    out += [f"  {quote.js(n)}: {value(s)}," for n, s in cr.headers]
    out.append("};")
    body = ""
    if cr.is_json:
        out.append(f"const payload: unknown = {_payload(cr)};")
        body = ", body: JSON.stringify(payload)"
    elif cr.body is not None:
        out.append(f"const body: string = {quote.js(cr.body)};")
        body = ", body"
    out.append("")
    if cr.stream and cr.style in DELTA:
        out.append("function deltaText(event: any): string {")
        out += [f"  {ln}" for ln in DELTA[cr.style]]
        out += ["}", ""]
        sse = not cr.style.startswith("ollama")
        handle = (
            [
                '  if (!line.startsWith("data:")) return;',
                "  const data = line.slice(5).trim();",
                '  if (!data || data === "[DONE]") return;',
            ]
            if sse
            else ["  const data = line.trim();", "  if (!data) return;"]
        )
        out += [
            "function handleLine(line: string): void {",
            *handle,
            "  const event = JSON.parse(data);",
            "  if (event && event.error) throw new Error(JSON.stringify(event.error));",
            "  process.stdout.write(deltaText(event));",
            "}",
            "",
        ]
    out.append("async function main(): Promise<void> {")
    out.append(
        f"  const response = await fetch(url, {{ method: {quote.js(cr.method)}, headers{body} }});"
    )
    out += [
        "  if (!response.ok) {",
        "    console.error(`HTTP ${response.status}: ${await response.text()}`);",
        "    process.exitCode = 1;",
        "    return;",
        "  }",
    ]
    if cr.stream and cr.style in DELTA:
        out += [
            "  const reader = response.body!.getReader();",
            "  const decoder = new TextDecoder();",
            '  let buffer = "";',
            "  for (;;) {",
            "    const { done, value } = await reader.read();",
            "    buffer += decoder.decode(value, { stream: !done });",
            "    let newline: number;",
            '    while ((newline = buffer.indexOf("\\n")) >= 0) {',
            '      handleLine(buffer.slice(0, newline).replace(/\\r$/, ""));',
            "      buffer = buffer.slice(newline + 1);",
            "    }",
            "    if (done) break;",
            "  }",
            "  if (buffer) handleLine(buffer);",
            '  process.stdout.write("\\n");',
        ]
    elif cr.stream:
        out += [
            "  const reader = response.body!.getReader();",
            "  for (;;) {",
            "    const { done, value } = await reader.read();",
            "    if (done) break;",
            "    process.stdout.write(value);",
            "  }",
        ]
    else:
        out += [
            "  const text = await response.text();",
            "  try {",
            "    console.log(JSON.stringify(JSON.parse(text), null, 2));",
            "  } catch {",
            "    console.log(text);",
            "  }",
        ]
    out += [
        "}",
        "",
        "main().catch((err) => {",
        "  console.error(err);",
        "  process.exitCode = 1;",
        "});",
    ]
    return "\n".join(out) + "\n"

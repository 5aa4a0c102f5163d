"""Rust with reqwest (blocking) and serde_json. Cargo.toml needs::

reqwest = { version = "0.12", features = ["blocking"] }
serde_json = "1"
"""

from __future__ import annotations

from flowbook.io.codegen import quote
from flowbook.io.codegen.common import CodeRequest, Segment

DELTA = {
    "openai_chat": ['event["choices"][0]["delta"]["content"].as_str().unwrap_or("").to_string()'],
    "openai_responses": [
        'if event["type"] == "response.output_text.delta" {',
        '    event["delta"].as_str().unwrap_or("").to_string()',
        "} else {",
        "    String::new()",
        "}",
    ],
    "anthropic": [
        'if event["type"] == "content_block_delta" && event["delta"]["type"] == "text_delta" {',
        '    event["delta"]["text"].as_str().unwrap_or("").to_string()',
        "} else {",
        "    String::new()",
        "}",
    ],
    "gemini": [
        "let empty = Vec::new();",
        'let parts = event["candidates"][0]["content"]["parts"].as_array().unwrap_or(&empty);',
        "parts",
        "    .iter()",
        '    .filter(|p| !p["thought"].as_bool().unwrap_or(false))',
        '    .map(|p| p["text"].as_str().unwrap_or(""))',
        "    .collect()",
    ],
    "ollama_chat": ['event["message"]["content"].as_str().unwrap_or("").to_string()'],
    "ollama_generate": ['event["response"].as_str().unwrap_or("").to_string()'],
}


def value(segs: list[Segment]) -> str:
    if len(segs) == 1 and segs[0][0] == "lit":
        return f"{quote.rust(segs[0][1])}.to_string()"
    fmt = "".join("{}" for _ in segs)
    args = ", ".join(
        quote.rust(t) if k == "lit" else f"env::var({quote.rust(t)}).unwrap_or_default()"
        for k, t in segs
    )
    return f'format!("{fmt}", {args})'


def generate(cr: CodeRequest, comments: list[str]) -> str:
    streaming = cr.stream and cr.style in DELTA
    out = [f"// {c}" for c in comments]
    out += [
        '// Cargo.toml: reqwest = { version = "0.12", features = ["blocking"] }, serde_json = "1"'
    ]
    uses = ["use std::env;", "use std::error::Error;"]
    if streaming:
        uses.append("use std::io::{BufRead, BufReader, Write};")
    elif cr.stream:
        uses.append("use std::io;")
    out += [*uses, ""]
    if streaming:
        out += ["fn delta_text(event: &serde_json::Value) -> String {"]
        out += [f"    {ln}" for ln in DELTA[cr.style]]
        out += ["}", ""]
    out += ["fn main() -> Result<(), Box<dyn Error>> {", f"    let url = {value(cr.url)};"]
    out += [
        "    let client = reqwest::blocking::Client::builder().timeout(None).build()?;",
        f"    let method = reqwest::Method::from_bytes({quote.rust(cr.method)}.as_bytes())?;",
        "    let mut request = client.request(method, url);",
    ]
    out += [f"    request = request.header({quote.rust(n)}, {value(s)});" for n, s in cr.headers]
    if cr.body is not None:
        out.append(f"    let body = {quote.rust(cr.body)};")
        out.append("    request = request.body(body);")
    out += [
        "    let response = request.send()?;",
        "    if !response.status().is_success() {",
        '        eprintln!("HTTP {}: {}", response.status(), response.text()?);',
        "        std::process::exit(1);",
        "    }",
    ]
    if streaming:
        sse = not cr.style.startswith("ollama")
        out += [
            "    let mut stdout = std::io::stdout();",
            "    for line in BufReader::new(response).lines() {",
            "        let line = line?;",
        ]
        if sse:
            out += [
                '        let Some(data) = line.strip_prefix("data:") else { continue };',
                "        let data = data.trim();",
                '        if data.is_empty() || data == "[DONE]" {',
                "            continue;",
                "        }",
            ]
        else:
            out += [
                "        let data = line.trim();",
                "        if data.is_empty() {",
                "            continue;",
                "        }",
            ]
        out += [
            "        let event: serde_json::Value = serde_json::from_str(data)?;",
            '        if !event["error"].is_null() {',
            '            eprintln!("\\nerror: {}", event["error"]);',
            "            std::process::exit(1);",
            "        }",
            '        write!(stdout, "{}", delta_text(&event))?;',
            "        stdout.flush()?;",
            "    }",
            "    println!();",
        ]
    elif cr.stream:
        out += [
            "    let mut response = response;",
            "    io::copy(&mut response, &mut io::stdout())?;",
        ]
    else:
        out += [
            "    let text = response.text()?;",
            "    match serde_json::from_str::<serde_json::Value>(&text) {",
            '        Ok(value) => println!("{}", serde_json::to_string_pretty(&value)?),',
            '        Err(_) => println!("{}", text),',
            "    }",
        ]
    out += ["    Ok(())", "}"]
    return "\n".join(out) + "\n"

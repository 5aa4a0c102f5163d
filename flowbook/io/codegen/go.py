"""Go with net/http and encoding/json from the standard library (no modules to fetch)."""

from __future__ import annotations

from flowbook.io.codegen import quote
from flowbook.io.codegen.common import CodeRequest, Segment

_HELPERS = [
    "func field(v any, path ...any) any {",
    "\tfor _, p := range path {",
    "\t\tswitch key := p.(type) {",
    "\t\tcase string:",
    "\t\t\tm, ok := v.(map[string]any)",
    "\t\t\tif !ok {",
    "\t\t\t\treturn nil",
    "\t\t\t}",
    "\t\t\tv = m[key]",
    "\t\tcase int:",
    "\t\t\ta, ok := v.([]any)",
    "\t\t\tif !ok || key >= len(a) {",
    "\t\t\t\treturn nil",
    "\t\t\t}",
    "\t\t\tv = a[key]",
    "\t\t}",
    "\t}",
    "\treturn v",
    "}",
    "",
    "func str(v any) string {",
    "\ts, _ := v.(string)",
    "\treturn s",
    "}",
    "",
]
DELTA = {
    "openai_chat": ['return str(field(event, "choices", 0, "delta", "content"))'],
    "openai_responses": [
        'if str(field(event, "type")) == "response.output_text.delta" {',
        '\treturn str(field(event, "delta"))',
        "}",
        'return ""',
    ],
    "anthropic": [
        'if str(field(event, "type")) == "content_block_delta" && '
        'str(field(event, "delta", "type")) == "text_delta" {',
        '\treturn str(field(event, "delta", "text"))',
        "}",
        'return ""',
    ],
    "gemini": [
        'parts, _ := field(event, "candidates", 0, "content", "parts").([]any)',
        "var b strings.Builder",
        "for _, p := range parts {",
        '\tif thought, _ := field(p, "thought").(bool); !thought {',
        '\t\tb.WriteString(str(field(p, "text")))',
        "\t}",
        "}",
        "return b.String()",
    ],
    "ollama_chat": ['return str(field(event, "message", "content"))'],
    "ollama_generate": ['return str(field(event, "response"))'],
}


def value(segs: list[Segment]) -> str:
    pieces = [quote.go(t) if k == "lit" else f"os.Getenv({quote.go(t)})" for k, t in segs]
    return " + ".join(pieces) or '""'


def generate(cr: CodeRequest, comments: list[str]) -> str:
    streaming = cr.stream and cr.style in DELTA
    imports = ["fmt", "io", "net/http", "os", "strings"]
    if streaming:
        imports += ["bufio", "encoding/json"]
    elif not cr.stream:
        imports += ["bytes", "encoding/json"]
    out = [f"// {c}" for c in comments]
    out += ["package main", "", "import ("]
    out += [f'\t"{i}"' for i in sorted(imports)]
    out += [")", ""]
    if streaming:
        out += _HELPERS
        out += ["func deltaText(event any) string {"]
        out += [f"\t{ln}" for ln in DELTA[cr.style]]
        out += ["}", ""]
    out += ["func main() {", f"\turl := {value(cr.url)}"]
    body_expr = "nil"
    if cr.body is not None:
        out.append(f"\tbody := {quote.go(cr.body)}")
        body_expr = "strings.NewReader(body)"
    out += [
        f"\treq, err := http.NewRequest({quote.go(cr.method)}, url, {body_expr})",
        "\tif err != nil {",
        "\t\tpanic(err)",
        "\t}",
    ]
    out += [f"\treq.Header.Set({quote.go(n)}, {value(s)})" for n, s in cr.headers]
    out += [
        "\tresp, err := http.DefaultClient.Do(req)",
        "\tif err != nil {",
        "\t\tpanic(err)",
        "\t}",
        "\tdefer resp.Body.Close()",
        "\tif resp.StatusCode >= 400 {",
        "\t\tdata, _ := io.ReadAll(resp.Body)",
        '\t\tfmt.Fprintf(os.Stderr, "HTTP %d: %s\\n", resp.StatusCode, data)',
        "\t\tos.Exit(1)",
        "\t}",
    ]
    if streaming:
        sse = not cr.style.startswith("ollama")
        out += [
            "\tscanner := bufio.NewScanner(resp.Body)",
            "\tscanner.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)",
            "\tfor scanner.Scan() {",
            '\t\tline := strings.TrimRight(scanner.Text(), "\\r")',
        ]
        if sse:
            out += [
                '\t\tif !strings.HasPrefix(line, "data:") {',
                "\t\t\tcontinue",
                "\t\t}",
                '\t\tdata := strings.TrimSpace(strings.TrimPrefix(line, "data:"))',
                '\t\tif data == "" || data == "[DONE]" {',
                "\t\t\tcontinue",
                "\t\t}",
            ]
        else:
            out += [
                "\t\tdata := strings.TrimSpace(line)",
                '\t\tif data == "" {',
                "\t\t\tcontinue",
                "\t\t}",
            ]
        out += [
            "\t\tvar event any",
            "\t\tif err := json.Unmarshal([]byte(data), &event); err != nil {",
            "\t\t\tpanic(err)",
            "\t\t}",
            '\t\tif e := field(event, "error"); e != nil {',
            '\t\t\tfmt.Fprintln(os.Stderr, "\\nerror:", e)',
            "\t\t\tos.Exit(1)",
            "\t\t}",
            "\t\tfmt.Print(deltaText(event))",
            "\t}",
            "\tif err := scanner.Err(); err != nil {",
            "\t\tpanic(err)",
            "\t}",
            "\tfmt.Println()",
        ]
    elif cr.stream:
        out += [
            "\tif _, err := io.Copy(os.Stdout, resp.Body); err != nil {",
            "\t\tpanic(err)",
            "\t}",
        ]
    else:
        out += [
            "\tdata, err := io.ReadAll(resp.Body)",
            "\tif err != nil {",
            "\t\tpanic(err)",
            "\t}",
            "\tvar pretty bytes.Buffer",
            '\tif json.Indent(&pretty, data, "", "  ") == nil {',
            "\t\tfmt.Println(pretty.String())",
            "\t} else {",
            "\t\tfmt.Println(string(data))",
            "\t}",
        ]
    out += ["}"]
    return "\n".join(out) + "\n"

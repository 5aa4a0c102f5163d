"""curl: single-quoted literals (exact bytes, nothing expanded), ``"$VAR"`` for secrets."""

from __future__ import annotations

from flowbook.io.codegen import quote
from flowbook.io.codegen.common import CodeRequest, Segment, _merge

JQ = {
    "openai_chat": ".choices[0].delta.content // empty",
    "openai_responses": 'select(.type == "response.output_text.delta") | .delta',
    "anthropic": 'select(.type == "content_block_delta" and .delta.type == "text_delta") '
    "| .delta.text",
    "gemini": ".candidates[0].content.parts[]? | select(.thought | not) | .text // empty",
    "ollama_chat": ".message.content // empty",
    "ollama_generate": ".response // empty",
}


def _word(segs: list[Segment]) -> str:
    # Adjacent quoted pieces form one shell word: 'Bearer '"$OPENAI_API_KEY"
    return "".join(quote.sh(t) if k == "lit" else f'"${{{t}}}"' for k, t in segs) or "''"


def generate(cr: CodeRequest, comments: list[str]) -> str:
    lines = [f"# {c}" for c in comments]
    args = ["curl", "-sS"]
    if cr.stream:
        args.append("-N")  # no output buffering: text appears as it arrives
    args += ["-X", cr.method, _word(cr.url)]
    for name, segs in cr.headers:
        args += ["-H", _word(_merge([("lit", f"{name}: "), *segs]))]
    if cr.body is not None:
        args += ["--data-binary", quote.sh(cr.body)]
    parts: list[str] = []
    line = ""
    for a in args:
        # One option with its value per line, continued with a backslash.
        if a.startswith("-") and a not in ("-sS", "-N") and line:
            parts.append(line)
            line = a
        else:
            line = f"{line} {a}" if line else a
    parts.append(line)
    cmd = " \\\n  ".join(parts)
    if cr.stream and cr.style in JQ:
        # curl prints the raw events as they arrive; this pipeline keeps only the text.
        pick = "sed -un 's/^data: //p' | " if not cr.style.startswith("ollama") else ""
        cmd += (
            f"\n# text only: append  | {pick}grep --line-buffered -v '^\\[DONE\\]$' | "
            f"jq -j --unbuffered {quote.sh(JQ[cr.style])}"
        )
    return "\n".join([*lines, cmd]) + "\n"

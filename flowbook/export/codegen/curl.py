"""curl: single-quoted literals (exact bytes, nothing expanded), ``"$VAR"`` for secrets."""

from __future__ import annotations

from flowbook.export.codegen import quote
from flowbook.export.codegen.common import CodeRequest, Segment, _merge


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
    if cr.stream and cr.style != "raw":
        cmd += "\n# the stream's events print as they arrive (pipe through jq to pick out the text)"
    return "\n".join([*lines, cmd]) + "\n"

"""``fb.generate_code``: a flow's request as curl, Python (httpx or the official SDK),
TypeScript (fetch), Go (net/http) or Rust (reqwest).

Secrets never appear as literals: an API key header or ``key=`` parameter becomes a read of the
provider's environment variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``
…); key-shaped strings in the body are masked by the redaction rules.
"""

from __future__ import annotations

from flowbook.model import LLMFlow

FORMATS = ("curl", "python", "typescript", "go", "rust")
_ALIASES = {
    "sh": "curl",
    "bash": "curl",
    "py": "python",
    "httpx": "python",
    "ts": "typescript",
    "javascript": "typescript",
    "js": "typescript",
    "golang": "go",
    "rs": "rust",
}


def generate(
    flow: str | LLMFlow,
    format: str = "curl",
    *,
    include_comments: bool = True,
    sdk: bool = False,
) -> str:
    """Code that repeats ``flow``'s request (see :func:`flowbook.api.generate_code`)."""
    from flowbook.io import source
    from flowbook.io.codegen import curl, go, python_httpx, python_sdk, rust, typescript
    from flowbook.io.codegen.common import code_request, comment_lines

    fmt = _ALIASES.get(format.strip().lower(), format.strip().lower())
    if fmt not in FORMATS:
        raise ValueError(f"unknown code format {format!r}; choose one of {', '.join(FORMATS)}")
    if isinstance(flow, str):
        got = source.get_flow(flow)
        if got is None:
            raise KeyError(f"no flow with id {flow!r} (fb.flows() lists the ids)")
        flow = got
    try:
        from flowbook.redaction import current

        rules = current()
    except Exception:  # outside a data dir: the default rules
        rules = None
    cr = code_request(flow, rules)
    comments = comment_lines(flow, cr) if include_comments else []
    if sdk and fmt != "python":
        raise ValueError(
            "sdk=True is for format='python' (the official OpenAI, Anthropic and Gemini SDKs)"
        )
    if fmt == "python":
        return (python_sdk if sdk else python_httpx).generate(cr, comments)
    module = {"curl": curl, "typescript": typescript, "go": go, "rust": rust}[fmt]
    return module.generate(cr, comments)

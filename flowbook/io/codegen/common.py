"""What every code generator needs from a flow: URL, headers and body with secrets turned into
environment-variable references, and how to pull text out of the provider's stream events.

A value is a list of *segments*: ``("lit", text)`` is written as a literal of the target
language, ``("env", NAME)`` reads the environment variable NAME. Each generator only has to
quote literals correctly; no secret ever reaches a literal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flowbook.model import LLMFlow
from flowbook.redact import DEFAULT, RedactionRules

Segment = tuple[str, str]  # ("lit", text) | ("env", VAR)

# Hop-by-hop and transport headers the HTTP client sets itself.
_SKIP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "accept-encoding",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
        "trailer",
    }
)
_ENV_BY_PROVIDER = {
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "anthropic_vertex": "GOOGLE_ACCESS_TOKEN",
    "gemini": "GEMINI_API_KEY",
    "gemini_openai": "GEMINI_API_KEY",
    "gemini_vertex": "GOOGLE_ACCESS_TOKEN",
    "gemini_code_assist": "GOOGLE_ACCESS_TOKEN",
    "kiro": "KIRO_ACCESS_TOKEN",
    "bedrock": "AWS_BEARER_TOKEN_BEDROCK",
    "openai_compatible": "API_KEY",
}
_SIGV4_HEADERS = frozenset({"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"})
_KEY_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
SDK_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}


def env_var_for(provider: str) -> str:
    """The conventional environment variable holding a provider's key."""
    if provider in _ENV_BY_PROVIDER:
        return _ENV_BY_PROVIDER[provider]
    clean = re.sub(r"[^A-Za-z0-9]+", "_", provider).strip("_").upper()
    return f"{clean}_API_KEY" if clean and clean != "UNKNOWN" else "API_KEY"


def _header_env(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() or "SECRET"


@dataclass
class CodeRequest:
    """A request ready to be written as code."""

    method: str
    url: list[Segment]
    headers: list[tuple[str, list[Segment]]]
    body: str | None
    json_body: Any = None  # the body parsed, when it is JSON
    is_json: bool = False
    stream: bool = False
    style: str = "raw"  # how to read text out of the stream, see stream_style()
    provider: str = ""
    api: str = ""
    model: str | None = None
    env_vars: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def url_template(self, env_fmt: str) -> str:
        """The URL as one string with env vars written via ``env_fmt`` (tests, comments)."""
        return "".join(t if k == "lit" else env_fmt.format(t) for k, t in self.url)


def stream_style(provider: str, api: str) -> str:
    """Which stream events carry text: openai_chat, openai_responses, anthropic, gemini,
    ollama_chat, ollama_generate, or raw (print bytes as they arrive)."""
    if provider == "ollama":
        return "ollama_chat" if api == "chat" else "ollama_generate"
    if api == "chat":
        return "openai_chat"
    if api == "responses":
        return "openai_responses"
    if api == "messages":
        return "anthropic"
    if api == "generate_content":
        return "gemini"
    return "raw"


def _secret_value(name: str, value: str, var: str, rules: RedactionRules) -> list[Segment]:
    n = name.lower()
    if n == "authorization" and value.startswith("AWS4-"):
        return [("lit", "Bearer "), ("env", var)]  # a Bedrock API key instead of SigV4
    if n in ("authorization", "proxy-authorization"):
        scheme, sep, _ = value.partition(" ")
        if sep and scheme.isalpha() and not value.startswith("AWS4-"):
            return [("lit", f"{scheme} "), ("env", var)]
    if n in _KEY_HEADERS:
        return [("env", var)]
    return [("env", _header_env(name))]


def _url_segments(url: str, var: str, rules: RedactionRules) -> list[Segment]:
    parts = urlsplit(url)
    if not parts.query:
        return [("lit", rules.mask_text(url))]
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    segs: list[Segment] = [("lit", rules.mask_text(base) + "?")]
    for i, pair in enumerate(parts.query.split("&")):
        name, eq, value = pair.partition("=")
        sep = "&" if i else ""
        if eq and name.lower() in rules.query_params and value:
            env = (
                var
                if name.lower() in ("key", "api_key", "api-key", "apikey")
                else _header_env(name)
            )
            segs += [("lit", f"{sep}{name}="), ("env", env)]
        else:
            segs.append(("lit", sep + rules.mask_text(pair)))
    if parts.fragment:
        segs.append(("lit", "#" + parts.fragment))
    return _merge(segs)


def _merge(segs: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for kind, text in segs:
        if out and kind == "lit" and out[-1][0] == "lit":
            out[-1] = ("lit", out[-1][1] + text)
        elif kind == "env" or text:
            out.append((kind, text))
    return out


def code_request(flow: LLMFlow, rules: RedactionRules | None = None) -> CodeRequest:
    """The flow's request with every secret replaced by an environment-variable reference."""
    r = rules or DEFAULT
    req = flow.request
    var = env_var_for(flow.provider)
    url = req.url or f"http://{req.host or 'localhost'}{req.path}"
    headers: list[tuple[str, list[Segment]]] = []
    env_vars: list[str] = []
    sigv4 = any(
        k.lower() == "authorization" and v.startswith("AWS4-") for k, v in req.headers.items()
    )
    for name, value in req.headers.items():
        n = name.lower()
        if n in _SKIP_HEADERS or n.startswith(":"):
            continue
        if sigv4 and n in _SIGV4_HEADERS:  # parts of the old signature, useless without it
            continue
        if r._is_secret_header(n):
            segs = _secret_value(n, value, var, r)
        else:
            segs = [("lit", r.mask_text(value))]
        headers.append((n, segs))
    url_segs = _url_segments(url, var, r)
    for segs in [url_segs, *(s for _, s in headers)]:
        env_vars += [t for k, t in segs if k == "env" and t not in env_vars]
    body: str | None = None
    parsed: Any = None
    is_json = False
    if req.body:
        try:
            req.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                "this request has a binary body; code generation writes text bodies only "
                "(fb.export(..., format='mitmproxy') keeps binary requests)"
            ) from None
        body = (r.mask_body(req.body) or b"").decode("utf-8")
        try:
            parsed = json.loads(body)
            is_json = True
        except ValueError:
            parsed = None
        if not any(n == "content-type" for n, _ in headers):
            headers.append(
                ("content-type", [("lit", "application/json" if is_json else "text/plain")])
            )
    stream = (
        bool(req.stream)
        or flow.state == "streaming"
        or bool(flow.response and flow.response.events)
    )
    notes = []
    style = stream_style(flow.provider, flow.api) if stream else "raw"
    if style == "gemini" and "alt=sse" not in url:
        # The JSON-array stream cannot be read line by line; the same call with alt=sse can.
        url_segs = _merge([*url_segs, ("lit", "&alt=sse" if "?" in url else "?alt=sse")])
        notes.append("Asks for alt=sse so the stream can be read line by line")
    if flow.provider == "bedrock" or any(
        v.startswith("AWS4-") for k, v in req.headers.items() if k.lower() == "authorization"
    ):
        notes.append(
            "AWS SigV4 requests must be signed again; this uses a Bedrock API key "
            "(AWS_BEARER_TOKEN_BEDROCK) instead"
        )
    return CodeRequest(
        method=req.method.upper(),
        url=url_segs,
        headers=headers,
        body=body,
        json_body=parsed,
        is_json=is_json,
        stream=stream,
        style=style,
        provider=flow.provider,
        api=flow.api,
        model=flow.model,
        env_vars=env_vars,
        notes=notes,
    )


def comment_lines(flow: LLMFlow, cr: CodeRequest) -> list[str]:
    """The header comment every generator writes (without the comment marker)."""
    lines = [
        f"{flow.provider} {flow.api} call"
        + (f" to model {cr.model}" if cr.model else "")
        + f" (flowbook flow {flow.id})"
    ]
    if cr.env_vars:
        lines.append("Needs environment variables: " + ", ".join(cr.env_vars))
    if cr.stream and cr.style != "raw":
        lines.append("Streams the response and prints the text as it arrives.")
    elif cr.stream:
        lines.append("Streams the response and writes its raw bytes as they arrive.")
    lines += cr.notes
    # A comment never contains a line break, and nothing that could end a block comment.
    return [re.sub(r"[\r\n\u2028\u2029]+", " ", ln).replace("*/", "* /") for ln in lines]

"""Python with the official SDKs: ``openai`` (Chat Completions, Responses), ``anthropic``
(Messages) and ``google-genai`` (generateContent). Body fields the SDK method does not name go
in ``extra_body``, so nothing of the original request is lost."""

from __future__ import annotations

import inspect
from typing import Any
from urllib.parse import urlsplit

from flowbook.io.codegen import quote
from flowbook.io.codegen.common import CodeRequest, env_var_for


def _base(cr: CodeRequest, marker: str) -> str:
    url = "".join(t for k, t in cr.url if k == "lit")
    parts = urlsplit(url)
    path = parts.path
    cut = path.find(marker)
    prefix = path[:cut] if cut >= 0 else ""
    return f"{parts.scheme}://{parts.netloc}{prefix}"


def _params(fn: Any) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters) - {"self", "extra_body", "extra_headers"}
    except (TypeError, ValueError):
        return set()


def _split(payload: dict[str, Any], known: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    kw = {k: v for k, v in payload.items() if k in known}
    extra = {k: v for k, v in payload.items() if k not in known}
    return kw, extra


def _kwargs(kw: dict[str, Any], extra: dict[str, Any], headers: dict[str, str]) -> list[str]:
    lines = [f"    {k}={quote.py_value(v, 1)}," for k, v in kw.items()]
    if extra:
        lines.append(f"    extra_body={quote.py_value(extra, 1)},")
    if headers:
        lines.append(f"    extra_headers={quote.py_value(headers, 1)},")
    return lines


def family(cr: CodeRequest) -> str | None:
    """Which official SDK speaks this call's wire format: ``openai`` (Chat Completions and
    Responses, also for OpenAI-compatible servers via ``base_url``), ``anthropic`` or
    ``gemini``; None when none does."""
    if not cr.is_json or not isinstance(cr.json_body, dict) or cr.provider in ("ollama", "bedrock"):
        return None
    if cr.api in ("chat", "responses") and not cr.provider.startswith(("gemini_", "azure")):
        return "openai"
    if cr.api == "messages" and cr.provider == "anthropic":
        return "anthropic"
    if cr.api == "generate_content" and cr.provider == "gemini":
        return "gemini"
    return None


def generate(cr: CodeRequest, comments: list[str]) -> str:
    kind = family(cr)
    if kind is None:
        raise ValueError(
            f"no official SDK form for {cr.provider} {cr.api}; sdk=True covers OpenAI Chat "
            f"Completions and Responses, Anthropic Messages and Gemini generateContent "
            f"(use sdk=False for plain httpx)"
        )
    out = [f"# {c}" for c in comments] + ["import os", ""]
    if kind == "openai":
        out += _openai(cr)
    elif kind == "anthropic":
        out += _anthropic(cr)
    else:
        out += _gemini(cr)
    return "\n".join(out) + "\n"


def _openai(cr: CodeRequest) -> list[str]:
    import openai.resources.chat.completions as chat
    import openai.resources.responses as responses

    payload = dict(cr.json_body)
    chat_api = cr.api == "chat"
    method = chat.Completions.create if chat_api else responses.Responses.create
    kw, extra = _split(payload, _params(method))
    call = "client.chat.completions.create" if chat_api else "client.responses.create"
    var = env_var_for(cr.provider)
    out = [
        "from openai import OpenAI",
        "",
        f"client = OpenAI(api_key=os.environ[{quote.py(var)}], "
        f"base_url={quote.py(_base(cr, '/chat/completions' if chat_api else '/responses'))})",
        "",
        f"response = {call}(",
        *_kwargs(kw, extra, {}),
        ")",
    ]
    if not cr.stream:
        return [*out, "print(response.model_dump_json(indent=2))"]
    if chat_api:
        return [
            *out,
            "for chunk in response:",
            "    if chunk.choices and chunk.choices[0].delta.content:",
            '        print(chunk.choices[0].delta.content, end="", flush=True)',
            "print()",
        ]
    return [
        *out,
        "for event in response:",
        '    if event.type == "response.output_text.delta":',
        '        print(event.delta, end="", flush=True)',
        "print()",
    ]


def _anthropic(cr: CodeRequest) -> list[str]:
    import anthropic.resources.messages as messages

    kw, extra = _split(dict(cr.json_body), _params(messages.Messages.create))
    beta = {n: "".join(t for _, t in s) for n, s in cr.headers if n == "anthropic-beta"}
    var = env_var_for(cr.provider)
    out = [
        "import anthropic",
        "",
        f"client = anthropic.Anthropic(api_key=os.environ[{quote.py(var)}], "
        f"base_url={quote.py(_base(cr, '/v1/messages'))})",
        "",
        "response = client.messages.create(",
        *_kwargs(kw, extra, beta),
        ")",
    ]
    if not cr.stream:
        return [*out, "print(response.model_dump_json(indent=2))"]
    return [
        *out,
        "for event in response:",
        '    if event.type == "content_block_delta" and event.delta.type == "text_delta":',
        '        print(event.delta.text, end="", flush=True)',
        "print()",
    ]


_GEMINI_TOP = {
    "systemInstruction": "system_instruction",
    "tools": "tools",
    "toolConfig": "tool_config",
    "safetySettings": "safety_settings",
    "cachedContent": "cached_content",
    "labels": "labels",
}


def _gemini(cr: CodeRequest) -> list[str]:
    payload = dict(cr.json_body)
    url = "".join(t for k, t in cr.url if k == "lit")
    path = urlsplit(url).path
    model = path.split("/models/", 1)[-1].split(":", 1)[0] if "/models/" in path else cr.model
    version = path.strip("/").split("/", 1)[0] if path.startswith("/v1") else "v1beta"
    config: dict[str, Any] = dict(payload.get("generationConfig") or {})
    for wire, name in _GEMINI_TOP.items():
        if wire in payload:
            config[name] = payload[wire]
    var = env_var_for(cr.provider)
    fn = "generate_content_stream" if cr.stream else "generate_content"
    out = [
        "from google import genai",
        "from google.genai import types",
        "",
        "client = genai.Client(",
        f"    api_key=os.environ[{quote.py(var)}],",
        f"    http_options=types.HttpOptions(base_url={quote.py(_base(cr, '/' + version))}, "
        f"api_version={quote.py(version)}),",
        ")",
        "",
        f"response = client.models.{fn}(",
        f"    model={quote.py(model or '')},",
        f"    contents={quote.py_value(payload.get('contents') or [], 1)},",
        f"    config={quote.py_value(config, 1)},",
        ")",
    ]
    if not cr.stream:
        return [*out, "print(response.model_dump_json(indent=2, exclude_none=True, by_alias=True))"]
    return [
        *out,
        "for chunk in response:",
        "    for candidate in chunk.candidates or []:",
        "        for part in (candidate.content.parts if candidate.content else None) or []:",
        "            if part.text and not part.thought:",
        '                print(part.text, end="", flush=True)',
        "print()",
    ]

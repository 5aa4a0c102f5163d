"""Which application sent a request: a short human name from its headers.

``detect_client`` reads ``User-Agent`` and the extra headers some clients add (``x-app``,
``originator``, ``x-amz-user-agent``, the Stainless SDK headers) and returns e.g.
``"Claude Code 1.2.3"``, ``"Codex CLI 0.135.0"``, ``"OpenAI Python SDK 1.99.0"``, ``"curl 8.5.0"``
or None when nothing is recognised. Specific applications are checked before the SDKs they are
built on (Claude Code sends the Anthropic JS SDK's headers too).
"""

from __future__ import annotations

import re

# A version with an optional pre-release tag, but not a trailing machine id (KiroIDE-0.2.1-<id>).
_VERSION = r"v?(\d+(?:\.\d+)*(?:-(?:alpha|beta|rc|dev|pre)[.\d]*)?)"

# (regex on the User-Agent, display name). The first group, when present, is the version.
_UA_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), name)
    for p, name in (
        (r"claude-cli/" + _VERSION, "Claude Code"),
        (r"claude-code/" + _VERSION, "Claude Code"),
        (r"codex_cli_rs/" + _VERSION, "Codex CLI"),
        (r"codex[-_ ]?cli/" + _VERSION, "Codex CLI"),
        (r"codex_vscode/" + _VERSION, "Codex IDE"),
        (r"codex_exec/" + _VERSION, "Codex CLI"),
        (r"GeminiCLI/" + _VERSION, "Gemini CLI"),
        (r"gemini-cli/" + _VERSION, "Gemini CLI"),
        (r"Cursor/" + _VERSION, "Cursor"),
        (r"aider/" + _VERSION, "aider"),
        (r"opencode/" + _VERSION, "opencode"),
        (r"Cline/" + _VERSION, "Cline"),
        (r"RooCode/" + _VERSION, "Roo Code"),
        (r"continue/" + _VERSION, "Continue"),
        (r"GitHubCopilotChat/" + _VERSION, "GitHub Copilot"),
        (r"LangChain(?:/" + _VERSION + ")?", "LangChain"),
        (r"litellm/" + _VERSION, "LiteLLM"),
        (r"pydantic-ai/" + _VERSION, "pydantic-ai"),
        (r"llm/" + _VERSION, "llm"),
        (r"OpenAI/Python " + _VERSION, "OpenAI Python SDK"),
        (r"OpenAI/JS " + _VERSION, "OpenAI Node SDK"),
        (r"AsyncOpenAI/Python " + _VERSION, "OpenAI Python SDK"),
        (r"Anthropic/Python " + _VERSION, "Anthropic Python SDK"),
        (r"Anthropic/JS " + _VERSION, "Anthropic Node SDK"),
        (r"google-genai-sdk/" + _VERSION, "google-genai Python SDK"),
        (r"google-genai/" + _VERSION, "google-genai Python SDK"),
        (r"genai-js/" + _VERSION, "google-genai JS SDK"),
        (r"google-api-nodejs-client/" + _VERSION, "Google Node client"),
        (r"ollama-python/" + _VERSION, "Ollama Python"),
        (r"ollama-js/" + _VERSION, "Ollama JS"),
        (r"aws-sdk-js/" + _VERSION, "AWS SDK JS"),
        (r"Boto3/" + _VERSION, "boto3"),
        (r"Botocore/" + _VERSION, "botocore"),
        (r"aws-sdk-rust/" + _VERSION, "AWS SDK Rust"),
        (r"^curl/" + _VERSION, "curl"),
        (r"^Wget/" + _VERSION, "wget"),
        (r"python-httpx/" + _VERSION, "httpx"),
        (r"python-requests/" + _VERSION, "requests"),
        (r"aiohttp/" + _VERSION, "aiohttp"),
        (r"^node-fetch", "node-fetch"),
        (r"^undici", "undici"),
        (r"^axios/" + _VERSION, "axios"),
        (r"^Go-http-client/" + _VERSION, "Go net/http"),
        (r"^okhttp/" + _VERSION, "OkHttp"),
        (r"^PostmanRuntime/" + _VERSION, "Postman"),
        (r"^insomnia/" + _VERSION, "Insomnia"),
        (r"^Mozilla/", "browser"),
    )
)

# Stainless-generated SDKs (openai, anthropic) name themselves in x-stainless-* headers.
_STAINLESS_LANG = {"python": "Python", "js": "Node", "node": "Node", "go": "Go", "java": "Java"}


def _named(name: str, version: str | None) -> str:
    return f"{name} {version}" if version else name


def _match(ua: str) -> str | None:
    for pattern, name in _UA_RULES:
        m = pattern.search(ua)
        if m:
            version = next((g for g in m.groups() if g), None) if m.groups() else None
            return _named(name, version)
    return None


def detect_client(headers: dict[str, str]) -> str | None:
    """A short name (with version when known) of the client that sent these request headers.

    Header names may be in any case. Returns None when nothing identifies the client.
    """
    h = {k.lower(): v for k, v in headers.items() if isinstance(v, str)}
    ua = h.get("user-agent", "")
    # Claude Code sends `x-app: cli` with a `claude-cli/<version>` User-Agent.
    if h.get("x-app", "").lower() == "cli" and "claude" in ua.lower():
        m = re.search(r"claude-cli/" + _VERSION, ua, re.IGNORECASE)
        return _named("Claude Code", m.group(1) if m else None)
    # Codex sets `originator: codex_cli_rs` (or codex-tui, codex_vscode) and a UA starting so.
    originator = h.get("originator", "").lower()
    if originator.startswith("codex"):
        m = re.search(r"codex[\w-]*/" + _VERSION, ua, re.IGNORECASE)
        kind = "Codex IDE" if "vscode" in originator else "Codex CLI"
        return _named(kind, m.group(1) if m else None)
    # Kiro identifies itself in the AWS SDK user agents: the IDE as `KiroIDE-<ver>-<machine>`,
    # kiro-cli (formerly Amazon Q for CLI) as `app/AmazonQ-For-CLI` + `md/appVersion-<ver>`.
    amz = h.get("x-amz-user-agent", "")
    both = f"{amz} {ua}"
    m = re.search(r"KiroIDE[-/ ]?" + _VERSION, both, re.IGNORECASE)
    if m:
        return _named("Kiro IDE", m.group(1))
    if re.search(r"app/AmazonQ-For-CLI|kiro-cli", both, re.IGNORECASE):
        m = re.search(r"(?:appVersion-|kiro-cli/)" + _VERSION, both, re.IGNORECASE)
        return _named("Kiro CLI", m.group(1) if m else None)
    if re.search(r"\bkiro", both, re.IGNORECASE):
        return "Kiro"
    found = _match(ua) if ua else None
    if found:
        return found
    lang = h.get("x-stainless-lang", "").lower()
    if lang and "x-stainless-package-version" in h:
        vendor = "Anthropic" if "anthropic-version" in h else "OpenAI"
        sdk = f"{vendor} {_STAINLESS_LANG.get(lang, lang.title())} SDK"
        return _named(sdk, h["x-stainless-package-version"])
    if amz:
        return _match(amz)
    if "x-goog-api-client" in h:
        return _match(h["x-goog-api-client"].replace("genai-py/", "google-genai/"))
    # Unknown: the product token of the User-Agent is still more useful than nothing.
    product = ua.split("/")[0].split(" ")[0][:40]
    return product or None

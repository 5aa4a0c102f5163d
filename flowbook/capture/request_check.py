"""What is wrong with a request body, said so that a user debugging a 400 can fix it.

A call to an LLM endpoint is recorded whether or not its body parses (issue: a malformed request
left no flow). The provider's parser keeps what it can; this module names the problem: an empty,
binary, truncated or otherwise invalid JSON body, a JSON value that is not an object, a
content type that is not JSON, and, for a call recognised only by its path, the fields that
are missing. The recorder turns the problems into the flow's request parse error.
"""

from __future__ import annotations

import json

from flowbook.providers.base import Detection, RequestView

#: Detection strength of a call recognised by its endpoint alone (its body did not look like
#: one): below every provider's own strengths (host 3, path 2, body shape 1).
ENDPOINT_ONLY = 0

# APIs whose request body is one JSON object (every other API, e.g. "other", is left alone).
_JSON_APIS = frozenset(
    {"chat", "responses", "embeddings", "messages", "generate_content", "converse", "kiro",
     "generate"}
)  # fmt: skip

# Fields a call's body cannot do without, by provider family and API; checked only for calls
# recognised by their endpoint alone, where a missing field is why the body did not look like one.
_REQUIRED: dict[tuple[str, str], tuple[str, ...]] = {
    ("openai", "chat"): ("model", "messages"),
    ("openai", "responses"): ("model", "input"),
    ("openai", "embeddings"): ("model", "input"),
    ("anthropic", "messages"): ("model", "messages", "max_tokens"),
    ("ollama", "chat"): ("model", "messages"),
    ("ollama", "generate"): ("model",),
}

# Servers that accept any content type (Ollama reads the body whatever curl -d labels it).
_ANY_CONTENT_TYPE = frozenset({"ollama"})


def request_problems(view: RequestView, detection: Detection) -> list[str]:
    """Problems with ``view``'s body for ``detection``'s API; empty when it looks right."""
    if detection.api not in _JSON_APIS or view.method.upper() not in ("POST", "PUT"):
        return []
    return _body_problems(view, detection)


def content_type_problem(view: RequestView, detection: Detection) -> str | None:
    """A JSON API's request labelled as something else (``curl -d`` sends form-encoding).

    Many servers read the body whatever its label, so the recorder reports this only beside a
    body problem or when the upstream rejected the call, where it is a likely cause.
    """
    ctype = view.headers.get("content-type", "")
    if (
        detection.api not in _JSON_APIS
        or not view.body
        or not ctype
        or "json" in ctype.lower()
        or detection.provider in _ANY_CONTENT_TYPE
    ):
        return None
    return f"content-type is {ctype!r}, not application/json"


def _body_problems(view: RequestView, detection: Detection) -> list[str]:
    body = view.body
    if not body or body.isspace():
        return ["request body is empty (expected a JSON object)"]
    # view.json() is the parse the provider already did (cached): a good body costs nothing more.
    parsed = view.json()
    if parsed is None:
        return [_why_not_json(body)]
    if not isinstance(parsed, dict):
        return [f"request body is a JSON {_json_type(parsed)}, not an object"]
    if detection.strength != ENDPOINT_ONLY:
        return []
    required = _REQUIRED.get((_family(detection.provider), detection.api), ())
    missing = [k for k in required if k not in parsed]
    if missing:
        return [f"request body has no {', '.join(repr(k) for k in missing)}"]
    return [f"request body does not look like a {detection.provider} {detection.api} call"]


def _why_not_json(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"request body is binary ({len(body)} bytes, not UTF-8 text at byte {exc.start}); "
            "expected a JSON object"
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return f"request body ends before its JSON is complete ({exc.msg} at char {exc.pos})"
        return f"request body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
    return f"request body is a JSON {_json_type(value)}, not an object"


def _family(provider: str) -> str:
    if provider in ("anthropic", "ollama"):
        return provider
    return "openai"


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"

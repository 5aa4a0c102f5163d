"""Edits to bodies and headers: ``modify`` rules, and validation of what a user hands to
``resume(request_body=…, response_body=…, headers=…)``.

Every field a modify rule names lands where that provider keeps it (Gemini's temperature is
``generationConfig.temperature``, Anthropic's system prompt is ``system``, …). Validation runs in
the caller's thread before anything crosses to the proxy, so a bad edit raises at once and the
flow stays paused.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any


class EditError(ValueError):
    """An edit that cannot be applied; the message says what to fix."""


# Where each provider keeps a parameter: api -> name -> JSON path.
_PARAM_PATHS: dict[str, dict[str, str]] = {
    "responses": {"max_tokens": "max_output_tokens"},
    "generate_content": {
        "temperature": "generationConfig.temperature",
        "top_p": "generationConfig.topP",
        "max_tokens": "generationConfig.maxOutputTokens",
    },
    "kiro": {"model": "conversationState.currentMessage.userInputMessage.modelId"},
}


def param_path(api: str, name: str, body: dict[str, Any]) -> str:
    """The JSON path of a named parameter in ``api``'s request body."""
    if api == "chat" and name == "max_tokens" and "max_completion_tokens" in body:
        return "max_completion_tokens"
    return _PARAM_PATHS.get(api, {}).get(name, name)


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` (creating objects on the way); a numeric part indexes a list."""
    keys = path.split(".")
    node: Any = obj
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def remove_path(obj: dict[str, Any], path: str) -> None:
    """Delete ``a.b.c`` if present."""
    keys = path.split(".")
    node: Any = obj
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.get(key)
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(keys[-1], None)


def set_system(api: str, body: dict[str, Any], system: str) -> None:
    """Replace (or add) the system prompt in the provider's own field."""
    if api == "messages":
        body["system"] = system
    elif api == "responses":
        body["instructions"] = system
    elif api == "generate_content":
        body["systemInstruction"] = {"parts": [{"text": system}]}
    elif api == "kiro":
        raise EditError("Kiro requests have no system prompt field; use set= with a JSON path")
    else:
        messages = body.setdefault("messages", [])
        if (
            messages
            and isinstance(messages[0], dict)
            and messages[0].get("role")
            in (
                "system",
                "developer",
            )
        ):
            messages[0]["content"] = system
        else:
            messages.insert(0, {"role": "system", "content": system})


def modify_body(api: str, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with a modify rule's body changes applied (headers are separate)."""
    out = copy.deepcopy(body)
    for name in ("model", "temperature", "max_tokens", "top_p"):
        if name in params and not (name == "model" and api == "generate_content"):
            set_path(out, param_path(api, name, out), params[name])
    if "system" in params:
        set_system(api, out, str(params["system"]))
    for path, value in (params.get("set") or {}).items():
        set_path(out, path, value)
    for path in params.get("remove") or []:
        remove_path(out, path)
    return out


def gemini_model_path(path: str, model: str) -> str:
    """Gemini names the model in the URL: ``…/models/{model}:generateContent``."""
    return re.sub(r"(/models/)[^/:]+(:)", lambda m: f"{m[1]}{model}{m[2]}", path, count=1)


def parse_json_object(value: Any, what: str) -> dict[str, Any]:
    """A dict from a dict or a JSON string; EditError with the position otherwise."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise EditError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EditError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def validate_request_body(api: str, value: Any) -> dict[str, Any]:
    """Check an edited request body enough that upstream will not choke on its shape."""
    body = parse_json_object(value, "request_body")
    if "model" in body and not isinstance(body["model"], str):
        raise EditError("request_body: 'model' must be a string")
    key = {"chat": "messages", "messages": "messages", "generate_content": "contents"}.get(api)
    if key and key in body:
        items = body[key]
        if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
            raise EditError(f"request_body: '{key}' must be a list of objects")
        if key == "messages":
            for i, m in enumerate(items):
                if "role" not in m:
                    raise EditError(f"request_body: messages[{i}] has no 'role'")
    if api == "responses" and "input" in body and not isinstance(body["input"], (str, list)):
        raise EditError("request_body: 'input' must be a string or a list")
    return body


def validate_response_body(api: str, value: Any) -> dict[str, Any]:
    """Check an edited response body has the fields the stream renderer and SDKs need."""
    body = parse_json_object(value, "response_body")
    need = {
        "chat": "choices",
        "messages": "content",
        "responses": "output",
        "generate_content": "candidates",
    }.get(api)
    if need and not isinstance(body.get(need), list) and "error" not in body:
        raise EditError(f"response_body: expected a list in '{need}' for this {api} response")
    return body


def validate_headers(value: Any) -> dict[str, str | None]:
    """``{name: value}`` to set, ``{name: None}`` to remove."""
    if not isinstance(value, dict):
        raise EditError("headers must be a dict of {name: value or None}")
    out: dict[str, str | None] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise EditError(f"headers: bad header name {k!r}")
        out[k] = None if v is None else str(v)
    return out

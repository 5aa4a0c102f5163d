"""Edits to bodies and headers: ``modify`` rules, and validation of what a user hands to
``resume(request_body=…, response_body=…, headers=…)``.

Every field a modify rule names lands where that provider keeps it (Gemini's temperature is
``generationConfig.temperature``, Anthropic's system prompt is ``system``, …): the codec of the
flow's API says where (:mod:`flowbook.providers.codec`). Validation runs in the caller's thread
before anything crosses to the proxy, so a bad edit raises at once and the flow stays paused.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from flowbook.providers.codec import EditError, WireCodec
from flowbook.providers.gemini_encode import GENERATE_CONTENT
from flowbook.providers.registry import codec_for_api

__all__ = [
    "EditError",
    "gemini_model_path",
    "modify_body",
    "param_path",
    "parse_json_object",
    "remove_path",
    "set_path",
    "set_system",
    "validate_headers",
    "validate_request_body",
    "validate_response_body",
]

_NAMED_PARAMS = ("model", "temperature", "max_tokens", "top_p")


def param_path(api: str, name: str, body: dict[str, Any]) -> str:
    """The JSON path of a named parameter in ``api``'s request body."""
    return codec_for_api(api).param_path(name, body)


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
    codec_for_api(api).set_system(body, system)


def modify_body(
    api: str, body: dict[str, Any], params: dict[str, Any], *, codec: WireCodec | None = None
) -> dict[str, Any]:
    """A copy of ``body`` with a modify rule's body changes applied (headers are separate).

    ``codec`` (default: the API's) says where each named parameter lives; a model named in the
    URL (Gemini) is the caller's to change (:meth:`WireCodec.model_path`).
    """
    c = codec or codec_for_api(api)
    out = copy.deepcopy(body)
    for name in _NAMED_PARAMS:
        if name in params and not (name == "model" and not c.model_in_body()):
            set_path(out, c.param_path(name, out), params[name])
    if "system" in params:
        c.set_system(out, str(params["system"]))
    for path, value in (params.get("set") or {}).items():
        set_path(out, path, value)
    for path in params.get("remove") or []:
        remove_path(out, path)
    return out


def gemini_model_path(path: str, model: str) -> str:
    """Gemini names the model in the URL: ``…/models/{model}:generateContent``."""
    return GENERATE_CONTENT.model_path(path, model)


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
    codec_for_api(api).validate_request(body)
    return body


def validate_response_body(api: str, value: Any) -> dict[str, Any]:
    """Check an edited response body has the fields the stream renderer and SDKs need."""
    body = parse_json_object(value, "response_body")
    codec_for_api(api).validate_response(body)
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

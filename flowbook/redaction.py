"""``fb.redaction``: the export redaction rules of the current data dir, and a preview.

The rules live in config.json under ``redaction_rules`` (see
:func:`flowbook.redact.rules_from_config`) and start as flowbook's defaults
(``flowbook.redact.DEFAULT_RULES``). Exports apply them to
headers, query strings, bodies, messages, tool calls and stream events::

    fb.redaction.rules()                       # every rule: name, pattern, replacement, enabled
    fb.redaction.enable("email")               # an opt-in personal-data rule
    fb.redaction.add("ticket", r"TICKET-\\d{6}", replacement="[TICKET]")
    fb.redaction.preview(flow_id)              # what an export would mask in that flow, and where
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from flowbook.model import LLMFlow
from flowbook.redact import DEFAULT_RULES, RedactionRules, fingerprint, rules_from_config

__all__ = ["add", "current", "disable", "enable", "preview", "remove", "reset", "rules"]


def _entries() -> list[dict[str, Any]]:
    from flowbook.io import source

    return [dict(e) for e in source.config().get("redaction_rules") or []]


def _save(entries: list[dict[str, Any]]) -> None:
    from flowbook.io import source

    source.config().set("redaction_rules", entries)


def current() -> RedactionRules:
    """The rules exports use now (defaults plus config.json's ``redaction_rules``)."""
    return rules_from_config(_entries())


def rules() -> pd.DataFrame:
    """Every rule with its name, pattern, replacement (None: a fingerprint), enabled flag and
    whether it is a built-in default."""
    defaults = {r.name for r in DEFAULT_RULES}
    rows = [r.to_dict() | {"default": r.name in defaults} for r in current().rules]
    return pd.DataFrame(rows, columns=["name", "pattern", "replacement", "enabled", "default"])


def _upsert(name: str, **changes: Any) -> None:
    entries = _entries()
    for e in entries:
        if e["name"] == name:
            e.update(changes)
            break
    else:
        entries.append({"name": name, **changes})
    _save(entries)


def _known(names: tuple[str, ...]) -> None:
    have = {r.name for r in current().rules}
    unknown = [n for n in names if n not in have]
    if unknown:
        raise KeyError(f"unknown redaction rules {unknown}; fb.redaction.rules() lists them")


def enable(*names: str) -> None:
    """Turn rules on (the personal-data rules email, phone_cn, phone_intl, credit_card and
    id_card_cn are off by default)."""
    _known(names)
    for n in names:
        _upsert(n, enabled=True)


def disable(*names: str) -> None:
    """Turn rules off by name."""
    _known(names)
    for n in names:
        _upsert(n, enabled=False)


def add(name: str, pattern: str, replacement: str | None = None, *, group: int = 0) -> None:
    """Add (or replace) a rule: ``pattern`` is a regular expression; the match (or its ``group``)
    becomes ``replacement``, or a fingerprint (``…`` plus the last 4 characters) when None."""
    entry: dict[str, Any] = {"name": name, "pattern": pattern}
    entry.update(replacement=replacement, enabled=True)
    if group:
        entry["group"] = group
    entries = [e for e in _entries() if e["name"] != name] + [entry]
    _save(entries)  # validated by the config: a bad pattern raises here, saying why


def remove(name: str) -> None:
    """Remove a rule you added, or undo your changes to a default rule."""
    entries = _entries()
    if not any(e["name"] == name for e in entries):
        raise KeyError(f"no configured rule named {name!r} (default rules can only be disabled)")
    _save([e for e in entries if e["name"] != name])


def reset() -> None:
    """Back to flowbook's default rules."""
    _save([])


# ---- preview ---------------------------------------------------------------------------------


def _texts(flow: LLMFlow) -> Iterator[tuple[str, str]]:
    """(where, text) for every place an export redacts."""
    req = flow.request
    yield "request.url", req.url
    if req.body:
        yield "request.body", req.body.decode("utf-8", "replace")
    if req.system:
        yield "request.system", req.system
    for i, m in enumerate(req.messages):
        for j, p in enumerate(m.parts):
            for attr in ("text", "arguments", "content"):
                v = getattr(p, attr)
                if v is not None:
                    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                    yield f"request.messages[{i}].parts[{j}].{attr}", text
    resp = flow.response
    if resp is not None:
        if resp.body:
            yield "response.body", resp.body.decode("utf-8", "replace")
        yield "response.text", resp.text
        yield "response.thinking", resp.thinking
        for i, c in enumerate(resp.tool_calls):
            yield f"response.tool_calls[{i}].arguments", c.arguments_raw or json.dumps(c.arguments)
        for i, ev in enumerate(resp.events):
            data = ev.data if isinstance(ev.data, str) else json.dumps(ev.data, ensure_ascii=False)
            yield f"response.events[{i}]", data
    if flow.error is not None:
        yield "error.message", flow.error.message
    if flow.annotations.comment:
        yield "annotations.comment", flow.annotations.comment


def preview(flow: str | LLMFlow, rules: RedactionRules | None = None) -> pd.DataFrame:
    """What an export with ``redact_sensitive=True`` would mask in one flow: a row per finding
    with ``where`` (e.g. ``request.headers.authorization``), ``rule``, ``found`` (shown as a
    fingerprint, so the preview itself leaks nothing) and ``becomes``."""
    from flowbook.io import source

    if isinstance(flow, str):
        got = source.get_flow(flow)
        if got is None:
            raise KeyError(f"no flow with id {flow!r} (fb.flows() lists the ids)")
        flow = got
    r = rules or current()
    rows: list[dict[str, Any]] = []

    def add_row(where: str, rule: str, found: str, becomes: str) -> None:
        rows.append({"where": where, "rule": rule, "found": fingerprint(found) if len(found) > 4
                     else "…", "becomes": becomes})  # fmt: skip

    resp_headers = flow.response.headers if flow.response else {}
    for side, headers in (("request", flow.request.headers), ("response", resp_headers)):
        for name, value in headers.items():
            masked = r.mask_header_value(name, value)
            if masked != value:
                add_row(f"{side}.headers.{name}", "secret_header", value, masked)
    masked_url = r.mask_url(flow.request.url)
    if masked_url != r.mask_text(flow.request.url):
        add_row("request.url", "secret_query_param", flow.request.url, masked_url)
    enabled = [rule for rule in r.rules if rule.enabled]
    for where, text in _texts(flow):
        if not text:
            continue
        for rule in enabled:
            for found, becomes in rule.findings(text):
                add_row(where, rule.name, found, becomes)
    return pd.DataFrame(rows, columns=["where", "rule", "found", "becomes"])

"""Intercept rules: an ordered, persisted list of ``filter → action`` entries.

Actions and their parameters (validated when the rule is added, so a typo fails at once):

``pause``   ``on`` (request|response|both, default request), ``timeout`` (s, default 30),
            ``timeout_action`` (continue|drop)
``modify``  ``model``, ``temperature``, ``max_tokens``, ``top_p``, ``system`` (system prompt, in
            the provider's own field), ``set`` ({"a.b": value} JSON paths), ``remove`` (paths),
            ``headers`` ({name: value} added or overridden), ``remove_headers`` ([names])
``mock``    ``text`` or ``body`` (a provider-format JSON body), ``status`` (200), ``model``,
            ``headers``: answer without calling upstream, streamed if the client asked for it
``delay``   ``seconds``, ``on`` (request|response)
``block``   ``status`` (403), ``message``: the client gets an error in the provider's format

Rules are evaluated in order on every LLM flow; each matching rule applies. ``mock`` and ``block``
end the evaluation (nothing after them can matter). Persisted as JSON in
``<data_dir>/intercept_rules.json``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowbook.model import LLMFlow

ACTIONS = ("pause", "modify", "mock", "delay", "block")
STAGES = ("request", "response", "both")
TIMEOUT_ACTIONS = ("continue", "drop")

_PARAMS: dict[str, set[str]] = {
    "pause": {"on", "timeout", "timeout_action"},
    "modify": {
        "model",
        "temperature",
        "max_tokens",
        "top_p",
        "system",
        "set",
        "remove",
        "headers",
        "remove_headers",
    },
    "mock": {"text", "body", "status", "model", "headers"},
    "delay": {"seconds", "on"},
    "block": {"status", "message"},
}

Matcher = Callable[[LLMFlow], bool]


def compile_filter(expr: str | None) -> Matcher:
    """A per-flow predicate from the filter language; None or blank matches every flow.

    A bad expression raises the filter parser's error (a ValueError pointing at the column).
    """
    if expr is None or not str(expr).strip():
        return lambda _flow: True
    from flowbook.filters import parse

    return parse(str(expr)).matches


def validate_params(action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` for ``action`` and fill defaults; raise ValueError naming the problem."""
    if action not in ACTIONS:
        raise ValueError(f"unknown rule action {action!r}; use one of {', '.join(ACTIONS)}")
    unknown = set(params) - _PARAMS[action]
    if unknown:
        raise ValueError(
            f"{action} rule: unknown parameter(s) {sorted(unknown)}; "
            f"allowed: {sorted(_PARAMS[action])}"
        )
    p = dict(params)
    if action == "pause":
        p["on"] = check_stage(p.get("on", "request"))
        p["timeout"] = check_timeout(p.get("timeout", 30.0))
        p["timeout_action"] = check_timeout_action(p.get("timeout_action", "continue"))
    elif action == "modify":
        if not p:
            raise ValueError("modify rule: give at least one change (model=, set=, headers=, …)")
        if not isinstance(p.get("set", {}), dict):
            raise ValueError("modify rule: set= must be a dict of {'json.path': value}")
        for key in ("remove", "remove_headers"):
            if isinstance(p.get(key), str):
                p[key] = [p[key]]
        if not isinstance(p.get("headers", {}), dict):
            raise ValueError("modify rule: headers= must be a dict of {name: value}")
    elif action == "mock":
        if "text" not in p and "body" not in p:
            raise ValueError("mock rule: give text= (reply text) or body= (provider JSON body)")
        if "body" in p and not isinstance(p["body"], dict):
            raise ValueError("mock rule: body= must be a JSON object (dict)")
        p["status"] = int(p.get("status", 200))
    elif action == "delay":
        seconds = float(p.get("seconds", 0))
        if seconds < 0:
            raise ValueError("delay rule: seconds must be >= 0")
        p["seconds"] = seconds
        p["on"] = p.get("on", "request")
        if p["on"] not in ("request", "response"):
            raise ValueError("delay rule: on= must be 'request' or 'response'")
    elif action == "block":
        p["status"] = int(p.get("status", 403))
        p["message"] = str(p.get("message") or "Request blocked by a flowbook intercept rule")
    return p


def check_stage(on: str) -> str:
    if on not in STAGES:
        raise ValueError(f"on= must be one of {', '.join(STAGES)}, not {on!r}")
    return on


def check_timeout(timeout: Any) -> float:
    value = float(timeout)
    if value <= 0:
        raise ValueError("timeout must be a positive number of seconds")
    return value


def check_timeout_action(action: str) -> str:
    if action not in TIMEOUT_ACTIONS:
        raise ValueError(f"timeout_action must be 'continue' or 'drop', not {action!r}")
    return action


@dataclass
class Rule:
    """One intercept rule. ``matches`` is compiled from ``filter`` once."""

    filter: str | None
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: "r" + uuid.uuid4().hex[:7])
    enabled: bool = True
    created: float = field(default_factory=time.time)
    matches: Matcher = field(default=lambda _f: True, repr=False, compare=False)

    def applies(self, flow: LLMFlow, stage: str) -> bool:
        """Whether the rule acts on ``flow`` at ``stage`` (request or response)."""
        if not self.enabled or _rule_stage(self) not in (stage, "both"):
            return False
        try:
            return bool(self.matches(flow))
        except Exception:  # a filter bug must not break traffic; treat as no match
            return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filter": self.filter,
            "action": self.action,
            "params": self.params,
            "enabled": self.enabled,
            "created": self.created,
        }


def _rule_stage(rule: Rule) -> str:
    if rule.action in ("pause", "delay"):
        return str(rule.params.get("on", "request"))
    return "request"


class RuleSet:
    """Thread-safe ordered rules; every change is written to ``path`` when one is set."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self.path = path
        self.load_errors: list[str] = []
        if path is not None:
            self.load(path)

    def add(
        self, filter: str | None, action: str, *, index: int | None = None, **params: Any
    ) -> Rule:
        """Validate and append (or insert at ``index``) a rule; returns it."""
        checked = validate_params(action, params)
        rule = Rule(filter=filter, action=action, params=checked, matches=compile_filter(filter))
        with self._lock:
            if index is None:
                self._rules.append(rule)
            else:
                self._rules.insert(index, rule)
            self._save_locked()
        return rule

    def extend(self, rules: list[Rule]) -> None:
        """Append already-validated rules (skipping ids already present)."""
        with self._lock:
            known = {r.id for r in self._rules}
            self._rules += [r for r in rules if r.id not in known]
            self._save_locked()

    def remove(self, rule_id: str) -> Rule:
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.id == rule_id:
                    del self._rules[i]
                    self._save_locked()
                    return rule
        raise KeyError(f"no intercept rule {rule_id!r}; rules: {[r.id for r in self.all()]}")

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._save_locked()

    def all(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def matching(self, flow: LLMFlow, stage: str) -> list[Rule]:
        """Rules that act on ``flow`` at ``stage``, in order."""
        return [r for r in self.all() if r.applies(flow, stage)]

    def load(self, path: Path) -> None:
        """Replace the rules with those stored at ``path`` (missing file: no rules)."""
        self.path = path
        self.load_errors = []
        rules: list[Rule] = []
        if path.exists():
            try:
                stored = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                stored = []
                self.load_errors.append(f"{path}: {exc}")
            for d in stored if isinstance(stored, list) else []:
                try:
                    rules.append(_rule_from_dict(d))
                except Exception as exc:  # one bad rule must not hide the others
                    self.load_errors.append(f"rule {d.get('id')!r} skipped: {exc}")
        with self._lock:
            self._rules = rules

    def _save_locked(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        data = [r.to_dict() for r in self._rules]
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), "utf-8")
        tmp.replace(self.path)  # atomic: a killed kernel never leaves half a file


def _rule_from_dict(d: dict[str, Any]) -> Rule:
    action = d["action"]
    params = validate_params(action, dict(d.get("params") or {}))
    return Rule(
        filter=d.get("filter"),
        action=action,
        params=params,
        id=d.get("id") or "r" + uuid.uuid4().hex[:7],
        enabled=bool(d.get("enabled", True)),
        created=float(d.get("created") or time.time()),
        matches=compile_filter(d.get("filter")),
    )

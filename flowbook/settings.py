"""Settings: the data dir, ``config.json`` in it, environment overrides, ``fb.config``.

``fb.config`` is the live ``ConfigManager`` of the current workspace (``flowbook.workspace``);
this module holds the machinery and is named so that it does not shadow that attribute.
Precedence, lowest first: built-in defaults < ``<data_dir>/config.json`` < environment variables
< values set at run time (``fb.config.retention_days = 3``, which also writes config.json).
The data dir is ``FLOWBOOK_DATA_DIR`` (or the reference's ``FLOW_MONITOR_DATA_DIR``), default
``~/.flowbook``, created readable by the user only (the CA private key lives there).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
DATA_DIR_VARS = ("FLOWBOOK_DATA_DIR", "FLOW_MONITOR_DATA_DIR")


def resolve_data_dir(explicit: str | Path | None = None, *, create: bool = True) -> Path:
    """explicit > FLOWBOOK_DATA_DIR > FLOW_MONITOR_DATA_DIR > ~/.flowbook (created 0700)."""
    raw: str | Path | None = explicit
    for var in DATA_DIR_VARS:
        if raw:
            break
        raw = os.environ.get(var) or None
    path = Path(raw or "~/.flowbook").expanduser().absolute()
    if create and not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default, meaning, allowed values and env vars."""

    name: str
    default: Any
    help: str
    kind: type = int
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    # Extra validation and normalising (list and dict kinds); raises ConfigError or ValueError.
    check: Callable[[Any], Any] | None = None

    def allowed(self) -> str:
        if self.kind is dict:
            return "a JSON object"
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is list:
            return "a list (see the setting's help)"
        noun = {int: "an integer", float: "a number", str: "a string"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{noun} >= {self.minimum:g}"
        return noun

    def coerce(self, value: Any) -> Any:
        """Validate ``value`` (strings from env vars are parsed); raise ConfigError if bad."""
        v = value
        if self.kind is list:
            return self._coerce_list(v)
        if self.kind is dict:
            return self._coerce_dict(value)
        if isinstance(v, str) and self.kind is not str:
            text = v.strip().lower()
            if self.kind is bool:
                v = _BOOL_WORDS.get(text, v)
            else:
                try:
                    v = float(text) if self.kind is float or "." in text else int(text)
                except ValueError:
                    pass
        ok = isinstance(v, self.kind) and not (self.kind is not bool and isinstance(v, bool))
        if self.kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if self.kind is int and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        if ok and self.choices and v not in self.choices:
            ok = False
        if ok and self.minimum is not None and v < self.minimum:
            ok = False
        if ok and self.maximum is not None and v > self.maximum:
            ok = False
        if not ok:
            raise ConfigError(f"{self.name} must be {self.allowed()}, not {value!r}")
        return v

    def _coerce_list(self, value: Any) -> Any:
        v = value
        if isinstance(v, str):  # from an env var: JSON
            try:
                v = json.loads(v)
            except ValueError as e:
                raise ConfigError(f"{self.name} must be a JSON list: {e}") from None
        if not isinstance(v, list | tuple):
            raise ConfigError(f"{self.name} must be a list, not {value!r}")
        return self.check(list(v)) if self.check is not None else list(v)

    def _coerce_dict(self, value: Any) -> Any:
        v = value
        if isinstance(v, str):  # from an env var
            try:
                v = json.loads(v)
            except ValueError as e:
                raise ConfigError(f"{self.name} must be {self.allowed()}: {e}") from None
        if not isinstance(v, dict):
            raise ConfigError(f"{self.name} must be {self.allowed()}, not {value!r}")
        if self.check is not None:
            try:
                v = self.check(v)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        return v


def _check_price_overrides(value: Any) -> Any:
    # Imported when used: settings imports nothing from flowbook at module level.
    from flowbook.analysis.pricing import check_price_overrides

    return check_price_overrides(value)


MiB = 1 << 20


def _check_redaction_rules(value: list[Any]) -> list[Any]:
    from flowbook.redact import check_rule_dicts

    try:
        return check_rule_dicts(value)
    except ValueError as e:
        raise ConfigError(f"redaction_rules: {e}") from None


_BOOL_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting(
            "max_flows_in_memory",
            1000,
            "full flows kept in memory (LRU); the summary keeps every flow",
            int,
            1,
            env=("FLOWBOOK_MAX_MEMORY", "FLOW_MONITOR_MAX_MEMORY"),
        ),
        Setting(
            "retention_days",
            7.0,
            "days flows stay on disk",
            float,
            0.001,
            env=("FLOWBOOK_RETENTION_DAYS", "FLOW_MONITOR_RETENTION_DAYS"),
        ),
        Setting("auto_cleanup", True, "delete flows older than retention_days automatically", bool),
        Setting(
            "persist_to_file",
            True,
            "write completed flows to the file store (history); off keeps them in memory only",
            bool,
        ),
        Setting(
            "intercept_enabled",
            False,
            "fb.start() pauses every LLM flow (fb.intercept.enable()) unless a breakpoint is set",
            bool,
        ),
        Setting(
            "intercept_timeout_s",
            30.0,
            "seconds before a paused flow is auto-released (fb.intercept.enable's default)",
            float,
            0.1,
            86400,
        ),
        Setting(
            "intercept_timeout_action",
            "continue",
            "what the timeout does (fb.intercept.enable's default)",
            str,
            choices=("continue", "drop"),
        ),
        Setting("save_stream_events", True, "keep every stream event with its arrival time", bool),
        Setting("redact_sensitive", True, "mask secrets at rest and in exports", bool),
        Setting(
            "redaction_rules",
            [],
            "export redaction rules [{name, pattern, replacement, enabled}]: entries named like "
            "a default rule switch or replace it, new names add rules (fb.redaction lists them)",
            list,
            check=_check_redaction_rules,
        ),
        Setting("segment_max_bytes", 64 * MiB, "size at which a JSONL segment rotates", int, MiB),
        Setting("listen_host", "127.0.0.1", "address fb.start() listens on by default", str),
        Setting(
            "listen_port",
            8080,
            "port fb.start() listens on by default (0 picks a free one)",
            int,
            0,
            65535,
        ),
        Setting(
            "auto_sessions",
            True,
            "group flows into detected sessions (client identity, idle gaps, conversations)",
            bool,
        ),
        Setting(
            "auto_session_idle_minutes",
            30.0,
            "an idle gap longer than this starts a new detected session for the same client",
            float,
            0.01,
        ),
        Setting(
            "alert_latency_s",
            5.0,
            "a flow slower than this (seconds) is an alert (0: off)",
            float,
            0,
        ),
        Setting(
            "alert_tokens",
            10_000,
            "a flow with at least this many tokens is an alert (0: off)",
            int,
            0,
        ),
        Setting(
            "alert_cost_usd",
            1.0,
            "a flow costing at least this much (USD) is an alert (0: off)",
            float,
            0,
        ),
        Setting("alert_on_error", True, "a failed flow is an alert", bool),
        Setting(
            "notification_enabled",
            True,
            "show a notebook notification, once, for each new alert",
            bool,
        ),
        Setting(
            "price_overrides",
            {},
            "USD per million tokens for models genai-prices does not know, e.g. "
            '{"my-ft-model": {"input": 3, "output": 15, "cache_read": 0.3}}',
            dict,
            check=_check_price_overrides,
        ),
    ]
}
# Names from the reference implementation that mean one of ours.
ALIASES = {"max_memory_flows": "max_flows_in_memory", "timeout_s": "intercept_timeout_s"}


class ConfigError(ValueError):
    """A configuration key or value was rejected; the message says what is allowed."""


def _resolve_key(key: str) -> str:
    key = ALIASES.get(key, key)
    if key in SETTINGS:
        return key
    close = difflib.get_close_matches(key, [*SETTINGS, *ALIASES], n=1, cutoff=0.5)
    hint = f" Did you mean {ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ConfigError(f"Unknown setting {key!r}.{hint} Valid settings: {', '.join(SETTINGS)}.")


def env_var_for(name: str) -> tuple[str, ...]:
    """The env vars that override a key: its short names, then ``FLOWBOOK_<NAME>``."""
    generic = f"FLOWBOOK_{name.upper()}"
    named = SETTINGS[name].env
    return (*named, generic) if generic not in named else named


@dataclass
class Config:
    """Plain values of every setting (a snapshot; ``ConfigManager`` is the live one)."""

    max_flows_in_memory: int = 1000
    retention_days: float = 7.0
    auto_cleanup: bool = True
    persist_to_file: bool = True
    intercept_enabled: bool = False
    intercept_timeout_s: float = 30.0
    intercept_timeout_action: str = "continue"
    save_stream_events: bool = True
    redact_sensitive: bool = True
    redaction_rules: list[Any] = field(default_factory=list)
    segment_max_bytes: int = 64 * MiB
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    auto_sessions: bool = True
    auto_session_idle_minutes: float = 30.0
    alert_latency_s: float = 5.0
    alert_tokens: int = 10_000
    alert_cost_usd: float = 1.0
    alert_on_error: bool = True
    notification_enabled: bool = True
    price_overrides: dict[str, Any] = field(default_factory=dict)


def load_config(data_dir: str | Path | None = None) -> Config:
    """Defaults < config.json < env vars, as a Config (problems in ``ConfigManager.warnings``)."""
    return ConfigManager(data_dir).snapshot()


Listener = Callable[[str, Any, Any], None]


class ConfigManager:
    """The live configuration (``fb.config``): read, validated writes, persistence, listeners.

    ``fb.config.retention_days = 3`` or ``fb.config.set("retention_days", 3)`` validates the
    value, writes config.json and calls every ``on_change`` listener with (key, old, new).
    ``repr(fb.config)`` lists each value and where it came from (default, file, env, runtime).
    """

    def __init__(self, data_dir: str | Path | None = None, *, env: dict[str, str] | None = None):
        self._data_dir = resolve_data_dir(data_dir)
        self._path = self._data_dir / CONFIG_FILE
        self._env = os.environ if env is None else env
        self._values: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        self._file_extra: dict[str, Any] = {}
        self._listeners: list[Listener] = []
        self.warnings: list[str] = []
        self.reload()

    @property
    def path(self) -> Path:
        """The config.json this manager reads and writes."""
        return self._path

    def reload(self) -> None:
        """Re-read defaults, config.json and env vars (runtime changes are in the file)."""
        self.warnings = []
        self._values = {k: s.default for k, s in SETTINGS.items()}
        self._sources = dict.fromkeys(SETTINGS, "default")
        if not self._path.exists():
            self._write({})  # a config.json with every default, for users to discover and edit
        for key, raw in self._read_file().items():
            try:
                name = _resolve_key(key)
                value = SETTINGS[name].coerce(raw)
            except ConfigError as e:
                self.warnings.append(f"{self._path}: {e} (ignored)")
                continue
            self._values[name] = value
            self._sources[name] = "file" if value != SETTINGS[name].default else "default"
        for name in SETTINGS:
            for var in env_var_for(name):
                if var in self._env:
                    try:
                        self._values[name] = SETTINGS[name].coerce(self._env[var])
                        self._sources[name] = f"env {var}"
                    except ConfigError as e:
                        self.warnings.append(f"{var}: {e} (ignored)")
                    break

    def _read_file(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.warnings.append(f"{self._path} is not valid JSON ({e}); using defaults")
            return {}
        if not isinstance(data, dict):
            self.warnings.append(f"{self._path} must hold a JSON object; using defaults")
            return {}
        known = {k: v for k, v in data.items() if k in SETTINGS or k in ALIASES}
        # Keys we do not know (a newer flowbook's) are kept when we rewrite the file.
        self._file_extra = {k: v for k, v in data.items() if k not in known}
        return known

    def _write(self, overrides: dict[str, Any]) -> None:
        data = {k: s.default for k, s in SETTINGS.items()} | self._file_extra | overrides
        tmp = self._path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)
        except OSError as e:
            self.warnings.append(f"could not write {self._path}: {e}")

    def _persist(self) -> None:
        file_values = {
            k: v for k, v in self._read_file().items() if k in SETTINGS
        }  # keep what the file had for keys the environment overrides now
        for k, src in self._sources.items():
            if src in ("file", "runtime", "default"):
                file_values[k] = self._values[k]
        self._write(file_values)

    def get(self, key: str) -> Any:
        """The current value of a setting (aliases accepted)."""
        return self._values[_resolve_key(key)]

    def source(self, key: str) -> str:
        """Where the current value came from: default, file, env <VAR> or runtime."""
        return self._sources[_resolve_key(key)]

    def set(self, key: str, value: Any, *, persist: bool = True) -> None:
        """Validate and set one value; write config.json; notify listeners if it changed."""
        self.update({key: value}, persist=persist)

    def update(
        self, values: dict[str, Any] | None = None, /, *, persist: bool = True, **kwargs: Any
    ) -> None:
        """Set several values at once; nothing changes unless every one is valid."""
        checked = {}
        for key, value in {**(values or {}), **kwargs}.items():
            name = _resolve_key(key)
            checked[name] = SETTINGS[name].coerce(value)
        changed = []
        for name, value in checked.items():
            old = self._values[name]
            self._values[name] = value
            self._sources[name] = "runtime"
            if old != value:
                changed.append((name, old, value))
        if persist:
            self._persist()
        for name, old, value in changed:
            self._notify(name, old, value)

    def reset(self, key: str | None = None) -> None:
        """Return one setting (or all) to its default, in memory and in config.json."""
        names = list(SETTINGS) if key is None else [_resolve_key(key)]
        self.update({n: SETTINGS[n].default for n in names})
        for n in names:
            self._sources[n] = "default"

    def on_change(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(key, old, new)`` after each change; returns an unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, name: str, old: Any, new: Any) -> None:
        for cb in list(self._listeners):
            try:
                cb(name, old, new)
            except Exception as e:  # one broken listener must not stop the others
                self.warnings.append(f"config listener {cb!r} failed on {name}: {e!r}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def snapshot(self) -> Config:
        """The current values as a plain Config."""
        return Config(**self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[_resolve_key(name)]
        except ConfigError as e:
            raise AttributeError(str(e)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name == "warnings":
            object.__setattr__(self, name, value)
        else:
            self.set(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *SETTINGS})

    def __repr__(self) -> str:
        width = max(map(len, SETTINGS))
        lines = [f"flowbook config ({self._path}):"]
        for name, s in SETTINGS.items():
            value = json.dumps(self._values[name])
            lines.append(f"  {name:<{width}} = {value:<12} [{self._sources[name]}]  {s.help}")
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)

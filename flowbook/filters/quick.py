"""Quick filters: the reference's six presets plus named, grouped, user-saved filters.

Saved filters persist as JSON in the data dir (``quick_filters.json``) and can be exported and
imported (format ``{"version": "1.0", "exported_at": ..., "filters": [...]}``, as the reference).
Every expression is validated with the filter parser on save and on import; presets cannot be
deleted or overwritten.
"""

from __future__ import annotations

import builtins
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from flowbook.filters import FilterError, parse

FILE_NAME = "quick_filters.json"
PRESET_GROUP = "presets"
FORMAT_VERSION = "1.0"


@dataclass(frozen=True)
class QuickFilter:
    """A named filter. ``alternative`` is the same filter in mitmproxy/reference ``~`` syntax."""

    name: str
    expression: str
    group: str | None = None
    description: str | None = None
    preset: bool = False
    alternative: str | None = None
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# The reference's presets (docs/reference-flow-monitor.md §3.3), in both syntaxes.
PRESETS: tuple[QuickFilter, ...] = tuple(
    QuickFilter(name, expr, PRESET_GROUP, desc, True, alt)
    for name, expr, alt, desc in [
        ("Recent failures", "is:error", "~e", "Flows that ended in an error"),
        ("High latency", "latency:>5s", "~latency >5s", "Slower than 5 seconds end to end"),
        ("Large token count", "tokens:>10k", "~tokens >10000", "More than 10,000 tokens"),
        ("Has tool calls", "has:tool_calls", "~tools", "The model called at least one tool"),
        ("Has thinking", "has:thinking", "~k", "The response has thinking/reasoning"),
        ("Bookmarked", "is:bookmarked", "~starred", "Flows you bookmarked (starred)"),
    ]
)
_PRESET_NAMES = {p.name.lower() for p in PRESETS}


@dataclass
class ImportReport:
    """What ``import_json`` did, name by name."""

    imported: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


class QuickFilters:
    """Presets plus the user's saved filters, persisted in ``data_dir``. Thread-safe."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._lock = threading.Lock()
        self._saved: dict[str, QuickFilter] = self._load()

    def _load(self) -> dict[str, QuickFilter]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file must not stop the table from opening; keep it for the user.
            self.path.replace(self.path.with_suffix(".json.corrupt"))
            return {}
        items = raw.get("filters", []) if isinstance(raw, dict) else []
        out: dict[str, QuickFilter] = {}
        for item in items:
            qf = _from_dict(item)
            if qf is not None and qf.name.lower() not in _PRESET_NAMES:
                out[qf.name] = qf
        return out

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": FORMAT_VERSION,
            "filters": [q.to_dict() for q in self._saved.values()],
        }
        # Write then rename, so a killed kernel never leaves half a file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".quick_filters.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, indent=2)
        os.replace(tmp, self.path)

    def list(self, group: str | None = None) -> builtins.list[QuickFilter]:
        """Presets first, then saved filters by group and name (``group`` narrows the list)."""
        with self._lock:
            saved = sorted(self._saved.values(), key=lambda q: (q.group or "", q.name.lower()))
        every = [*PRESETS, *saved]
        return every if group is None else [q for q in every if q.group == group]

    def groups(self) -> builtins.list[str]:
        """Group names in use (the presets' group first)."""
        names = [PRESET_GROUP]
        for q in self.list():
            if q.group and q.group not in names:
                names.append(q.group)
        return names

    def get(self, name: str) -> QuickFilter | None:
        """A filter by name (case-insensitive), preset or saved."""
        for q in self.list():
            if q.name.lower() == name.lower():
                return q
        return None

    def save(
        self, name: str, expression: str, group: str | None = None, description: str | None = None
    ) -> QuickFilter:
        """Save (or update) a filter. Raises FilterError for a bad expression and ValueError
        for an empty name or a preset's name."""
        name = name.strip()
        if not name:
            raise ValueError("a quick filter needs a name")
        if name.lower() in _PRESET_NAMES:
            raise ValueError(f"{name!r} is a preset; choose another name")
        parse(expression)
        with self._lock:
            old = self._find(name)
            created = old.created_at if old else datetime.now(UTC).isoformat()
            if old is not None:
                del self._saved[old.name]
            qf = QuickFilter(name, expression, group, description, False, None, created)
            self._saved[name] = qf
            self._write()
        return qf

    def _find(self, name: str) -> QuickFilter | None:
        return next((q for q in self._saved.values() if q.name.lower() == name.lower()), None)

    def delete(self, name: str) -> bool:
        """Delete a saved filter; False if there is none. Presets raise ValueError."""
        if name.strip().lower() in _PRESET_NAMES:
            raise ValueError(f"{name!r} is a preset and cannot be deleted")
        with self._lock:
            old = self._find(name.strip())
            if old is None:
                return False
            del self._saved[old.name]
            self._write()
        return True

    def export_json(self) -> str:
        """The saved filters (not the presets) as JSON."""
        with self._lock:
            filters = [q.to_dict() for q in self._saved.values()]
        exported = datetime.now(UTC).isoformat()
        payload = {"version": FORMAT_VERSION, "exported_at": exported, "filters": filters}
        return json.dumps(payload, ensure_ascii=False, indent=2)

    def import_json(
        self, text: str, on_conflict: Literal["skip", "overwrite"] = "skip"
    ) -> ImportReport:
        """Import exported filters. Presets and invalid expressions are skipped (and reported);
        a name that already exists is skipped or overwritten per ``on_conflict``."""
        if on_conflict not in ("skip", "overwrite"):
            raise ValueError("on_conflict must be 'skip' or 'overwrite'")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a quick-filter export: {exc}") from None
        items = raw.get("filters") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ValueError("not a quick-filter export: no 'filters' list")
        report = ImportReport()
        with self._lock:
            for item in items:
                qf = _from_dict(item)
                if qf is None:
                    report.invalid[str(item)[:60]] = "missing name or expression"
                    continue
                if qf.preset or qf.name.lower() in _PRESET_NAMES:
                    report.skipped.append(qf.name)
                    continue
                try:
                    parse(qf.expression)
                except FilterError as exc:
                    report.invalid[qf.name] = exc.message
                    continue
                old = self._find(qf.name)
                if old is not None and on_conflict == "skip":
                    report.skipped.append(qf.name)
                    continue
                if old is not None:
                    del self._saved[old.name]
                    report.overwritten.append(qf.name)
                else:
                    report.imported.append(qf.name)
                self._saved[qf.name] = qf
            self._write()
        return report


def _from_dict(item: Any) -> QuickFilter | None:
    """A QuickFilter from JSON (also the reference's ``filter_expr``/``group_name`` spelling)."""
    if not isinstance(item, dict):
        return None
    name = item.get("name")
    expr = item.get("expression", item.get("filter_expr"))
    if not isinstance(name, str) or not name.strip() or not isinstance(expr, str):
        return None
    group = item.get("group", item.get("group_name"))
    desc = item.get("description")
    return QuickFilter(
        name=name.strip(),
        expression=expr,
        group=group if isinstance(group, str) else None,
        description=desc if isinstance(desc, str) else None,
        preset=bool(item.get("preset", item.get("is_preset", False))),
        created_at=item.get("created_at") if isinstance(item.get("created_at"), str) else None,
    )

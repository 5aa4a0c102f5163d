"""Quick filters: presets, saving, validation, persistence, export/import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowbook.filters import FilterError, MemoryFlowSource, parse
from flowbook.filters.quick import PRESETS, QuickFilters
from flowbook.schema import frame_from_rows, summary_row
from tests.unit.test_filters import FLOWS


def test_presets_are_the_reference_six_and_both_syntaxes_agree() -> None:
    assert [p.name for p in PRESETS] == [
        "Recent failures",
        "High latency",
        "Large token count",
        "Has tool calls",
        "Has thinking",
        "Bookmarked",
    ]
    df = frame_from_rows([summary_row(f) for f in FLOWS])
    source = MemoryFlowSource({f.id: f for f in FLOWS})
    for p in PRESETS:
        assert p.preset and p.group == "presets" and p.alternative
        key_style = parse(p.expression).mask(df, source=source).tolist()
        tilde_style = parse(p.alternative).mask(df, source=source).tolist()
        assert key_style == tilde_style, p.name
    assert any(parse("has:tool_calls").mask(df)), "fixture flows exercise the presets"


def test_save_validates_and_persists(tmp_path: Path) -> None:
    qf = QuickFilters(tmp_path)
    saved = qf.save("slow claude", "model:claude latency:>2s", group="perf", description="d")
    assert saved.created_at
    with pytest.raises(FilterError):
        qf.save("broken", "model:")
    with pytest.raises(ValueError, match="preset"):
        qf.save("bookmarked", "is:error")
    with pytest.raises(ValueError, match="name"):
        qf.save("  ", "is:error")

    again = QuickFilters(tmp_path)
    got = again.get("SLOW CLAUDE")
    assert got is not None and got.expression == "model:claude latency:>2s"
    assert got.group == "perf" and got.description == "d"
    assert again.groups() == ["presets", "perf"]
    assert [q.name for q in again.list(group="perf")] == ["slow claude"]
    assert len(again.list()) == len(PRESETS) + 1

    # Saving under an existing name updates it and keeps its creation time.
    updated = again.save("slow claude", "model:claude latency:>5s")
    assert updated.created_at == saved.created_at
    assert [q.expression for q in again.list() if not q.preset] == ["model:claude latency:>5s"]


def test_delete(tmp_path: Path) -> None:
    qf = QuickFilters(tmp_path)
    qf.save("mine", "is:error")
    with pytest.raises(ValueError, match="preset"):
        qf.delete("High latency")
    assert qf.delete("mine") is True
    assert qf.delete("mine") is False
    assert QuickFilters(tmp_path).get("mine") is None
    assert QuickFilters(tmp_path).get("High latency") is not None


def test_export_import_round_trip_and_conflicts(tmp_path: Path) -> None:
    a = QuickFilters(tmp_path / "a")
    a.save("errors", "is:error", group="ops")
    a.save("openai", "provider:openai")
    exported = json.loads(a.export_json())
    assert exported["version"] == "1.0" and "exported_at" in exported
    assert {f["name"] for f in exported["filters"]} == {"errors", "openai"}

    b = QuickFilters(tmp_path / "b")
    b.save("openai", "provider:openai model:gpt")
    exported["filters"] += [
        {"name": "bad", "expression": "tokens:>"},
        {"name": "High latency", "expression": "latency:>1s", "preset": True},
        {"name": "legacy", "filter_expr": "~e", "group_name": "old"},
        {"nope": 1},
    ]
    text = json.dumps(exported)
    report = b.import_json(text)
    assert sorted(report.imported) == ["errors", "legacy"]
    assert sorted(report.skipped) == ["High latency", "openai"]
    assert list(report.invalid) == ["bad", "{'nope': 1}"]
    assert b.get("openai").expression == "provider:openai model:gpt"  # type: ignore[union-attr]
    assert b.get("legacy").group == "old"  # type: ignore[union-attr]

    report = b.import_json(text, on_conflict="overwrite")
    assert sorted(report.overwritten) == ["errors", "legacy", "openai"]
    assert QuickFilters(tmp_path / "b").get("openai").expression == "provider:openai"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        b.import_json("not json")
    with pytest.raises(ValueError):
        b.import_json(text, on_conflict="merge")  # type: ignore[arg-type]


def test_a_damaged_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "quick_filters.json").write_text("{torn", encoding="utf-8")
    qf = QuickFilters(tmp_path)
    assert [q.name for q in qf.list()] == [p.name for p in PRESETS]
    assert (tmp_path / "quick_filters.json.corrupt").exists()
    qf.save("x", "~e")
    assert QuickFilters(tmp_path).get("x") is not None

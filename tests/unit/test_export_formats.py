"""fb.export's other formats and options: JSON/JSONL (lossless), CSV (the DataFrame's columns),
Parquet, mitmproxy files, selections, body options, progress, and the Markdown snapshot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from mitmproxy import http
from mitmproxy import io as mio

import flowbook as fb
from flowbook.io import source
from flowbook.io.importer import read_flows
from flowbook.io.progress import Progress
from flowbook.model import LLMFlow
from tests.helpers.export_flows import fixture_flows

SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "export" / "report.md"


@pytest.fixture(scope="module")
def flows() -> list[LLMFlow]:
    return fixture_flows()


@pytest.fixture
def stored(data_dir: Path, flows: list[LLMFlow]) -> list[LLMFlow]:
    source.add_flows(flows)
    return flows


def same(a: LLMFlow, b: LLMFlow) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d["metadata"]["extra"].pop("imported_at", None)
    return da == db


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_formats_are_lossless(stored: list[LLMFlow], fmt: str, tmp_path: Path) -> None:
    text = fb.export(None, fmt)
    assert isinstance(text, str)
    if fmt == "jsonl":
        lines = text.split("\n")[:-1]
        assert len(lines) == len(stored) and text.endswith("\n")
    else:
        assert [d["id"] for d in json.loads(text)] == [f.id for f in stored]
    path = fb.export(None, fmt, tmp_path / f"out.{fmt}")
    back = read_flows(path)
    assert all(same(x, y) for x, y in zip(back, stored, strict=True))


def test_csv_has_the_dataframe_columns(stored: list[LLMFlow]) -> None:
    text = fb.export(None, "csv")
    df = pd.read_csv(io.StringIO(str(text)))
    assert list(df.columns) == list(fb.flows().columns)
    assert list(df["id"]) == [f.id for f in stored]
    assert df["model"].tolist() == [f.model for f in stored]


def test_parquet_needs_a_path_and_writes_a_dataset(stored: list[LLMFlow], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass path="):
        fb.export(None, "parquet")
    out = fb.export(None, "parquet", tmp_path / "pq")
    df = pd.read_parquet(out)
    assert sorted(df["id"]) == sorted(f.id for f in stored)
    assert "response_text" in df.columns


def test_mitmproxy_file_is_read_by_mitmproxy(stored: list[LLMFlow], tmp_path: Path) -> None:
    path = fb.export(None, "mitmproxy", tmp_path / "flows.mitm")
    with open(path, "rb") as f:
        read = list(mio.FlowReader(f).stream())
    assert len(read) == len(stored)
    for hf, flow in zip(read, stored, strict=True):
        assert isinstance(hf, http.HTTPFlow) and hf.response is not None
        assert hf.request.pretty_url == flow.request.url
        assert hf.request.get_content() == flow.request.body
        assert hf.response.status_code == flow.response.status_code  # type: ignore[union-attr]
        # mitmproxy decodes what it stores (gzip re-applied from the recorded header).
        assert hf.response.get_content() == flow.response.body  # type: ignore[union-attr]
        assert hf.metadata["flowbook_id"] == flow.id
    again = read_flows(path)
    assert [f.response.text for f in again] == [f.response.text for f in stored]  # type: ignore[union-attr]


def test_selections(stored: list[LLMFlow]) -> None:
    every = json.loads(str(fb.export(None, "json")))
    assert len(every) == len(stored)
    by_filter = json.loads(str(fb.export("provider:anthropic", "json")))
    assert {d["metadata"]["provider"] for d in by_filter} == {"anthropic"}
    ids = [stored[2].id, stored[0].id]
    assert [d["id"] for d in json.loads(str(fb.export(ids, "json")))] == ids
    df = fb.flows("model:gpt-4o-mini")
    assert {d["id"] for d in json.loads(str(fb.export(df, "json")))} == set(df["id"])
    assert len(json.loads(str(fb.export(stored[1].id, "json")))) == 1
    with pytest.raises(KeyError, match="no flow with id"):
        fb.export(["0123456789abcdef"], "json")
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        fb.export(None, "xml")
    with pytest.raises(TypeError, match="selection must be"):
        fb.export(42, "json")


def test_body_options_and_explicit_no_redaction(stored: list[LLMFlow]) -> None:
    d = json.loads(str(fb.export(None, "json", include_request_body=False)))[0]
    assert d["request"]["body"] is None and d["request"]["messages"] == []
    assert d["response"]["text"] == stored[0].response.text  # type: ignore[union-attr]
    d = json.loads(str(fb.export(None, "json", include_response_body=False)))[1]
    assert d["response"]["body"] is None and d["response"]["text"] == ""
    assert d["response"]["usage"]["output"] == stored[1].usage.output  # type: ignore[union-attr]
    with pytest.warns(UserWarning, match="redact_sensitive=False"):
        fb.export(None, "json", redact_sensitive=False)


def test_export_to_a_path_is_atomic_and_returns_the_path(
    stored: list[LLMFlow], tmp_path: Path
) -> None:
    target = tmp_path / "deep" / "report.md"
    assert fb.export(None, "md", target) == target
    assert target.read_text().startswith("# LLM flows")
    assert not list(target.parent.glob(".*partial"))


def test_progress_line_on_a_terminal() -> None:
    out = io.StringIO()
    with Progress(3, "export har", stream=out, enabled=True) as p:
        for _ in range(3):
            p.update(1)
    text = out.getvalue()
    assert "export har: 3/3 flows (100%)" in text and text.endswith("done\n")
    silent = io.StringIO()
    with Progress(3, "x", stream=silent) as p:  # small exports show nothing
        p.update(3)
    assert silent.getvalue() == ""


def test_markdown_report_matches_the_reviewed_snapshot(flows: list[LLMFlow]) -> None:
    from flowbook.io.markdown import write_markdown
    from flowbook.schema import frame_from_rows, summary_row

    picked = [f for f in flows if f.id.startswith(("0001", "0002", "0005", "0006", "0010"))]
    out = io.StringIO()
    write_markdown(picked, out, summary=frame_from_rows([summary_row(f) for f in picked]))
    # To update after a reviewed change: write out.getvalue() to SNAPSHOT and read the diff.
    assert out.getvalue() == SNAPSHOT.read_text("utf-8")

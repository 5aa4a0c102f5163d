"""History across processes, eviction, annotations, import, config, quick filters, Parquet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration


def capture(n: int, data_dir: Path, **start: object) -> list[str]:
    with FakeUpstream() as up:
        mon = fb.start(port=0, mode=f"reverse:{up.url}", data_dir=data_dir, **start)
        try:
            with httpx.Client(base_url=mon.proxy_url, timeout=10) as c:
                for i in range(n):
                    model = "gpt-4o-mini" if i % 2 else "gpt-4o"
                    c.post(
                        "/v1/chat/completions",
                        json={
                            "model": model,
                            "messages": [{"role": "user", "content": f"msg {i}"}],
                        },
                    )
            assert fb.wait_idle()
        finally:
            fb.stop()
    return list(fb.flows(sort_order="asc")["id"])


def test_evicted_flows_are_read_back_and_a_new_process_sees_history(data_dir: Path) -> None:
    fb.config.max_flows_in_memory = 2
    ids = capture(5, data_dir)
    store = fb.flow_store()
    assert sum(store.in_memory(i) for i in ids) == 2, "the LRU holds only two full flows"
    first = fb.get_flow(ids[0])  # evicted: read back from disk
    assert first.request.messages[-1].text == "msg 0"
    assert first.response is not None and first.response.text == "Echo: msg 0"
    fb.bookmark(ids[1])
    fb.tag(ids[1], "keep", "demo")
    fb.comment(ids[2], "look at this one")

    script = (
        "import flowbook as fb, json; df = fb.flows(include_history=True);"
        "b = fb.flows('is:bookmarked AND tag:keep', include_history=True);"
        "c = fb.flows('~comment look', include_history=True);"
        "print(json.dumps({'ids': list(df['id']), 'bookmarked': list(b['id']),"
        " 'commented': list(c['id']), 'text': fb.get_flow(df['id'].iloc[-1]).response.text}))"
    )
    env = {**os.environ, "FLOWBOOK_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(seen["ids"]) == sorted(ids)
    assert seen["bookmarked"] == [ids[1]]
    assert seen["commented"] == [ids[2]]
    assert seen["text"] == "Echo: msg 0"


def test_history_without_a_running_proxy_and_text_search(data_dir: Path) -> None:
    ids = capture(4, data_dir)
    from flowbook import api

    api._reset_for_tests()  # like a restarted kernel
    df = fb.flows()
    assert sorted(df["id"]) == sorted(ids), "a fresh process sees the data dir's flows"
    hits = fb.flows('content:"msg 3"', include_history=True)
    assert list(hits["preview"]) == ["msg 3"]
    assert len(fb.flows("model:=gpt-4o", include_history=True)) == 2
    total = fb.flows(page=1, page_size=3, include_history=True)
    assert len(total) == 3 and total.attrs["total"] == 4


def test_load_imports_flowbook_jsonl(data_dir: Path, tmp_path: Path) -> None:
    ids = capture(3, data_dir)
    export = tmp_path / "export.jsonl"
    from flowbook import api

    api.flow_store().disk.export_jsonl(ids, export)
    other = tmp_path / "other-data"
    api._reset_for_tests()
    os.environ["FLOWBOOK_DATA_DIR"] = str(other)
    loaded = fb.load(export)
    assert sorted(loaded) == sorted(ids)
    assert sorted(fb.flows(include_history=True)["id"]) == sorted(ids)
    assert fb.load(export) == [], "importing twice adds nothing"
    with pytest.raises(FileNotFoundError):
        fb.load(tmp_path / "nope.jsonl")


def test_config_validates_and_persists(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        fb.config.retention_days = -3
    with pytest.raises(ValueError, match="max_flows_in_memory"):
        fb.config.set("max_flows_in_memry", 10)
    fb.config.retention_days = 3
    saved = json.loads((data_dir / "config.json").read_text())
    assert saved["retention_days"] == 3
    assert "retention_days" in repr(fb.config)


def test_quick_filters_and_parquet_export(data_dir: Path, tmp_path: Path) -> None:
    capture(4, data_dir)
    qf = fb.quick_filters()
    names = [q.name for q in qf.list()]
    assert len(names) >= 6, "the reference's presets are there"
    qf.save("mini", "model:=gpt-4o-mini", group="mine")
    assert [q.name for q in fb.quick_filters().list(group="mine")] == ["mini"]
    assert len(fb.flows(fb.quick_filters().get("mini").expression)) == 2
    out = fb.export_parquet(tmp_path / "pq")
    back = pd.read_parquet(out)
    assert len(back) == 4 and set(back["model"]) == {"gpt-4o", "gpt-4o-mini"}
    assert any(p.name.startswith("date=") for p in out.iterdir())

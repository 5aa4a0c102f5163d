"""The flow table without a browser: page requests answered with Arrow, sorting and filtering
in the kernel, inline filter errors, selection, coalesced live pushes, and the incremental view
staying equal to a view built from scratch."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flowbook import api, workspace
from flowbook.model import (
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Usage,
)
from flowbook.ui.ordering import CHUNK, SortedRefs
from flowbook.ui.source import StoreSource
from flowbook.ui.table import FlowTable
from flowbook.ui.views import TableView

T0 = 1_767_225_600.0
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"]


def make_flow(i: int, *, model: str | None = None, latency_s: float | None = None,
              state: FlowState = FlowState.COMPLETED, status: int = 200,
              cost: float | None = 0.001, text: str | None = None) -> LLMFlow:  # fmt: skip
    ts = FlowTimestamps(created=T0 + i, request_sent=T0 + i)
    if state.is_final:
        ts.completed = T0 + i + (latency_s if latency_s is not None else (i * 37 % 11) / 10)
    f = LLMFlow(
        id=f"f{i:05d}",
        state=state,
        timestamps=ts,
        metadata=FlowMetadata(provider="openai", api="chat", cost_usd=cost),
        request=LLMRequest(
            model=model or MODELS[i % len(MODELS)],
            messages=[Message("user", [Part("text", text or f"question {i}")])],
        ),
    )
    f.response = LLMResponse(
        status_code=status,
        text=f"answer {i}",
        usage=Usage(input=10 + i, output=i, source="reported"),
    )
    return f


class Sent:
    """Records what the widget sends to the browser."""

    def __init__(self, table: FlowTable) -> None:
        self.messages: list[tuple[dict[str, Any], list[bytes]]] = []
        table.send = self.send  # type: ignore[method-assign]

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.messages.append((content, list(buffers or [])))

    def pages(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        return [
            (c, pa.ipc.open_stream(b[0]).read_all().to_pylist())
            for c, b in self.messages
            if c.get("type") == "page"
        ]


def request(table: FlowTable, offset: int, limit: int, req: int = 1) -> dict[str, Any]:
    table._on_custom(table, {"type": "page", "req": req, "version": table.version,
                             "offset": offset, "limit": limit}, [])  # fmt: skip
    return {}


@pytest.fixture
def store(data_dir: Path) -> Any:
    return workspace.current().store.memory


def test_page_request_answers_with_an_arrow_window(store: Any) -> None:
    for i in range(30):
        store.put(make_flow(i))
    table = FlowTable()
    sent = Sent(table)
    assert table.total == 30
    request(table, 5, 10, req=7)
    head, rows = sent.pages()[-1]
    assert head["req"] == 7 and head["offset"] == 5 and head["total"] == 30
    assert head["version"] == table.version
    # Newest first: positions 5..14 are flows 24..15.
    assert [r["id"] for r in rows] == [f"f{i:05d}" for i in range(24, 14, -1)]
    assert rows[0]["preview"] == "question 24" and rows[0]["tokens_in"] == 34
    table.close()


def test_unknown_cost_is_null_never_zero(store: Any) -> None:
    store.put(make_flow(1, cost=None))
    store.put(make_flow(2, cost=0.5))
    table = FlowTable()
    rows = {r["id"]: r for r in table.view.page(0, 10).to_pylist()}
    assert rows["f00001"]["cost_usd"] is None
    assert rows["f00002"]["cost_usd"] == 0.5
    html = table._repr_html_()
    assert "$0.0000" not in html and "$0.5000" in html
    table.close()


def test_sorting_is_done_in_the_kernel(store: Any) -> None:
    for i in range(40):
        store.put(make_flow(i))
    store.put(make_flow(40, state=FlowState.STREAMING))  # no latency yet: sorts last
    table = FlowTable()
    table.sort_by, table.sort_order = "latency_ms", "asc"
    got = table.view.page(0, 41).to_pylist()
    lat = [r["latency_ms"] for r in got]
    assert lat[-1] is None
    assert lat[:-1] == sorted(lat[:-1])
    table.sort_by, table.sort_order = "model", "desc"
    models = [r["model"] for r in table.view.page(0, 41).to_pylist()]
    assert models == sorted(models, reverse=True)
    table.close()


def test_bad_filter_is_reported_inline_and_keeps_the_rows(store: Any) -> None:
    for i in range(8):
        store.put(make_flow(i))
    table = FlowTable()
    table.filter_expr = "model:(("
    err = table.filter_error
    assert err["position"] == 6 and "model" in err["message"]
    assert "^" in err["text"] and err["expression"] == "model:(("
    assert table.total == 8  # the previous view stays
    table.filter_expr = "model:gpt-4o-mini"
    assert table.filter_error == {}
    assert table.total == 2
    assert {r["model"] for r in table.view.page(0, 10).to_pylist()} == {"gpt-4o-mini"}
    table.close()


def test_a_bad_filter_passed_at_construction_is_shown_too(store: Any) -> None:
    store.put(make_flow(1))
    table = FlowTable("latency:>>")
    assert table.filter_error and table.filter_error["position"] >= 8
    table.close()


def test_selection_gives_a_dataframe(store: Any) -> None:
    for i in range(5):
        store.put(make_flow(i))
    table = FlowTable()
    table.selected = ["f00003", "f00001"]
    df = table.df
    assert list(df["id"]) == ["f00003", "f00001"]
    assert list(df["model"]) == [MODELS[3], MODELS[1]]
    table.close()


def test_live_updates_are_coalesced_and_pushed(store: Any) -> None:
    table = FlowTable()
    sent = Sent(table)
    request(table, 0, 50)
    sent.messages.clear()
    t0 = time.monotonic()
    for i in range(1000):  # a burst of 1,000 calls
        store.put(make_flow(i))
    deadline = time.monotonic() + 15
    while table.total < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # let a last coalesced push land
    elapsed = time.monotonic() - t0
    assert table.total == 1000
    pushes = [m for m in sent.pages() if m[0].get("push")]
    assert 1 <= len(pushes) <= elapsed * 4 + 2, (len(pushes), elapsed)
    head, rows = pushes[-1]
    assert head["total"] == 1000 and head["offset"] == 0
    assert rows[0]["id"] == "f00999"  # the visible window, newest first
    table.close()


def test_streaming_row_updates_in_place(store: Any) -> None:
    live = make_flow(5, state=FlowState.STREAMING)
    store.put(live)
    store.put(make_flow(1))
    table = FlowTable()
    assert table.view.page(0, 5).to_pylist()[0]["state"] == "streaming"
    live.state = FlowState.COMPLETED
    live.timestamps.completed = T0 + 9
    store.touch(live)
    table.view.apply({live.id})
    row = table.view.page(0, 5).to_pylist()[0]
    assert row["id"] == live.id and row["state"] == "completed" and row["latency_ms"] == 4000
    table.close()


def test_open_bookmark_and_diff_actions(store: Any) -> None:
    store.put(make_flow(1))
    store.put(make_flow(2, text="another question"))
    table = FlowTable()
    payload = table.handle_action("open", {"id": "f00001"})["payload"]
    assert payload["id"] == "f00001"
    table.handle_action("bookmark", {"id": "f00002", "on": True})
    assert store.row("f00002")["bookmarked"] is True
    notes = {"id": "f00001", "bookmarked": True, "tags": ["a", "b"], "comment": "look"}
    table.handle_action("annotate", notes)
    table.handle_action("annotate", {**notes, "tags": ["b"]})  # the pane sends exact tags
    row = store.row("f00001")
    assert row["tags"] == "b" and row["bookmarked"] is True
    assert api.get_flow("f00001").annotations.comment == "look"
    with pytest.raises(ValueError, match="exactly two"):
        table.handle_action("diff", {"ids": ["f00001"]})
    with pytest.raises(KeyError):
        table.handle_action("open", {"id": "nope"})
    if table.can_diff:
        table.handle_action("diff", {"ids": ["f00001", "f00002"]})
        assert table.last_diff is not None
    table.close()


def test_static_html_fallback_escapes_captured_text(store: Any) -> None:
    store.put(make_flow(1, text="<script>alert(1)</script>"))
    table = FlowTable()
    bundle = table._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    table.close()


@pytest.mark.parametrize(
    ("filter_expr", "sort_by", "order"),
    [("", "timestamp", "desc"), ("status:200", "latency_ms", "asc"),
     ("model:gpt-4o*", "model", "asc"), ("", "preview", "desc")],
)  # fmt: skip
def test_incremental_view_equals_a_fresh_build(
    store: Any, filter_expr: str, sort_by: str, order: str
) -> None:
    rng = random.Random(4)
    flows = {}
    for i in range(300):
        flows[i] = make_flow(i, model=rng.choice(MODELS), latency_s=rng.random() * 5)
        store.put(flows[i])
    source = StoreSource()
    view = TableView(source, filter_expr, sort_by, order)
    nxt = 300
    for _round in range(25):
        changed = set()
        for _ in range(rng.randint(1, 12)):  # new flows, some with never-seen models
            model = rng.choice([*MODELS, f"new-model-{rng.randint(0, 50)}", "gpt-4o-x"])
            f = make_flow(nxt, model=model, latency_s=rng.random() * 5,
                          status=rng.choice([200, 200, 500]), text=f"q{rng.random()}")  # fmt: skip
            flows[nxt] = f
            store.put(f)
            changed.add(f.id)
            nxt += 1
        for _ in range(rng.randint(0, 6)):  # updates: keys and filter membership change
            f = flows[rng.randrange(nxt)]
            f.timestamps.completed = (f.timestamps.request_sent or 0) + rng.random() * 5
            if f.response is not None:
                f.response.status_code = rng.choice([200, 500])
            store.touch(f)
            changed.add(f.id)
        view.apply(changed)
        fresh = TableView(source, filter_expr, sort_by, order)
        assert len(view) == len(fresh)
        got = view.page(0, len(view)).to_pylist()
        want = fresh.page(0, len(fresh)).to_pylist()
        key = sort_by if sort_by != "timestamp" else "time_ms"
        key = {"latency_ms": "latency_ms", "model": "model", "preview": "preview"}.get(key, key)
        # Same rows, same order of sort keys (ties may differ in order).
        assert sorted(r["id"] for r in got) == sorted(r["id"] for r in want)
        assert [r[key] for r in got] == [r[key] for r in want]
        assert {r["id"]: r for r in got} == {r["id"]: r for r in want}


def test_sorted_refs_split_chunks_and_stay_ordered() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    keys = rng.random(3 * CHUNK)
    refs = np.arange(len(keys))
    s = SortedRefs(keys, refs.copy(), refs)
    extra = rng.random(3 * CHUNK)  # enough inserts to split chunks
    for j, k in enumerate(extra):
        s.insert(float(k), len(keys) + j, len(keys) + j)
    for j in range(0, 3 * CHUNK, 3):  # and remove a third of the originals
        assert s.remove(float(keys[j]), j, j)
    assert not s.remove(float(keys[0]), 0, 0)
    allk = np.concatenate([keys, extra])
    window = s.window(0, len(s))
    assert len(window) == len(s) == 6 * CHUNK - CHUNK
    assert np.all(np.diff(allk[window]) >= 0)
    assert list(s.window(100, 5)) == list(window[100:105])
    assert s.position(float(allk[window[777]]), int(window[777])) == 777


def test_quick_filter_chips_list_presets_and_saved_filters(store: Any) -> None:
    api.quick_filters().save("Minis", "model:gpt-4o-mini")
    table = FlowTable()
    chips = {q["name"]: q for q in table.quick_filters}
    assert chips["Recent failures"]["preset"] is True
    assert chips["Minis"] == {"name": "Minis", "expression": "model:gpt-4o-mini", "preset": False}
    api.quick_filters().save("Errors", "is:error")
    table.refresh_quick_filters()
    assert "Errors" in {q["name"] for q in table.quick_filters}
    table.close()


def test_magic_table_and_dashboard(store: Any) -> None:
    from flowbook.magics import run_line
    from flowbook.ui.dashboard import Dashboard

    store.put(make_flow(1, model="gpt-4o-mini"))
    store.put(make_flow(2, model="gpt-4o"))
    table = run_line("table model:gpt-4o-mini")
    assert isinstance(table, FlowTable) and table.total == 1
    table.close()
    dash = run_line("")
    assert isinstance(dash, Dashboard)
    assert dash.table.total == 2
    assert dash.intercept is not None and dash.table in dash.children
    dash.close()


def test_rows_arriving_above_keep_a_scrolled_reader_in_place(store: Any) -> None:
    for i in range(200):
        store.put(make_flow(i))
    table = FlowTable()
    sent = Sent(table)
    table._on_custom(table, {"type": "page", "req": 1, "version": table.version, "offset": 10,
                             "limit": 100, "anchor": 50}, [])  # fmt: skip
    _, rows = sent.pages()[-1]
    seen = rows[40]["id"]  # the row at position 50, the top of the reader's screen
    pushes_before = len([p for p in sent.pages() if p[0].get("push")])
    for i in range(200, 205):  # five newer flows: they sort above
        store.put(make_flow(i))
    deadline = time.monotonic() + 10
    while table.total < 205 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)
    # The five may arrive in one coalesced push or be split over two: the shifts add up.
    pushes = [p for p in sent.pages() if p[0].get("push")][pushes_before:]
    assert sum(p[0]["shift"] for p in pushes) == 5
    head, rows = pushes[-1]
    assert head["offset"] == 15
    assert rows[55 - 15]["id"] == seen
    table.close()

"""The live flow table in real JupyterLab (and Notebook 7): rows arrive without re-running the
cell, also while another cell is busy; a click opens the rebuilt answer; the filter box narrows
the rows and points at a bad expression; a million stored rows scroll to the last one.
Screenshots (light and dark) go to ``$FLOWBOOK_UI_ARTIFACTS`` (default
``/tmp/flowbook-ui-artifacts``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import (
    Lab,
    Notebook,
    _free_port,
    _shutdown_kernels,
    _start_session,
    _write_notebook,
)

ARTIFACTS = Path(os.environ.get("FLOWBOOK_UI_ARTIFACTS", "/tmp/flowbook-ui-artifacts"))

SETUP = """
import tempfile, threading, time
import openai
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
up = FakeUpstream().__enter__()
mon = fb.start(port=0, mode=[f"reverse:{up.url}"], data_dir=tempfile.mkdtemp())
client = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test", max_retries=0)
def calls(n, model, tag, delay=0.0, stream=False):
    def run():
        time.sleep(delay)
        for i in range(n):
            r = client.chat.completions.create(model=model, stream=stream,
                messages=[{"role": "user", "content": f"{tag} question {i}"}])
            if stream:
                for _ in r:
                    pass
    t = threading.Thread(target=run)
    t.start()
    return t
print("ready")
"""
TABLE = "t = fb.table()\nt"
FIRST = 'w = calls(3, "gpt-4o-mini", "first")'
BUSY = 'w = calls(3, "gpt-4.1", "busy", delay=1.0, stream=True)\ntime.sleep(12)\nprint("slept")'
CHECK = """
print("SELECTED", len(t.selected), len(t.df))
print("BOOKMARKED", len(fb.flows("is:bookmarked")))
print("DIFF", type(t.last_diff).__name__)
fb.stop(); up.__exit__(None, None, None)
"""

ROW = ".fbt-tr[data-id]:not([data-id='']):visible"  # pooled rows past the end are hidden


def _rows(page: Any) -> list[str]:
    return [t for t in page.locator(f"{ROW} [data-col=preview]").all_inner_texts() if t]


def _wait_rows(page: Any, pred: Callable[[list[str]], bool], timeout_s: float = 40) -> list[str]:
    for _ in range(int(timeout_s * 10)):
        rows = _rows(page)
        if pred(rows):
            return rows
        page.wait_for_timeout(100)
    raise AssertionError(f"rows never matched; last seen: {_rows(page)}")


def _set_theme(page: Any, name: str) -> None:
    """Switch JupyterLab's theme through its Settings menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=name).first.click()
    dark = "Dark" in name
    page.wait_for_function(
        "d => (document.body.dataset.jpThemeLight === 'false') === d", arg=dark, timeout=20_000
    )
    page.wait_for_timeout(500)


def _shot(el: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    el.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def test_table_live_detail_filter(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SETUP, TABLE, FIRST, BUSY, CHECK])
    page = nb.page
    nb.run_cell(0)
    assert "ready" in nb.output_text(0)
    nb.run_cell(1)
    page.locator(".fbt-table").wait_for(timeout=60_000)
    page.locator(".fbt-empty", has_text="No flows yet").wait_for(timeout=30_000)

    # Calls made from a background thread appear without re-running the table's cell.
    nb.run_cell(2)
    _wait_rows(page, lambda r: sum("first question" in x for x in r) == 3)

    # While a cell sleeps, more calls (streamed) still show up: the kernel pushes them.
    nb.run_cell(3, wait=False)
    _wait_rows(page, lambda r: sum("busy question" in x for x in r) == 3)
    prompt = nb.cell(3).locator(".jp-InputArea-prompt").inner_text().strip()
    assert prompt == "[*]:", f"the busy cell should still be running, prompt {prompt!r}"
    # A filter typed now waits for the kernel (browser-to-kernel messages queue behind the
    # running cell) and says so; it applies once the cell is done.
    box = page.locator(".fbt-filter")
    box.fill("model:gpt-4o-mini")
    box.press("Enter")
    page.locator(".fbt-waiting.fbt-show").wait_for(timeout=5_000)
    nb.wait_done(3)
    assert "slept" in nb.output_text(3)
    _wait_rows(page, lambda r: len(r) == 3 and all("first" in x for x in r))
    assert not page.locator(".fbt-waiting.fbt-show").count()
    box.fill("")
    box.press("Enter")
    _wait_rows(page, lambda r: len(r) == 6)

    # Newest first: the busy (later) calls sit above the first ones.
    rows = _rows(page)
    assert rows.index("busy question 2") < rows.index("first question 0"), rows

    # Clicking a row opens its detail in the split pane, with the rebuilt answer.
    page.locator(ROW, has_text="first question 1").first.click()
    pane = page.locator(".fbt-pane .fb-detail")
    pane.wait_for(timeout=30_000)
    pane.locator("[data-tab=response]").click()
    page.locator(".fbt-pane", has_text="first question 1").wait_for(timeout=30_000)
    assert "Echo" in page.locator(".fbt-pane").inner_text()
    assert page.locator(".fbt-tr.fbt-selected").count() == 1

    # Ctrl-click a second row: two selected, the Diff button is enabled.
    page.locator(ROW, has_text="busy question 0").first.click(modifiers=["Control"])
    page.locator(".fbt-status", has_text="2 selected").wait_for(timeout=10_000)

    table = page.locator(".fbt-table")
    shots = [_shot(table, "table-light.png")]
    _set_theme(page, "JupyterLab Dark")
    bg = page.evaluate(
        "() => getComputedStyle(document.querySelector('.fbt-table')).backgroundColor"
    )
    shots.append(_shot(table, "table-dark.png"))
    _set_theme(page, "JupyterLab Light")
    assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), f"dark theme ignored: {bg}"

    # Diff of the two selected rows, shown below the table (kernel side: fb.diff).
    page.locator(".fbt-diff").click()
    page.locator(".fb-diff").first.wait_for(timeout=60_000)
    page.locator(".fbt-action-note", has_text="Diff shown").wait_for(timeout=30_000)

    # The filter box narrows the rows (evaluated in the kernel) ...
    box.fill("model:gpt-4.1")
    box.press("Enter")
    _wait_rows(page, lambda r: len(r) == 3 and all("busy" in x for x in r))
    # ... and a bad expression is shown inline, at its position, keeping the rows.
    box.fill("model:gpt-4.1 AND (")
    box.press("Enter")
    err = page.locator(".fbt-filter-error")
    err.wait_for(timeout=30_000)
    text = err.inner_text()
    assert "column" in text and "^" in text, text
    shots.append(_shot(page.locator(".fbt-table"), "table-filter-error.png"))
    assert len(_rows(page)) == 3
    box.fill("")
    box.press("Enter")
    _wait_rows(page, lambda r: len(r) == 6)

    # Keys: Home, ↓ moves the cursor (and the selection), B bookmarks the row.
    viewport = page.locator(".fbt-viewport")
    viewport.focus()
    viewport.press("Home")
    viewport.press("ArrowDown")
    page.locator(".fbt-tr.fbt-cursor.fbt-selected[data-index='1']").wait_for(timeout=10_000)
    viewport.press("b")
    page.locator(".fbt-tr[data-index='1'] .fbt-star.fbt-on").wait_for(timeout=30_000)

    nb.run_cell(4)
    out = nb.output_text(4)
    assert "SELECTED 1 1" in out and "BOOKMARKED 1" in out, out
    assert "DIFF FlowDiff" in out, out
    errors = [m for m in nb.console if m.startswith(("pageerror", "error"))]
    assert not errors, errors
    for s in shots:
        assert s.stat().st_size > 1000


MILLION = """
import flowbook as fb
from flowbook import api, workspace
from bench.table_refresh import fill_store
fill_store(workspace.current().store.memory, 1_000_000)
t = fb.table()
print("rows", t.total)
"""

ADD = """
import threading
from flowbook.model import LLMFlow, LLMRequest
def add():
    mem = workspace.current().store.memory
    for i in range(20):
        mem.put(LLMFlow(id=f"new{i:03d}", request=LLMRequest(model="gpt-4o")))
threading.Thread(target=add).start()
"""

# The widths arrive as a widget state update, which the front end may send only after the
# kernel went idle from the sort it just did: wait for it rather than read it at once.
WIDTH = """
import time
for _ in range(100):
    if t.column_widths:
        break
    time.sleep(0.1)
print("WIDTH", t.column_widths.get("model"))
"""


def test_scroll_to_last_of_a_million(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([MILLION, "t", ADD, WIDTH])
    page = nb.page
    nb.run_cell(0)
    assert "rows 1000000" in nb.output_text(0)
    nb.run_cell(1)
    page.locator(ROW).first.wait_for(timeout=60_000)
    first = page.locator(ROW).first.get_attribute("data-id")
    assert first == "syn0000999999", first  # newest first
    viewport = page.locator(".fbt-viewport")
    height = viewport.evaluate("v => v.scrollHeight")
    assert height < 33_000_000, height  # under Chromium's cap: scroll positions are scaled
    viewport.evaluate("v => { v.scrollTop = v.scrollHeight; }")
    last = page.locator(".fbt-tr[data-id='syn0000000000']")
    last.wait_for(timeout=60_000)
    assert last.is_visible()
    assert last.get_attribute("data-index") == "999999"
    # New flows arrive above while the reader sits at the end: their rows stay in view.
    nb.run_cell(2)
    page.locator(".fbt-status", has_text="1,000,020 flows").wait_for(timeout=60_000)
    page.locator(".fbt-tr[data-id='syn0000000000'][data-index='1000019']").wait_for(timeout=30_000)
    assert page.locator(".fbt-tr[data-id='syn0000000000']").is_visible()
    # Keyboard: Home goes back to the top.
    viewport.focus()
    viewport.press("Home")
    page.locator(".fbt-tr[data-index='0'][data-id^='new']").wait_for(timeout=60_000)
    # Sorting is done by the kernel: by latency (slowest first), another flow leads.
    page.locator(".fbt-th[data-col=latency]").click()
    page.wait_for_function(
        "() => document.querySelector('.fbt-th[data-col=latency]')"
        ".getAttribute('aria-sort') !== 'none'"
    )
    page.wait_for_function(
        "() => { const r = document.querySelector(\".fbt-tr[data-index='0']\");"
        " return r && r.dataset.id && r.dataset.id !== 'syn0000999999'; }",
        timeout=60_000,
    )
    # Columns resize by dragging the header's edge; the widths are kept in the model.
    grip = page.locator(".fbt-th[data-col=model] .fbt-resize").bounding_box()
    assert grip is not None
    x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=4)
    page.mouse.move(x + 80, y, steps=4)
    page.mouse.up()
    cell = page.locator(".fbt-tr[data-index='0'] [data-col=model]").bounding_box()
    assert cell is not None and cell["width"] >= 220, cell
    _shot(page.locator(".fbt-table"), "table-million.png")
    nb.run_cell(3)
    width = int(nb.output_text(3).split("WIDTH")[1].split()[0])
    assert width >= 220, nb.output_text(3)
    errors = [m for m in nb.console if m.startswith(("pageerror", "error"))]
    assert not errors, errors


# ---- Notebook 7 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A Jupyter Notebook 7 server (``jupyter notebook``) on a free loopback port."""
    pytest.importorskip("notebook", reason="Notebook 7 is not installed (pip install notebook)")
    base = tmp_path_factory.mktemp("nb7")
    root = base / "root"
    root.mkdir()
    port, token = _free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "FLOWBOOK_DATA_DIR": str(base / "fbdata"),
    }
    log = base / "nb7.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "notebook", "--no-browser", "--allow-root",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Notebook 7 did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    server = Lab(url=url, token=token, root=root, proc=proc, log=log)
    yield server
    _shutdown_kernels(server)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_live_table_in_notebook7(notebook7: Lab, browser: Any) -> None:
    name = f"nb7_{uuid.uuid4().hex[:8]}.ipynb"
    _write_notebook(notebook7.root / name, [SETUP, TABLE, FIRST, CHECK])
    _start_session(notebook7, name)
    page = browser.new_page()
    try:
        nb = Notebook(page, 4)
        stacks: list[str] = []
        page.on("pageerror", lambda e: stacks.append(str(e.stack)))
        page.goto(f"{notebook7.url}/notebooks/{name}?token={notebook7.token}", timeout=60_000)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
            state="attached", timeout=60_000
        )
        nb.run_cell(0)
        nb.run_cell(1)
        page.locator(".fbt-table").wait_for(timeout=60_000)
        nb.run_cell(2)
        _wait_rows(page, lambda r: sum("first question" in x for x in r) == 3)
        _shot(page.locator(".fbt-table"), "table-notebook7.png")
        nb.run_cell(3)
        assert "SELECTED" in nb.output_text(3)
        # Notebook 7 itself throws once at start-up (a plugin's settings schema it does not
        # ship); only errors from elsewhere (our widget) count.
        ours = [s for s in stacks if "/static/notebook/" not in s]
        print("Notebook 7's own page errors:", [s for s in stacks if s not in ours])
        errors = [m for m in nb.console if m.startswith("error")]
        assert not ours and not errors, (ours, errors)
    finally:
        page.close()

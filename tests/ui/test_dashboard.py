"""The dashboard as a new user meets it: ``%flowmon start`` then bare ``%flowmon`` shows the
live table, charts and the intercept panel; calls appear without re-running anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.ui.test_table import ROW, _rows, _shot, _wait_rows

SETUP = """
import tempfile, threading
import openai
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
%load_ext flowbook
up = FakeUpstream().__enter__()
data = tempfile.mkdtemp()
"""
START = "%flowmon start --port 0 --mode reverse:{up.url} --data-dir {data}"
DASH = "%flowmon"
CALLS = """
client = openai.OpenAI(base_url=fb.monitor().proxy_url + "/v1", api_key="sk-test", max_retries=0)
def run():
    for i in range(4):
        client.chat.completions.create(model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"dashboard question {i}"}])
threading.Thread(target=run).start()
"""
STOP = "fb.stop(); up.__exit__(None, None, None); print('stopped')"


def test_bare_flowmon_shows_the_dashboard(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SETUP, START, DASH, CALLS, STOP])
    page = nb.page
    for i in range(3):
        nb.run_cell(i)
    page.locator(".fbt-table").wait_for(timeout=60_000)
    nb.run_cell(3)
    _wait_rows(page, lambda r: sum("dashboard question" in x for x in r) == 4)
    # Charts tab: plotly figures drawn from kernel-side aggregates.
    page.locator(".lm-TabBar-tab, .widget-tab .p-TabBar-tab", has_text="Charts").first.click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert page.locator(".js-plotly-plot").count() >= 2
    shot = _shot(page.locator(".fb-dashboard").first, "dashboard-light.png")
    # Intercept tab: the approval panel.
    page.locator(".lm-TabBar-tab, .widget-tab .p-TabBar-tab", has_text="Intercept").first.click()
    page.locator(".fb-intercept").wait_for(timeout=30_000)
    # A row opens its detail inside the dashboard's table.
    page.locator(ROW, has_text="dashboard question 2").first.click()
    page.locator(".fbt-pane .fb-detail").wait_for(timeout=30_000)
    assert len(_rows(page)) == 4
    nb.run_cell(4)
    assert "stopped" in nb.output_text(4)
    errors = [m for m in nb.console if m.startswith(("pageerror", "error"))]
    assert not errors, errors
    assert shot.stat().st_size > 1000

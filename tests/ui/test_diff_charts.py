"""The diff widget and the live charts in real JupyterLab: two calls through the proxy and the
fake upstream diff as one inserted message plus a changed one; the charts gain points while calls
arrive, without re-running their cells; no console errors. Screenshots (light and dark) go to
``$FLOWBOOK_UI_ARTIFACTS`` (default ``/tmp/flowbook-ui-artifacts``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARTIFACTS = Path(os.environ.get("FLOWBOOK_UI_ARTIFACTS", "/tmp/flowbook-ui-artifacts"))

SETUP = """
import tempfile, threading, time
import openai
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
up = FakeUpstream().__enter__()
mon = fb.start(port=0, mode=[f"reverse:{up.url}"], data_dir=tempfile.mkdtemp())
client = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test", max_retries=0)
def ask(model, messages, **params):
    client.chat.completions.create(model=model, messages=messages, **params)
    fb.wait_idle()
    return fb.flows().loc[0, "id"]
base = [
    {"role": "system", "content": "You are a terse travel agent."},
    {"role": "user", "content": "Plan a trip to Paris"},
    {"role": "assistant", "content": "Sure. When would you like to go?"},
    {"role": "user", "content": "In May, for one week"},
]
edited = [*base[:3], {"role": "user", "content": "My budget is 2000 EUR."},
          {"role": "user", "content": "In June, for one week"}]
id_a = ask("gpt-4o-mini", base)
id_b = ask("gpt-4o-mini", edited, temperature=0.7)
problems = []
def calls(models, n):
    def run():
        for i in range(n):
            for m in models:
                try:
                    for _ in client.chat.completions.create(model=m, stream=True,
                            stream_options={"include_usage": True},
                            messages=[{"role": "user", "content": f"question {i} " * (i + 1)}]):
                        pass
                except openai.APIError as exc:
                    problems.append(f"{m}: {type(exc).__name__}: {exc!r} {exc.__cause__!r}")
                time.sleep(0.05)
    t = threading.Thread(target=run)
    t.start()
    return t
print("ready", id_a, id_b)
"""
DIFF = "d = fb.diff(id_a, id_b)\nd"
LATENCY = "lat = fb.charts.latency()\nlat"
SCATTER = "sc = fb.charts.ttft_vs_tokens()\nsc"
USAGE = "usage = fb.charts.usage_over_time(freq='10s')\nusage"
ERRORS = "errs = fb.charts.errors()\nerrs"
MORE = 'w = calls(["gpt-4.1", "o4-mini", "error-429"], 4)\nw.join(120)\nprint("done", problems)'
CHECK = (
    'print("POINTS", sum(len(t.x) for t in sc.data), "BOXES", len(lat.data))\n'
    "fb.stop(); up.__exit__(None, None, None)"
)


def _set_theme(page: Any, name: str) -> None:
    """Switch JupyterLab's theme through its Settings menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=name).first.click()
    dark = "Dark" in name
    page.wait_for_function(
        "d => (document.body.dataset.jpThemeLight === 'false') === d", arg=dark, timeout=20_000
    )
    page.wait_for_timeout(800)


def _no_news(page: Any) -> None:
    """Dismiss JupyterLab's "get notified about news?" toast: it covers outputs in screenshots."""
    no = page.locator(".Toastify__toast button", has_text=re.compile(r"^No$"))
    if no.count():
        no.first.click()
        page.wait_for_timeout(300)


def _shot(el: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    el.scroll_into_view_if_needed()
    el.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _count(page: Any, cell: Any, selector: str) -> int:
    return int(cell.locator(selector).count())


def _wait_count(page: Any, cell: Any, selector: str, at_least: int, timeout_s: float = 90) -> int:
    for _ in range(int(timeout_s * 10)):
        n = _count(page, cell, selector)
        if n >= at_least:
            return n
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector}: {_count(page, cell, selector)} < {at_least}")


def test_diff_and_live_charts(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SETUP, DIFF, LATENCY, SCATTER, USAGE, ERRORS, MORE, CHECK])
    page = nb.page
    nb.run_cell(0)
    assert "ready" in nb.output_text(0)

    # The diff: the inserted message is one insertion, the edited one a word-level change.
    nb.run_cell(1)
    diff = nb.cell(1).locator(".fb-diff")
    diff.wait_for(timeout=60_000)
    inserted = diff.locator(".fb-d-row.fb-d-insert")
    assert inserted.count() == 1
    assert "My budget is 2000 EUR." in inserted.inner_text()
    assert inserted.locator(".fb-d-missing").count() == 1  # nothing on A's side
    changed = diff.locator(".fb-d-row.fb-d-change")
    assert changed.count() == 1
    assert changed.locator(".fb-d-del").all_inner_texts() == ["May"]
    assert changed.locator(".fb-d-ins").all_inner_texts() == ["June"]
    assert diff.locator(".fb-d-row.fb-d-delete").count() == 0
    params = diff.locator(".fb-d-section", has_text="Parameters").inner_text()
    assert "temperature" in params and "0.7" in params, params
    response = diff.locator(".fb-d-section", has_text="Response text")
    assert response.locator(".fb-d-ins", has_text="June").count() == 1

    # The charts, displayed before the new calls arrive.
    for i in (2, 3, 4, 5):
        nb.run_cell(i)
        nb.cell(i).locator(".js-plotly-plot").wait_for(timeout=60_000)
    lat_cell, sc_cell = nb.cell(2), nb.cell(3)
    assert _count(page, lat_cell, ".boxlayer .trace") == 1  # gpt-4o-mini only
    points_before = _count(page, sc_cell, ".scatterlayer .point")

    # Calls arrive through the proxy while a cell runs: the charts redraw on their own.
    nb.run_cell(6, wait=False)
    _wait_count(page, lat_cell, ".boxlayer .trace", 3)  # + gpt-4.1, o4-mini
    _wait_count(page, sc_cell, ".scatterlayer .point", points_before + 3)
    _wait_count(page, nb.cell(5), ".barlayer .point", 1)  # the 429s
    nb.wait_done(6, timeout_ms=180_000)
    assert "done" in nb.output_text(6)
    # 4 rounds x 2 streamed models that succeed: every one becomes a point (the 429s have no
    # tokens), the last ones with the final coalesced redraw.
    _wait_count(page, sc_cell, ".scatterlayer .point", points_before + 8, timeout_s=30)

    _no_news(page)
    shots = [_shot(diff, "diff-light.png")]
    shots += [_shot(nb.cell(i).locator(".jp-OutputArea"), f"chart{i - 1}-light.png")
              for i in (2, 3, 4, 5)]  # fmt: skip
    _set_theme(page, "JupyterLab Dark")
    try:
        bg = diff.evaluate("e => getComputedStyle(e).backgroundColor")
        tick = lat_cell.locator(".ytick text").first.evaluate("e => getComputedStyle(e).fill")
        shots.append(_shot(diff, "diff-dark.png"))
        shots += [_shot(nb.cell(i).locator(".jp-OutputArea"), f"chart{i - 1}-dark.png")
                  for i in (2, 3, 4, 5)]  # fmt: skip
    finally:
        _set_theme(page, "JupyterLab Light")
    assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), f"dark theme ignored: {bg}"
    assert tick not in ("rgb(68, 68, 68)", "rgb(42, 63, 95)"), f"chart text not themed: {tick}"

    nb.run_cell(7)
    out = nb.output_text(7)
    assert "BOXES 3" in out, out
    errors = [m for m in nb.console if m.startswith(("pageerror", "error"))]
    assert not errors, errors
    for s in shots:
        assert s.stat().st_size > 1000


CROSS = """
import tempfile
import anthropic, openai
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
up = FakeUpstream().__enter__()
mon = fb.start(port=0, mode=[f"reverse:{up.url}"], data_dir=tempfile.mkdtemp())
oa = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test", max_retries=0)
an = anthropic.Anthropic(base_url=mon.proxy_url, api_key="sk-ant-test", max_retries=0)
system = "You are a terse travel agent."
turns = [
    {"role": "user", "content": "Plan a trip to Paris"},
    {"role": "assistant", "content": "Sure. When would you like to go?"},
    {"role": "user", "content": "In May, for one week"},
]
oa.chat.completions.create(model="gpt-4o-mini",
                           messages=[{"role": "system", "content": system}, *turns])
an.messages.create(model="claude-sonnet-4-5", max_tokens=256, system=system,
                   messages=turns)
fb.wait_idle()
df = fb.flows(sort_order="asc")
x = fb.diff(df.loc[0, "id"], df.loc[1, "id"])
print("SECTIONS", x.changes.sections())
fb.stop(); up.__exit__(None, None, None)
x
"""


def test_cross_provider_diff(notebook: Callable[[list[str]], Any]) -> None:
    """Real openai and anthropic SDKs, one conversation: only provider and parameters differ."""
    nb = notebook([CROSS])
    nb.run_cell(0)
    diff = nb.cell(0).locator(".fb-diff")
    diff.wait_for(timeout=60_000)
    out = nb.output_text(0)
    assert "SECTIONS ['overview', 'params']" in out, out
    rows = diff.locator(".fb-d-row")
    assert rows.count() == 3
    assert diff.locator(".fb-d-row.fb-d-equal").count() == 3
    overview = diff.locator(".fb-d-section", has_text="Overview").inner_text()
    assert "anthropic" in overview and "messages" in overview, overview
    params = diff.locator(".fb-d-section", has_text="Parameters").inner_text()
    assert "max_tokens" in params, params
    assert "System prompt (changed)" not in diff.inner_text()
    assert "Response text (changed)" not in diff.inner_text()
    _no_news(nb.page)
    shot = _shot(diff, "diff-cross-provider-light.png")
    assert shot.stat().st_size > 1000
    errors = [m for m in nb.console if m.startswith(("pageerror", "error"))]
    assert not errors, errors

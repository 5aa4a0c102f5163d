"""The approval panel in real JupyterLab: a paused openai call shows up, is edited in the
structured editor and resumed from the browser, and upstream receives the edit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.ui.test_table import _shot

SETUP = """
import json, tempfile, threading
import openai
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
up = FakeUpstream().__enter__()
mon = fb.start(port=0, mode=[f"reverse:{up.url}"], data_dir=tempfile.mkdtemp())
fb.intercept.enable("model:gpt-4o-mini", timeout=120)
client = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test", max_retries=0)
result = {}
def call():
    try:
        result["r"] = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "original question"}])
    except Exception as exc:
        result["e"] = repr(exc)
worker = threading.Thread(target=call)
worker.start()
print("started")
"""
PANEL = "panel = fb.intercept_panel()\npanel"
CHECK = """
worker.join(60)
print("RESULT", result["r"].choices[0].message.content if "r" in result else result)
print("UPSTREAM", json.loads(up.requests[-1].body)["messages"][0]["content"])
print("PENDING", len(fb.intercept.pending()))
fb.stop(); up.__exit__(None, None, None)
"""


def test_panel_edit_and_resume(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SETUP, PANEL, CHECK])
    nb.run_cell(0)
    assert "started" in nb.output_text(0)
    nb.run_cell(1)
    page = nb.page
    item = page.locator(".fb-ip-item")
    item.wait_for(timeout=60_000)
    assert "gpt-4o-mini" in item.inner_text()
    editor = page.locator('textarea[data-path="messages.0.content"]')
    assert editor.input_value() == "original question"
    box = editor.bounding_box()
    # A textarea sized before it was laid out collapses to 2px: the text must be readable.
    assert box is not None and box["height"] >= 14, box
    editor.fill("edited in the browser")
    # Focusing the editor holds the flow: its countdown pauses and says so.
    page.locator(".fb-countdown.fb-held").first.wait_for(timeout=30_000)
    _shot(page.locator(".fb-intercept").first, "intercept-panel-editing-light.png")
    page.locator('button[data-action="resume_edited"]').click()
    page.locator(".fb-ip-empty", has_text="No paused flows").wait_for(timeout=30_000)
    nb.run_cell(2)
    out = nb.output_text(2)
    assert "UPSTREAM edited in the browser" in out, out
    assert "RESULT Echo: edited in the browser" in out, out
    assert "PENDING 0" in out
    assert not [m for m in nb.console if m.startswith("pageerror")], nb.console

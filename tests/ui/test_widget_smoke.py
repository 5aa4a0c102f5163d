"""The harness itself: a trivial anywidget renders in real JupyterLab and syncs back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SMOKE = '''
import anywidget, traitlets
class Smoke(anywidget.AnyWidget):
    _esm = """
    export default { render({ model, el }) {
      const b = document.createElement("button");
      b.className = "smoke-btn";
      b.textContent = `count ${model.get("count")}`;
      b.onclick = () => { model.set("count", model.get("count") + 1); model.save_changes(); };
      model.on("change:count", () => { b.textContent = `count ${model.get("count")}`; });
      el.append(b);
    } };
    """
    count = traitlets.Int(0).tag(sync=True)
w = Smoke()
w
'''


def test_anywidget_renders_and_syncs(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SMOKE, "print('count is', w.count)"])
    nb.run_cell(0)
    button = nb.page.locator(".smoke-btn")
    button.wait_for(timeout=60_000)
    assert button.inner_text() == "count 0"
    button.click()
    nb.page.locator(".smoke-btn", has_text="count 1").wait_for(timeout=30_000)
    nb.run_cell(1)
    assert "count is 1" in nb.output_text(1)

"""The flow detail widget in real JupyterLab: flows captured through the proxy from the fake
upstream (real openai SDK), shown with ``fb.show``. Every tab renders; notes are saved through
the store; a hostile answer renders as text or inert markup, runs nothing and fetches nothing.
Screenshots (light and dark) go to ``$FLOWBOOK_UI_ARTIFACTS`` (default
``/tmp/flowbook-ui-artifacts``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARTIFACTS = Path(os.environ.get("FLOWBOOK_UI_ARTIFACTS", "/tmp/flowbook-ui-artifacts"))
REMOTE = "flowbook-remote.invalid"
HOSTILE = (
    "Try these: <script>window.__pwned = 'script'</script> "
    f'<img src="https://{REMOTE}/onerror.png" onerror="window.__pwned = \'img\'"> '
    "[click me](javascript:window.__pwned='link') "
    f"![remote](https://{REMOTE}/remote.png) "
    "[safe](https://example.com/docs) **bold** and `code` "
    "blob: " + "QUJD" * 100
)
LIMITS = """
from flowbook.model import LLMFlow, LLMResponse
big = fb.show(LLMFlow(response=LLMResponse(status_code=200, text="word " * 40_000)), height=300)
deep = fb.show(LLMFlow(response=LLMResponse(status_code=200, text=">" * 60 + " deep")), height=300)
display(big, deep)
"""

SETUP = f"""
import json, tempfile
import openai
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
up = FakeUpstream().__enter__()
mon = fb.start(port=0, mode=[f"reverse:{{up.url}}"], data_dir=tempfile.mkdtemp())
client = openai.OpenAI(base_url=mon.proxy_url + "/v1", api_key="sk-test-abcdefghijklmnop1234",
                       max_retries=0)
ids = {{}}
stream = client.chat.completions.create(
    model="gpt-4o-mini", stream=True, extra_headers={{"x-fake-delay": "0.04"}},
    stream_options={{"include_usage": True}},
    messages=[{{"role": "system", "content": "You are terse."}},
              {{"role": "user", "content": "What is the capital of France?"}}])
print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
fb.wait_idle()
ids["plain"] = fb.flows().iloc[0]["id"]
client.chat.completions.create(model="gpt-4o-mini",
    messages=[{{"role": "user", "content": {HOSTILE!r}}}])
fb.wait_idle()
ids["evil"] = fb.flows(sort_by="timestamp", sort_order="desc").iloc[0]["id"]
assert ids["plain"] != ids["evil"]
print("ready", ids)
"""
SHOW_PLAIN = 'w = fb.show(ids["plain"])\nw'
SHOW_EVIL = 'e = fb.show(ids["evil"])\ne'
CHECK = """
ann = fb.get_flow(ids["plain"]).annotations
print("NOTES", ann.bookmarked, ann.tags, repr(ann.comment))
print("ROWTAGS", fb.flows("tag:checked")["id"].tolist() == [ids["plain"]])
fb.stop(); up.__exit__(None, None, None)
"""


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


def _shot(el: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    el.scroll_into_view_if_needed()
    el.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _dismiss_news(page: Any) -> None:
    """JupyterLab asks about its news feed in a toast that would cover the screenshots."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="No", exact=True).click(timeout=3000)
    except PlaywrightTimeout:
        return  # not asked this time
    page.wait_for_timeout(1000)  # the toast slides out


def _tab(view: Any, key: str) -> None:
    view.locator(f'.fb-d-tab[data-tab="{key}"]').click()
    view.locator(f'.fb-d-tab.fb-active[data-tab="{key}"]').wait_for(timeout=10_000)


def test_detail_tabs_notes_and_themes(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SETUP, SHOW_PLAIN, 'fb.get_flow(ids["plain"])', CHECK])
    page = nb.page
    nb.run_cell(0)
    out = nb.output_text(0)
    assert "ready" in out and "Echo: What is the capital of France?" in out, out
    nb.run_cell(1)
    view = nb.cell(1).locator(".fb-detail")
    view.wait_for(timeout=60_000)
    _dismiss_news(page)
    # Overview: the timing bar, tokens reported by the provider, the context-window fill.
    overview = view.locator(".fb-d-body")
    overview.locator(".fb-timebar .fb-seg").first.wait_for(timeout=10_000)
    text = overview.inner_text()
    assert "first token" in text and "usage_source: reported" in text, text
    assert "of 128,000 tokens" in text and "window: genai-prices" in text, text
    assert "System prompt" in text and "Parts estimated" in text
    _shot(view, "detail-overview-light.png")
    # Conversation: system and user turns, then the response as an assistant turn.
    _tab(view, "conversation")
    roles = view.locator(".fb-turn .fb-role").all_inner_texts()
    assert [r.lower() for r in roles] == ["system", "user", "assistant · response"], roles
    # Response: the answer rebuilt from the stream, rendered as Markdown.
    _tab(view, "response")
    md = view.locator(".fb-response .fb-md")
    md.wait_for(timeout=10_000)
    assert md.inner_text().strip() == "Echo: What is the capital of France?"
    _shot(view, "detail-response-light.png")
    # Stream: one row per event, with offsets, and the sparkline.
    _tab(view, "stream")
    rows = view.locator(".fb-events tbody tr")
    assert rows.count() >= 6, rows.count()
    assert view.locator(".fb-spark svg polyline").count() == 1
    assert re.match(r"^\+\d", rows.first.locator("td").nth(1).inner_text())
    _shot(view, "detail-stream-light.png")
    # Raw: headers with the API key masked, the body.
    _tab(view, "raw")
    raw = view.locator(".fb-raw").inner_text()
    assert "sk-test-abcdefghijklmnop1234" not in raw and "authorization" in raw, raw[:2000]
    assert "What is the capital of France?" in raw
    _shot(view, "detail-raw-light.png")
    # Notes: edit and save; the kernel persists them through the store.
    _tab(view, "notes")
    view.locator(".fb-n-bookmark").check()
    view.locator(".fb-n-tags").fill("checked, ui")
    view.locator(".fb-n-comment").fill("looked at it in the browser")
    view.locator('button[data-action="save-notes"]').click()
    view.locator(".fb-n-status.fb-ok", has_text="Saved.").wait_for(timeout=30_000)
    view.locator(".fb-star.fb-on").wait_for(timeout=10_000)
    _shot(view, "detail-notes-light.png")
    # Dark theme: the view follows JupyterLab's variables.
    _tab(view, "overview")
    _set_theme(page, "JupyterLab Dark")
    try:
        bg = view.evaluate("el => getComputedStyle(el).backgroundColor")
        fg = view.evaluate("el => getComputedStyle(el).color")
        _shot(view, "detail-overview-dark.png")
        _tab(view, "conversation")
        _shot(view, "detail-conversation-dark.png")
        _tab(view, "response")
        _shot(view, "detail-response-dark.png")
        _tab(view, "stream")
        _shot(view, "detail-stream-dark.png")
    finally:
        _set_theme(page, "JupyterLab Light")
    assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), f"dark theme ignored: {bg}"
    assert fg != "rgb(31, 35, 40)", f"text colour not themed: {fg}"
    # A flow in a plain cell: the static HTML summary (what nbconvert and GitHub show).
    nb.run_cell(2)
    summary = nb.cell(2).locator(".flowbook-flow")
    summary.wait_for(timeout=30_000)
    text = summary.inner_text()
    assert "Provider" in text and "Echo: What is the capital of France?" in text, text
    assert "#checked" in text, text  # the notes saved from the browser
    _shot(summary, "flow-repr-light.png")
    nb.run_cell(3)
    out = nb.output_text(3)
    assert "NOTES True ['checked', 'ui'] 'looked at it in the browser'" in out, out
    assert "ROWTAGS True" in out, out
    assert not [m for m in nb.console if m.startswith(("pageerror", "error"))], nb.console


def test_hostile_response_is_inert(notebook: Callable[[list[str]], Any]) -> None:
    nb = notebook([SETUP, SHOW_EVIL, LIMITS, "fb.stop(); up.__exit__(None, None, None)"])
    page = nb.page
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    nb.run_cell(0)
    assert "ready" in nb.output_text(0)
    nb.run_cell(1)
    view = nb.cell(1).locator(".fb-detail")
    view.wait_for(timeout=60_000)
    _dismiss_news(page)
    for tab in ("conversation", "response", "raw", "stream"):
        _tab(view, tab)
        page.wait_for_timeout(300)
    _tab(view, "response")
    md = view.locator(".fb-response .fb-md")
    md.wait_for(timeout=10_000)
    shown = md.inner_text()
    # Raw HTML is shown as text; the Markdown around it still renders.
    assert "<script>window.__pwned = 'script'</script>" in shown, shown
    assert "onerror=" in shown and md.locator("strong", has_text="bold").count() == 1
    # Nothing executable or fetching made it into the page.
    assert view.locator("script").count() == 0
    assert view.locator("[onerror], [onclick], [onload]").count() == 0
    assert view.locator('a[href^="javascript"]').count() == 0
    images = view.locator("img").evaluate_all("els => els.map(e => e.getAttribute('src') || '')")
    assert all(src.startswith("data:") for src in images), images
    # The javascript: link is inert text; the safe link opens in a new tab without an opener.
    inert = md.locator("a.fb-md-inert", has_text="click me")
    assert inert.count() == 1 and inert.get_attribute("href") is None
    safe = md.locator('a[href="https://example.com/docs"]')
    assert safe.get_attribute("rel") == "noopener noreferrer nofollow"
    assert safe.get_attribute("target") == "_blank"
    # The remote image is a placeholder naming the URL.
    assert md.locator(".fb-md-blocked", has_text=f"https://{REMOTE}/remote.png").count() == 1
    inert.click()  # clicking the inert link does nothing
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__pwned === undefined"), "captured content ran"
    assert not dialogs, dialogs
    assert not [u for u in requests if REMOTE in u], [u for u in requests if REMOTE in u]
    # A long base64 run is a chip, not a wall of characters.
    assert md.locator(".fb-chip", has_text="base64 · 300 B").count() == 1
    _shot(view, "detail-hostile-response-light.png")
    # Past the Markdown limits (size, nesting) the text is shown plain, and says why.
    nb.run_cell(2)
    views = nb.cell(2).locator(".fb-detail")
    views.nth(1).wait_for(timeout=60_000)
    notes = []
    for i in range(2):
        _tab(views.nth(i), "response")
        notes.append(views.nth(i).locator(".fb-md-plain .fb-md-note").inner_text())
    assert "200,000 characters" in notes[0] and "limit of 150,000" in notes[0], notes
    assert "nests too deeply" in notes[1], notes
    nb.run_cell(3)
    assert not [m for m in nb.console if m.startswith(("pageerror", "error"))], nb.console


RICH = """
import tempfile, anthropic
import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
up = FakeUpstream().__enter__()
mon = fb.start(port=0, mode=[f"reverse:{up.url}"], data_dir=tempfile.mkdtemp())
fb.intercept.add_rule("model:claude", "modify", temperature=0.25)
client = anthropic.Anthropic(base_url=mon.proxy_url, api_key="sk-ant-test-abcdefghijklmnop",
                             max_retries=0)
import base64, struct, zlib
def _png(w=32, h=32):  # a real PNG: a colour gradient
    rows = b"".join(b"\\x00" + bytes(c for x in range(w) for c in (x * 8, y * 8, 160))
                    for y in range(h))
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return base64.b64encode(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr)
                            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")).decode()
png = _png()
tools = [{"name": "get_weather", "description": "Current weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]
msgs = [{"role": "user", "content": [
    {"type": "text", "text": "What is the weather in Paris? Here is a picture of the sky."},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]
think = {"type": "enabled", "budget_tokens": 1024}
first = client.messages.create(model="claude-sonnet-4-5", max_tokens=2000, tools=tools,
                               messages=msgs, thinking=think, system="You are a weather agent.")
call = next(b for b in first.content if b.type == "tool_use")
msgs += [{"role": "assistant", "content": first.content},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                       "content": "18 degrees and sunny"}]}]
second = client.messages.create(model="claude-sonnet-4-5", max_tokens=2000, tools=tools,
                                messages=msgs, thinking=think, system="You are a weather agent.")
fb.wait_idle()
rid = fb.flows().iloc[0]["id"]
print("ready", second.content[-1].text)
"""


def test_agent_turn_with_tools_thinking_image_and_intercept(
    notebook: Callable[[list[str]], Any],
) -> None:
    nb = notebook([RICH, "r = fb.show(rid)\nr", "fb.stop(); up.__exit__(None, None, None)"])
    page = nb.page
    nb.run_cell(0)
    assert "ready The tool said: 18 degrees and sunny" in nb.output_text(0), nb.output_text(0)
    nb.run_cell(1)
    view = nb.cell(1).locator(".fb-detail")
    view.wait_for(timeout=60_000)
    _dismiss_news(page)
    _tab(view, "conversation")
    conv = view.locator(".fb-conversation")
    # The image is a thumbnail from its data URL; the tool call has pretty arguments.
    thumb = conv.locator("img.fb-thumb")
    assert thumb.count() == 1 and (thumb.get_attribute("src") or "").startswith("data:image/png")
    assert conv.locator(".fb-toolcall code", has_text="get_weather").count() == 1
    assert '"city": "Paris"' in conv.locator(".fb-toolcall pre").first.inner_text()
    assert "18 degrees and sunny" in conv.locator(".fb-toolresult").inner_text()
    assert conv.locator("details.fb-fold > summary", has_text="Thinking").count() >= 1
    assert conv.locator(".fb-tooldef, details.fb-fold > summary", has_text="Tools offered").count()
    _shot(view, "detail-conversation-light.png")
    # The modify rule changed the request: the Intercepted tab shows original vs modified.
    _tab(view, "intercept")
    added = view.locator(".fb-diff-add").all_inner_texts()
    assert any('"temperature": 0.25' in t for t in added), added
    _shot(view, "detail-intercepted-light.png")
    nb.run_cell(2)
    assert not [m for m in nb.console if m.startswith(("pageerror", "error"))], nb.console

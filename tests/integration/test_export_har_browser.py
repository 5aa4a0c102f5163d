"""A browser tool consumes flowbook's HAR: headless Chromium, driven by Playwright's HAR replay
(which reads entries, matches requests on method, URL and postData, and serves the recorded
status, headers and content), answers every recorded call with exactly the bytes the client
originally received, streams and gzip-labelled bodies included. (DevTools' own importer is not
driven here; this is the closest automated stand-in.)"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from flowbook.io import har
from tests.helpers.export_flows import fixture_flows

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("FLOWBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FETCH = """async ([url, body]) => {
  const r = await fetch(url, {method: "POST", body, headers: {"content-type": "application/json"}});
  return [r.status, await r.text()];
}"""


def test_chromium_replays_every_call_from_the_har(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (make chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    seen: set[tuple[str, bytes]] = set()
    flows = []
    for f in fixture_flows():  # one entry per distinct request: replay matches the first
        key = (f.request.url, f.request.body or b"")
        if key not in seen and f.response is not None and f.response.status_code == 200:
            seen.add(key)
            flows.append(f)
    assert any(f.response and f.response.headers.get("content-encoding") for f in flows)
    out = io.StringIO()
    har.write(flows, out)
    path = tmp_path / "flows.har"
    path.write_text(out.getvalue(), "utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"]
        )
        try:
            ctx = browser.new_context()
            ctx.route_from_har(str(path), not_found="abort")
            page = ctx.new_page()
            page.goto("data:text/html,<p>replay</p>")
            for flow in flows:
                assert flow.response is not None and flow.request.body is not None
                status, text = page.evaluate(FETCH, [flow.request.url, flow.request.body.decode()])
                assert status == 200
                assert text == (flow.response.body or b"").decode("utf-8"), flow.id
        finally:
            browser.close()

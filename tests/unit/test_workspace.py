"""The workspace: one session object behind fb.*, its settings wired to what they name, data-dir
switching, and the reset hook the tests use."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import flowbook as fb
from flowbook import workspace
from flowbook.fake_upstream import FakeUpstream
from flowbook.intercept import get_controller


def test_fb_delegates_to_the_one_workspace(data_dir: Path) -> None:
    assert workspace.existing() is None
    ws = workspace.current()
    assert ws.data_dir == data_dir and workspace.current() is ws
    assert fb.config is ws.config
    assert fb.flow_store() is ws.store
    assert get_controller() is ws.intercept
    assert fb.status()["data_dir"] == str(data_dir)
    workspace.reset()
    assert workspace.existing() is None
    assert workspace.current() is not ws


def test_switching_data_dirs_carries_the_intercept_controller(
    data_dir: Path, tmp_path: Path
) -> None:
    ws = workspace.current()
    fb.intercept.enable("model:gpt-4o", timeout=5)
    rule = fb.intercept.add_rule("provider:anthropic", "block")
    other = workspace.current(tmp_path / "other")
    assert other is not ws and other.data_dir == tmp_path / "other"
    assert other.intercept is ws.intercept, "breakpoint and paused flows survive the switch"
    assert other.intercept.status()["filter"] == "model:gpt-4o"
    # Rules belong to a data dir: the first one's rule stays in its file.
    saved = json.loads((data_dir / "intercept_rules.json").read_text())
    assert rule in json.dumps(saved)


def test_settings_act_on_the_store_and_the_proxy(data_dir: Path) -> None:
    ws = workspace.current()
    fb.config.max_flows_in_memory = 3
    assert ws.store.memory.max_flows_in_memory == 3
    fb.config.persist_to_file = False
    assert ws.store.persist is False
    fb.config.intercept_timeout_s = 12
    fb.config.intercept_timeout_action = "drop"
    fb.intercept.enable()
    assert (ws.intercept.breakpoint.timeout, ws.intercept.breakpoint.timeout_action) == (  # type: ignore[union-attr]
        12.0,
        "drop",
    )
    fb.intercept.disable()
    fb.config.segment_max_bytes = 2 << 20
    workspace.reset()  # segment size applies when the file store opens
    ws = workspace.current()
    assert ws.store.disk._writer.max_bytes == 2 << 20
    assert ws.store.persist is False, "read back from config.json"


def test_start_uses_listen_settings_and_intercept_enabled(data_dir: Path) -> None:
    fb.config.listen_port = 0
    fb.config.intercept_enabled = True
    fb.config.intercept_timeout_s = 7
    with FakeUpstream() as up:
        mon = fb.start(mode=f"reverse:{up.url}")
        try:
            assert mon.modes[0].port not in (0, 8080), "listen_port=0 picked a free port"
            assert mon.modes[0].host == "127.0.0.1"
            status = fb.intercept.status()
            assert status["enabled"] and status["filter"] is None and status["timeout"] == 7.0
            with pytest.raises(RuntimeError, match=r"call fb\.stop"):
                workspace.current(data_dir.parent / "elsewhere")
            fb.intercept.disable()
            with httpx.Client(base_url=mon.proxy_url, timeout=10) as c:
                c.post(
                    "/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                )
            assert fb.wait_idle()
            assert list(fb.flows()["preview"]) == ["hi"]
        finally:
            fb.stop()
    assert fb.monitor() is None

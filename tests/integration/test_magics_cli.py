"""%flowmon in a real IPython shell, and the flowbook command (demo) as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.testing.globalipapp import get_ipython

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.magics import MagicUsageError, run_line

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("flag", ["", " --own-process"], ids=["thread", "own-process"])
def test_load_ext_registers_flowmon_and_drives_the_proxy(
    data_dir: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    import IPython

    from flowbook.capture.proxy_process import ProxyProcess

    ip = get_ipython() or IPython.get_ipython()  # the test shell starts once per process
    ip.run_line_magic("load_ext", "flowbook")
    assert "flowmon" in ip.magics_manager.magics["line"]
    with FakeUpstream() as up:
        mon = ip.run_line_magic(
            "flowmon", f"start --port 0 --mode reverse:{up.url} --data-dir {data_dir}{flag}"
        )
        try:
            assert mon is fb.monitor() and mon.port > 0
            assert isinstance(mon._proxy, ProxyProcess) == bool(flag)
            status = ip.run_line_magic("flowmon", "status")
            assert status["running"] is True and status["data_dir"] == str(data_dir)
            import httpx

            httpx.post(
                f"{mon.proxy_url}/v1/chat/completions",
                timeout=10,
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "magic"}]},
            )
            fb.wait_idle()
            df = ip.run_line_magic("flowmon", "flows model:gpt-4o")
            assert list(df["preview"]) == ["magic"]
        finally:
            assert ip.run_line_magic("flowmon", "stop") is None
            assert capsys.readouterr().out.strip().endswith("flowbook stopped")
    assert fb.monitor() is None


def test_bad_magic_lines_say_how_to_fix_them() -> None:
    with pytest.raises(MagicUsageError, match="unknown command 'strat'"):
        run_line("strat")
    with pytest.raises(MagicUsageError, match="--port: invalid int value"):
        run_line("start --port eighty")
    with pytest.raises(MagicUsageError, match="one flow id"):
        run_line("show")


def test_flowbook_demo_runs_offline_and_shows_every_provider(tmp_path: Path) -> None:
    env = {**os.environ, "FLOWBOOK_DATA_DIR": str(tmp_path / "unused")}
    out = subprocess.run(
        [sys.executable, "-m", "flowbook.cli", "demo", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for provider in ("openai", "anthropic", "gemini", "kiro"):
        assert provider in out.stdout
    assert "Captured 10 flows" in out.stdout
    assert "reported" in out.stdout and "estimated" in out.stdout
    # and the flows it captured are on disk for a later process
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowbook.cli",
            "flows",
            "--data-dir",
            str(tmp_path / "demo"),
            "provider:anthropic",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    assert "2 of 2 flows" in listed.stdout

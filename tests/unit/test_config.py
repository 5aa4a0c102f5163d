"""Data dir resolution, config.json, env overrides and fb.config's validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowbook.settings import (
    Config,
    ConfigError,
    ConfigManager,
    load_config,
    resolve_data_dir,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "FLOWBOOK_DATA_DIR",
        "FLOW_MONITOR_DATA_DIR",
        "FLOWBOOK_MAX_MEMORY",
        "FLOW_MONITOR_MAX_MEMORY",
        "FLOWBOOK_RETENTION_DAYS",
        "FLOW_MONITOR_RETENTION_DAYS",
        "FLOWBOOK_AUTO_CLEANUP",
    ):
        monkeypatch.delenv(var, raising=False)


def test_data_dir_precedence_and_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".flowbook"
    monkeypatch.setenv("FLOW_MONITOR_DATA_DIR", str(tmp_path / "legacy"))
    assert resolve_data_dir() == tmp_path / "legacy"
    monkeypatch.setenv("FLOWBOOK_DATA_DIR", str(tmp_path / "fb"))
    assert resolve_data_dir() == tmp_path / "fb"
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    for name in ("home/.flowbook", "legacy", "fb", "explicit"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o700
    assert not resolve_data_dir(tmp_path / "nope", create=False).exists()


def test_defaults_and_config_json_created(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg == Config()
    assert (cfg.max_flows_in_memory, cfg.retention_days, cfg.auto_cleanup) == (1000, 7.0, True)
    assert cfg.persist_to_file is True and cfg.intercept_enabled is False
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk["max_flows_in_memory"] == 1000 and on_disk["retention_days"] == 7.0
    assert (tmp_path / "config.json").stat().st_mode & 0o077 == 0


def test_file_then_env_override(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"retention_days": 3, "max_memory_flows": 50, "future_key": [1]})
    )
    m = ConfigManager(tmp_path, env={})
    assert m.retention_days == 3.0 and m.source("retention_days") == "file"
    assert m.max_flows_in_memory == 50  # the reference's name is an alias
    env = {
        "FLOW_MONITOR_RETENTION_DAYS": "9",
        "FLOWBOOK_RETENTION_DAYS": "2.5",
        "FLOW_MONITOR_MAX_MEMORY": "20",
        "FLOWBOOK_AUTO_CLEANUP": "off",
    }
    m = ConfigManager(tmp_path, env=env)
    assert m.retention_days == 2.5 and m.source("retention_days") == "env FLOWBOOK_RETENTION_DAYS"
    assert m.max_flows_in_memory == 20 and m.source("max_flows_in_memory").endswith("MAX_MEMORY")
    assert m.auto_cleanup is False
    r = repr(m)
    assert "retention_days" in r and "env FLOWBOOK_RETENTION_DAYS" in r and "[default]" in r
    m.set("auto_cleanup", True)
    assert json.loads((tmp_path / "config.json").read_text())["future_key"] == [1]  # kept


def test_bad_file_and_env_values_warn_and_fall_back(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"retention_days": -1, "auto_cleanup": "maybe"}')
    m = ConfigManager(tmp_path, env={"FLOWBOOK_MAX_MEMORY": "lots"})
    assert m.retention_days == 7.0 and m.auto_cleanup is True and m.max_flows_in_memory == 1000
    text = " ".join(m.warnings)
    assert "retention_days must be a number >= 0.001" in text
    assert "FLOWBOOK_MAX_MEMORY" in text and "'lots'" in text
    (tmp_path / "config.json").write_text("{not json")
    assert "not valid JSON" in " ".join(ConfigManager(tmp_path, env={}).warnings)


def test_runtime_set_validates_persists_and_notifies(tmp_path: Path) -> None:
    m = ConfigManager(tmp_path, env={})
    seen: list[tuple] = []
    unsubscribe = m.on_change(lambda k, old, new: seen.append((k, old, new)))
    m.retention_days = 3
    assert m.retention_days == 3.0 and m.source("retention_days") == "runtime"
    m.set("intercept_timeout_action", "drop")
    assert seen == [("retention_days", 7.0, 3.0), ("intercept_timeout_action", "continue", "drop")]
    assert ConfigManager(tmp_path, env={}).retention_days == 3.0  # persisted
    m.retention_days = 3  # unchanged: no notification
    assert len(seen) == 2
    unsubscribe()
    m.retention_days = 4
    assert len(seen) == 2
    m.reset("retention_days")
    assert m.retention_days == 7.0 and m.source("retention_days") == "default"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_flows_in_memory", 0, "max_flows_in_memory must be an integer >= 1, not 0"),
        ("max_flows_in_memory", 2.5, "must be an integer"),
        ("max_flows_in_memory", True, "must be an integer"),
        ("auto_cleanup", "maybe", "auto_cleanup must be true or false"),
        ("intercept_timeout_action", "explode", "one of 'continue', 'drop'"),
        ("listen_port", 70000, "from 0 to 65535"),
    ],
)
def test_invalid_values_are_rejected_with_what_is_allowed(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    m = ConfigManager(tmp_path, env={})
    before = m.to_dict()
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        m.set(key, value)
    assert m.to_dict() == before


def test_unknown_key_suggests_close_match_and_lists_valid_keys(tmp_path: Path) -> None:
    m = ConfigManager(tmp_path, env={})
    with pytest.raises(ConfigError) as e:
        m.retension_days = 3
    assert "Did you mean 'retention_days'?" in str(e.value)
    assert "max_flows_in_memory" in str(e.value)
    with pytest.raises(AttributeError, match="Unknown setting"):
        _ = m.colour
    with pytest.raises(ConfigError):  # update is all-or-nothing
        m.update(retention_days=2, nonsense=1)
    assert m.retention_days == 7.0


def test_fb_config_is_the_live_manager_and_no_module_shadows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The settings module is flowbook.settings: importing it leaves `fb.config` alone.
    import flowbook as fb
    import flowbook.settings
    from flowbook import workspace

    monkeypatch.setenv("FLOWBOOK_DATA_DIR", str(tmp_path / "data"))
    workspace.reset()
    try:
        assert isinstance(fb.config, ConfigManager)
        assert fb.config is workspace.current().config
        fb.config.retention_days = 2
        assert workspace.current().config.retention_days == 2.0
        with pytest.raises(ConfigError, match="Did you mean 'retention_days'"):
            fb.config.retention_dayz = 1
        assert "retention_days" in repr(fb.config)
        assert not hasattr(flowbook.settings, "retention_days")
    finally:
        workspace.reset()

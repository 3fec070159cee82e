"""Where local state lives (mlflow_monitor.paths)."""

from __future__ import annotations

from pathlib import Path

from mlflow_monitor import paths


def test_home_follows_the_env_var_and_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_HOME, str(tmp_path / "state"))
    assert paths.monitor_home() == tmp_path / "state"
    assert (tmp_path / "state").is_dir()
    assert paths.spool_dir() == tmp_path / "state" / "spool" and paths.spool_dir().is_dir()
    assert paths.dead_letter_dir() == tmp_path / "state" / "dead_letter"


def test_home_defaults_to_the_users_home(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ENV_HOME, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.monitor_home() == Path(tmp_path) / ".mlflow_monitor"

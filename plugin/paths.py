"""Where mlflow-monitor keeps local state (spool, dead letters, audit copies)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "MLFLOW_MONITOR_HOME"


def monitor_home() -> Path:
    """``$MLFLOW_MONITOR_HOME``, else ``~/.mlflow_monitor``; created on demand."""
    home = Path(os.environ.get(ENV_HOME) or Path.home() / ".mlflow_monitor")
    home.mkdir(parents=True, exist_ok=True)
    return home


def spool_dir() -> Path:
    d = monitor_home() / "spool"
    d.mkdir(parents=True, exist_ok=True)
    return d


def dead_letter_dir() -> Path:
    d = monitor_home() / "dead_letter"
    d.mkdir(parents=True, exist_ok=True)
    return d

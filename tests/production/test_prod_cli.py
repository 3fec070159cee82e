"""``mlflow-monitor prod backfill`` (windows from a batch log) and ``prod status`` (last
windows, alerts, lag), through the real CLI entry point."""

from __future__ import annotations

import math
import time

import mlflow
import pandas as pd
from click.testing import CliRunner
from helpers.production import reference_frame, register_version

from mlflow_monitor.cli import main
from mlflow_monitor.windows import find_monitoring_run


def test_backfill_then_status_shows_windows_alerts_and_lag(tmp_path):
    name, version, _ = register_version("cli-model")
    start = (math.floor(time.time() / 300) - 3) * 300
    ok = reference_frame(1200, seed=1).assign(timestamp=start + 10.0)
    bad = reference_frame(1200, seed=2).assign(x=lambda f: f["x"] + 4, y=lambda f: f["y"] * 4,
                                               timestamp=start + 310.0)
    log = pd.concat([ok, bad], ignore_index=True)
    log["prediction"] = (log["x"] > 0).astype(int)
    log["id"] = [f"b-{i}" for i in range(len(log))]
    path = tmp_path / "scored.csv"
    log.to_csv(path, index=False)
    runner = CliRunner()
    out = runner.invoke(main, ["prod", "backfill", f"models:/{name}/{version}", str(path), "--id-column", "id"])
    assert out.exit_code == 0, out.output
    assert "backfilled 2400 rows" in out.output
    out = runner.invoke(main, ["prod", "status", name])
    assert out.exit_code == 0, out.output
    run_id = find_monitoring_run(mlflow.MlflowClient(), name, version)
    lines = out.output.splitlines()
    assert lines[0] == f"model '{name}' version {version}: monitoring run {run_id}"
    assert lines[1].startswith("lag: newest merged window ended")
    table = [ln for ln in lines if ln.startswith("2")]
    assert len(table) == 2 and all(" 1200 " in ln for ln in table)
    assert "alerts (1):" in out.output and "[drift]" in out.output


def test_bad_backfill_input_is_a_clear_error_and_logs_nothing(tmp_path):
    name, version, _ = register_version("cli-bad")
    path = tmp_path / "scored.csv"
    reference_frame(10).to_csv(path, index=False)
    out = CliRunner().invoke(main, ["prod", "backfill", f"models:/{name}/{version}", str(path)])
    assert out.exit_code != 0 and "missing column(s) ['timestamp', 'prediction']" in out.output
    assert find_monitoring_run(mlflow.MlflowClient(), name, version) is None
    out = CliRunner().invoke(main, ["prod", "status", name])
    assert out.exit_code != 0 and "has no monitoring run" in out.output
    out = CliRunner().invoke(main, ["prod", "status", name, "--since", "2w"])
    assert out.exit_code != 0 and "--since" in out.output

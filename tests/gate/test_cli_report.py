"""`mlflow-monitor report`: ad-hoc comparisons of real files."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mlflow_monitor.cli import main
from mlflow_monitor.reference import log_reference

BAD = "<img src=x onerror=alert(1)>"


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 400

    def make(shift):
        y = rng.integers(0, 2, n)
        return pd.DataFrame({"age": rng.normal(40 + shift, 5, n), BAD: rng.normal(0, 1, n),
                             "city": rng.choice(["a", "b"], n), "y": y,
                             "p": np.where(rng.random(n) < 0.9, y, 1 - y)})

    ref, cur = make(0), make(15)
    ref.to_parquet(tmp_path / "ref.parquet", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    return tmp_path, ref, cur


def _run(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def test_report_writes_html_and_prints_drift_and_performance(files):
    tmp, _, cur = files
    out = tmp / "out" / "report.html"
    res = _run("--reference", tmp / "ref.parquet", "--current", tmp / "cur.csv", "--target", "y",
               "--prediction", "p", "--output", out, "--json", tmp / "snap.json")
    assert res.exit_code == 0, res.output
    assert "Drift: 1 of 3 columns drifted (share 0.333)" in res.output
    assert "  DRIFT  age: wasserstein " in res.output  # calibrated (the default) scores by distance
    accuracy = float((cur["y"] == cur["p"]).mean())
    assert f"accuracy: {accuracy:.4f}" in res.output
    html = out.read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>") and BAD not in html
    assert json.loads((tmp / "snap.json").read_text())["metrics"]
    assert f"Report: {out}" in res.output


def test_report_with_recipe_prints_rule_results(files, tmp_path):
    tmp, _, _ = files
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: classification\ncolumns: {target: y, prediction: p}\n"
                      "current: {dataset: evaluation}\nrules:\n  - drift_share < 0.3\n"
                      "  - accuracy >= 0.5\n  - {metric: accuracy, max_drop_vs_champion: 0.01}\n"
                      "  - {no_drift_in: [city]}\n")
    res = _run("--reference", tmp / "ref.parquet", "--current", tmp / "cur.csv", "--recipe", recipe,
               "-o", tmp / "r.html")
    assert res.exit_code == 0, res.output
    assert "[FAIL] drift_share < 0.3: drift_share = 0.3333" in res.output
    assert "[PASS] accuracy >= 0.5" in res.output
    assert "[SKIP] accuracy >= champion - 0.01" in res.output
    assert "[PASS] no drift in city" in res.output


def test_report_accepts_the_run_id_of_a_logged_reference(files):
    tmp, ref, _ = files
    with mlflow.start_run() as run:
        log_reference(ref)
    res = _run("--reference", run.info.run_id, "--current", tmp / "cur.csv", "-o", tmp / "r.html")
    assert res.exit_code == 0, res.output
    assert "Drift: " in res.output and (tmp / "r.html").exists()


def test_missing_current_file_fails_with_its_path(files):
    tmp, _, _ = files
    res = _run("--reference", tmp / "ref.parquet", "--current", tmp / "nope.csv", "-o", tmp / "r.html")
    assert res.exit_code != 0
    assert f"current: cannot read data from '{tmp / 'nope.csv'}': no such file or directory" in res.output
    assert not (tmp / "r.html").exists()


def test_unknown_target_column_fails_before_writing(files):
    tmp, _, _ = files
    res = _run("--reference", tmp / "ref.parquet", "--current", tmp / "cur.csv", "--target", "label",
               "--task", "classification", "-o", tmp / "r.html")
    assert res.exit_code != 0
    assert "target column 'label' is not in the reference data" in res.output
    assert not (tmp / "r.html").exists()


def test_invalid_recipe_fails_with_yaml_paths(files, tmp_path):
    tmp, _, _ = files
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("task: drift\ncurrent: x.csv\nrules: [{metric: drift_share, op: '<', threshold: high}]\n")
    res = _run("--reference", tmp / "ref.parquet", "--current", tmp / "cur.csv", "--recipe", recipe)
    assert res.exit_code != 0
    assert "rules[0].threshold: expected a number, got 'high'" in res.output

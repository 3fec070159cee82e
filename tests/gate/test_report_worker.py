"""The deferred Evidently report: written after the verdict, never lost, never silent when
it fails; and repeated checks of one version form a time series in new folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from mlflow_monitor.cli import main
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.recorder import CHECK_METRIC
from mlflow_monitor.gate.report_job import RUN_REPORT_STATUS
from mlflow_monitor.gate.report_worker import failed_dir, pending_dir, pending_reports, wait_for_reports
from helpers.gate import breast_cancer_frames, drifted, recipe_yaml, train_version, write_current

MODEL = "deferred"


@pytest.fixture
def version():
    return train_version(mlflow.MlflowClient(), MODEL)


def _folders(client, run_id):
    return sorted(a.path for a in client.list_artifacts(run_id, T.ARTIFACT_ROOT))


def test_two_checks_make_two_folders_and_two_metric_points_at_increasing_steps(version, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_yaml(write_current(tmp_path, breast_cancer_frames()[1])))
    client = mlflow.MlflowClient()

    for _ in range(2):
        result = CliRunner().invoke(main, ["check", MODEL, version, "--recipe", str(recipe)])
        assert result.exit_code == 0, result.output

    run_id = client.get_model_version(MODEL, version).run_id
    folders = _folders(client, run_id)
    assert len(folders) == 2
    for folder in folders:  # each kept its own files
        names = {Path(a.path).name for a in client.list_artifacts(run_id, folder)}
        assert {"summary.json", "report.html", "snapshot.json"} <= names
    history = client.get_metric_history(run_id, "monitor/drift_share")
    assert [m.step for m in history] == [1, 2]
    assert [m.step for m in client.get_metric_history(run_id, CHECK_METRIC)] == [1, 2]
    assert not pending_reports()  # both built: no record left


def test_check_json_opens_with_the_verdict_and_reports_the_built_report(version, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_yaml(write_current(tmp_path, drifted(breast_cancer_frames()[1]))))

    result = CliRunner().invoke(main, ["check", MODEL, version, "--recipe", str(recipe), "--json"])

    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert list(summary)[:2] == ["verdict", "allowed"] and summary["verdict"] == "BLOCKED"
    assert summary["report_status"] == "ready"
    assert "drift_share < 0.3: actual 1" in summary["reason"]
    assert all("threshold" in c and "method" in c for c in summary["drift"]["columns"])
    assert "building the Evidently report" in result.stderr


def _promote_in_a_subprocess(tmp_path, version, *, exit_wait):
    """``set_registered_model_alias`` through ``monitor:`` in a short-lived client process."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow.get_tracking_uri(),
               MLFLOW_REGISTRY_URI="monitor:" + mlflow.get_registry_uri(),
               MLFLOW_MONITOR_REPORT_EXIT_WAIT=str(exit_wait))
    script = textwrap.dedent(f"""
        import mlflow
        mlflow.MlflowClient().set_registered_model_alias({MODEL!r}, "champion", {version!r})
        print("promoted")
    """)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "promoted" in done.stdout, done.stderr[-3000:]
    return done


def _set_recipe(tmp_path, frame):
    current = write_current(tmp_path, frame)
    mlflow.MlflowClient().set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(current))
    return current


@pytest.mark.slow
def test_short_lived_client_waits_for_its_report_at_exit(version, tmp_path):
    _set_recipe(tmp_path, breast_cancer_frames()[1])

    _promote_in_a_subprocess(tmp_path, version, exit_wait=120)

    mv = mlflow.MlflowClient().get_model_version(MODEL, version)
    assert mv.aliases == ["champion"] and mv.tags[T.VERDICT] == T.PASSED
    assert mv.tags[T.REPORT_STATUS] == "ready"
    html = mlflow.artifacts.load_text(mv.tags[T.REPORT_HTML])
    assert "<html" in html.lower() and "mlflow-monitor gate: PASSED" in html
    assert not pending_reports()


@pytest.mark.slow
def test_report_left_pending_at_exit_is_completed_by_report_pending(version, tmp_path):
    _set_recipe(tmp_path, breast_cancer_frames()[1])

    done = _promote_in_a_subprocess(tmp_path, version, exit_wait=0)

    assert "still being built at exit" in done.stderr
    mv = mlflow.MlflowClient().get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.PASSED and mv.tags[T.REPORT_STATUS] == "pending"
    [record] = pending_reports()
    assert record["folder"] in mv.tags[T.REPORT] and record["model_name"] == MODEL
    assert oct(os.stat(pending_dir()).st_mode & 0o777) == "0o700"

    result = CliRunner().invoke(main, ["report", "--pending"])

    assert result.exit_code == 0, result.output
    assert f"built: model '{MODEL}' version {version}" in result.stdout
    mv = mlflow.MlflowClient().get_model_version(MODEL, version)
    assert mv.tags[T.REPORT_STATUS] == "ready"
    html = mlflow.artifacts.load_text(mv.tags[T.REPORT_HTML])
    assert "mlflow-monitor gate: PASSED" in html  # the verdict header, from the record
    assert not pending_reports()


@pytest.mark.slow
def test_report_that_fails_is_recorded_on_version_run_and_as_a_dead_letter(version, tmp_path):
    current = _set_recipe(tmp_path, breast_cancer_frames()[1])
    _promote_in_a_subprocess(tmp_path, version, exit_wait=0)
    current.unlink()  # the report, resumed, can no longer load its current data

    result = CliRunner().invoke(main, ["report", "--pending"])

    assert result.exit_code == 1
    assert "FAILED: model" in result.stdout
    mv = mlflow.MlflowClient().get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.PASSED and mv.aliases == ["champion"]  # the verdict stands
    assert mv.tags[T.REPORT_STATUS] == "failed"
    assert "current.parquet" in mv.tags[T.REPORT_ERROR] or "Error" in mv.tags[T.REPORT_ERROR]
    run = mlflow.MlflowClient().get_run(mv.run_id)
    assert run.data.tags[RUN_REPORT_STATUS].startswith("failed: ")
    folder = mv.tags[T.REPORT].split(f"runs:/{mv.run_id}/", 1)[1]
    text = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{folder}/report_error.txt")
    assert text.strip() == mv.tags[T.REPORT_ERROR]
    [dead] = list(failed_dir().glob("*.json"))
    assert json.loads(dead.read_text())["error"] == mv.tags[T.REPORT_ERROR]
    assert not pending_reports()


def test_later_decision_owns_the_version_tags_of_an_earlier_report(version, tmp_path):
    """A report built after a newer decision on the same version does not relabel it."""
    client = mlflow.MlflowClient(registry_uri="monitor:" + mlflow.get_registry_uri())
    _set_recipe(tmp_path, breast_cancer_frames()[1])
    client.set_registered_model_alias(MODEL, "champion", version)
    client.set_registered_model_alias(MODEL, "champion", version)  # a second decision, new folder
    assert wait_for_reports(180)

    mv = client.get_model_version(MODEL, version)
    folders = _folders(client, mv.run_id)
    assert len(folders) == 2 and mv.tags[T.REPORT].endswith(folders[-1])
    assert mv.tags[T.REPORT_STATUS] == "ready" and mv.tags[T.REPORT_HTML].startswith(mv.tags[T.REPORT])


@pytest.mark.slow
def test_next_gated_promotion_completes_a_report_an_ended_process_left_pending(version, tmp_path):
    _set_recipe(tmp_path, breast_cancer_frames()[1])
    _promote_in_a_subprocess(tmp_path, version, exit_wait=0)
    [record] = pending_reports()
    client = mlflow.MlflowClient(registry_uri="monitor:" + mlflow.get_registry_uri())

    client.set_registered_model_alias(MODEL, "champion", version)  # this process's first gate call
    assert wait_for_reports(240)

    run_id = client.get_model_version(MODEL, version).run_id
    for folder in _folders(client, run_id):  # the orphan's folder and this call's, both built
        assert "report.html" in {Path(a.path).name for a in client.list_artifacts(run_id, folder)}
    assert record["folder"] in _folders(client, run_id)
    assert not pending_reports()


def test_pending_record_redacts_uris_and_round_trips():
    from mlflow_monitor.gate.report_job import ReportJob

    job = ReportJob(job_id="f-r", model_name="m", version="3", run_id="r" * 32, folder="mlflow_monitor/gate/f",
                    recipe='current:\n  path: "s3://alice:hunter2secret@bucket/cur.parquet"\n',
                    verdict={"verdict": "PASSED"}, version_tags=True, created="2026-01-01T00:00:00Z",
                    registry_uri="postgresql://mlflow:dbpass123@db/mlflow",
                    tracking_uri="https://bob:tok3n@mlflow.example")
    record = job.to_record()

    text = json.dumps(record)
    assert "hunter2secret" not in text and "dbpass123" not in text and "tok3n" not in text
    back = ReportJob.from_record(record)
    assert (back.model_name, back.version, back.folder, back.verdict) == ("m", "3", job.folder, job.verdict)
    with pytest.raises(ValueError, match="lacks run_id"):
        ReportJob.from_record({**record, "run_id": ""})

"""The gate's production evidence: ``current: {production: ...}`` is the champion's
captured traffic, owned by the monitor: drifted traffic blocks, healthy traffic passes,
artifacts the promoter logs into the candidate's run change nothing, and too little
traffic is an error the verdict names (following ``on_error``)."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow.exceptions import MlflowException

import mlflow_monitor
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.data import log_current
from mlflow_monitor.gate.evidence import OWNED
from mlflow_monitor.recipes import load_recipe
from helpers.gate import breast_cancer_frames, drifted, gated_client, reference_only_version

MODEL = "prod-evidence"


def _recipe(min_rows: int = 100, on_error: str = "block") -> str:
    return ("task: drift\ncurrent: {production: {window: 1d, min_rows: %d}}\nrules: [drift_share < 0.3]\n"
            "presets: [DataDriftPreset]\nreport: {sample_size: 100}\non_error: %s\n" % (min_rows, on_error))


def _current_source(mv) -> dict:
    folder = mv.tags[T.REPORT].split(f"runs:/{mv.run_id}/", 1)[1]
    summary = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{folder}/summary.json")
    return next(s for s in summary["evidence"]["sources"] if s["input"] == "current data")


def _champion_with_traffic(client, traffic) -> str:
    champion = reference_only_version(client, MODEL)
    client.set_registered_model_alias(MODEL, "champion", champion)  # no recipe yet: not gated
    features = traffic.drop(columns=["target"])
    mlflow_monitor.log_predictions(features, traffic["target"], model_uri=f"models:/{MODEL}@champion",
                                   timestamps=time.time() - 600, window="5m")
    return champion


def test_recipe_production_settings_are_validated():
    with pytest.raises(ValueError, match="expected exactly one of 'path', 'dataset' or 'production'"):
        load_recipe({"task": "drift", "current": {"path": "/x.csv", "production": {}}})
    with pytest.raises(ValueError, match="max_rows .* must be at least min_rows"):
        load_recipe({"task": "drift", "current": {"production": {"min_rows": 10, "max_rows": 5}}})
    assert load_recipe({"task": "drift", "current": {"production": {}}}).current.production.window == "7d"


@pytest.mark.slow  # several gated promotions against real windows
def test_drifted_champion_traffic_blocks_and_the_candidates_own_artifacts_cannot_fake_it():
    client = gated_client()
    _, holdout = breast_cancer_frames()
    _champion_with_traffic(client, drifted(holdout))
    candidate = reference_only_version(client, MODEL)
    run_id = client.get_model_version(MODEL, candidate).run_id
    # the promoter (EDIT on its own run) logs flattering data and fake windows there
    log_current(holdout, context="evaluation", run_id=run_id)
    with mlflow.start_run(run_id=run_id):  # (tagging the run as a monitoring run: see the forgery test below)
        mlflow.log_dict({"fake": True}, "mlflow_monitor/prod/windows/2026-01-01/x/summary.json")
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe())
    with pytest.raises(MlflowException, match="BLOCKED") as info:
        client.set_registered_model_alias(MODEL, "champion", candidate)
    mv = client.get_model_version(MODEL, candidate)
    assert mv.tags.get(T.VERDICT) == T.BLOCKED, info.value.message
    assert "drift_share" in mv.tags[T.REASON]
    assert _current_source(mv)["owner"] == OWNED


@pytest.mark.slow
def test_healthy_champion_traffic_passes_with_owned_current_data():
    client = gated_client()
    _, holdout = breast_cancer_frames()
    _champion_with_traffic(client, holdout)
    candidate = reference_only_version(client, MODEL)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe())
    client.set_registered_model_alias(MODEL, "champion", candidate)
    mv = client.get_model_version(MODEL, candidate)
    assert mv.tags[T.VERDICT] == T.PASSED
    current = _current_source(mv)
    assert current["owner"] == OWNED and "captured by the monitor" in current["origin"]


@pytest.mark.slow
def test_too_little_traffic_says_so_and_follows_on_error():
    client = gated_client()
    _, holdout = breast_cancer_frames()
    _champion_with_traffic(client, holdout)  # 169 rows
    candidate = reference_only_version(client, MODEL)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe(min_rows=1000))
    with pytest.raises(MlflowException) as info:
        client.set_registered_model_alias(MODEL, "champion", candidate)
    assert "too little production traffic" in info.value.message and "at least 1000" in info.value.message
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe(min_rows=1000, on_error="allow"))
    client.set_registered_model_alias(MODEL, "champion", candidate)
    assert client.get_model_version(MODEL, candidate).tags[T.VERDICT] == T.ERROR_ALLOWED


@pytest.mark.slow
def test_a_forged_second_monitoring_run_changes_nothing_once_the_version_is_linked():
    """Capture links the champion to its run through the gate's own path
    (``gate/prod_run_link.py``), so a forged older run carrying the run tag is ignored."""
    client = gated_client()
    _, holdout = breast_cancer_frames()
    champion = _champion_with_traffic(client, holdout)
    candidate = reference_only_version(client, MODEL)
    mv = client.get_model_version(MODEL, champion)
    real = mv.tags["mlflow_monitor.prod.run_id"]
    experiment = client.get_run(mv.run_id).info.experiment_id
    forged = client.create_run(experiment, start_time=1, tags={"mlflow_monitor.prod": f"{MODEL}/{champion}"})
    with pytest.raises(MlflowException, match="the first link stands"):
        client.set_model_version_tag(MODEL, champion, "mlflow_monitor.prod.run_id", forged.info.run_id)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe())
    client.set_registered_model_alias(MODEL, "champion", candidate)
    mv = client.get_model_version(MODEL, candidate)
    assert mv.tags[T.VERDICT] == T.PASSED
    assert _current_source(mv)["owner"] == OWNED
    assert client.get_model_version(MODEL, champion).tags["mlflow_monitor.prod.run_id"] == real


@pytest.mark.slow
def test_an_unlinked_version_with_a_second_tagged_run_is_refused_not_trusted():
    """A version without the link (linked before the gate's path existed, or refused):
    runs carry its run tag, and the gate takes none of them as evidence."""
    import mlflow

    from mlflow_monitor.gate.registry_store import inner_uri_of

    client = gated_client()
    _, holdout = breast_cancer_frames()
    champion = _champion_with_traffic(client, holdout)
    candidate = reference_only_version(client, MODEL)
    inner = mlflow.MlflowClient(registry_uri=inner_uri_of(mlflow.get_registry_uri()))
    inner.delete_model_version_tag(MODEL, champion, "mlflow_monitor.prod.run_id")  # bypasses the gate
    mv = client.get_model_version(MODEL, champion)
    assert "mlflow_monitor.prod.run_id" not in mv.tags
    experiment = client.get_run(mv.run_id).info.experiment_id
    client.create_run(experiment, start_time=1, tags={"mlflow_monitor.prod": f"{MODEL}/{champion}"})  # forged, older
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe())
    with pytest.raises(MlflowException, match="no mlflow_monitor.prod.run_id link naming one"):
        client.set_registered_model_alias(MODEL, "champion", candidate)


SECRET = "evidence-key-for-tests-0123456789abcdef"


def _overwrite_window_rows(client, run_id, frame) -> int:
    """Every recent merged window's rows replaced by an editor's (``forge_window_rows``).
    Returns the windows changed."""
    from helpers.production import forge_window_rows
    from mlflow_monitor.windows.stored import list_windows

    windows = list_windows(client, run_id, since=time.time() - 86_400, until=time.time() + 1)
    for window in windows:
        forge_window_rows(client, run_id, window, frame)
    return len(windows)


@pytest.mark.slow
def test_with_the_evidence_key_rows_an_editor_writes_into_the_monitoring_run_are_not_evidence(monkeypatch):
    """The attack the key closes: drifted champion traffic, then an editor of the monitoring
    run's experiment overwrites the merged window rows with flattering ones. A gate with the
    key ignores them (the verdict names them) and blocks on the real traffic; a gate without
    it is fooled (which is why ``require_signed`` exists)."""
    monkeypatch.setenv("MLFLOW_MONITOR_EVIDENCE_KEY", SECRET)
    client = gated_client()
    _, holdout = breast_cancer_frames()
    champion = _champion_with_traffic(client, drifted(holdout))
    monitoring_run = client.get_model_version(MODEL, champion).tags["mlflow_monitor.prod.run_id"]
    assert _overwrite_window_rows(client, monitoring_run, holdout.drop(columns=["target"])) == 1
    candidate = reference_only_version(client, MODEL)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe())
    with pytest.raises(MlflowException, match="BLOCKED"):
        client.set_registered_model_alias(MODEL, "champion", candidate)
    mv = client.get_model_version(MODEL, candidate)
    assert mv.tags[T.VERDICT] == T.BLOCKED and "drift_share" in mv.tags[T.REASON]
    assert "only what the monitor signed" in _current_source(mv)["origin"]
    # the same tampered run, read by a gate without the key: the flattering rows pass
    monkeypatch.delenv("MLFLOW_MONITOR_EVIDENCE_KEY")
    second = reference_only_version(client, MODEL)
    client.set_registered_model_alias(MODEL, "champion", second)
    mv = client.get_model_version(MODEL, second)
    assert mv.tags[T.VERDICT] == T.PASSED and "unsigned" in _current_source(mv)["origin"]


@pytest.mark.slow
def test_require_signed_refuses_a_gate_without_the_key_and_unsigned_windows_block_even_with_on_error_allow(
        monkeypatch):
    """Untrustworthy evidence is a failed rule, not an error: ``on_error: allow`` would
    otherwise let an editor force a pass by spoiling the signatures."""
    monkeypatch.delenv("MLFLOW_MONITOR_EVIDENCE_KEY", raising=False)
    client = gated_client()
    _, holdout = breast_cancer_frames()
    _champion_with_traffic(client, holdout)  # captured without a key: unsigned windows
    candidate = reference_only_version(client, MODEL)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe(on_error="allow").replace(
        "min_rows: 100}", "min_rows: 100, require_signed: true}"))
    with pytest.raises(MlflowException, match="BLOCKED") as info:
        client.set_registered_model_alias(MODEL, "champion", candidate)
    assert "evidence == signed failed" in info.value.message
    assert "require_signed is true, but the gate has no evidence key" in info.value.message
    assert client.get_model_version(MODEL, candidate).tags[T.VERDICT] == T.BLOCKED
    # the key on the gate now, but the windows were written without it: none of them is evidence
    monkeypatch.setenv("MLFLOW_MONITOR_EVIDENCE_KEY", SECRET)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe(on_error="allow"))
    with pytest.raises(MlflowException, match="BLOCKED") as info:
        client.set_registered_model_alias(MODEL, "champion", candidate)
    assert "0 captured signed rows" in info.value.message
    assert "without a valid evidence signature were ignored" in info.value.message
    assert client.get_model_version(MODEL, candidate).tags[T.VERDICT] == T.BLOCKED
    # too little signed traffic and nothing failed (an editor deleted windows, say): an error
    # that on_error may allow, unless the recipe requires signatures
    from mlflow_monitor.windows.stored import PROD_RUN_TAG, list_windows
    from mlflow_monitor.mlflow_compat import delete_run_artifact

    run_id = client.get_model_version(MODEL, client.get_model_version_by_alias(MODEL, "champion").version
                                      ).tags[PROD_RUN_TAG]
    delete_run_artifact(client, run_id, "mlflow_monitor/prod")
    assert not list_windows(client, run_id, since=time.time() - 86_400, until=time.time() + 1)
    client.set_registered_model_alias(MODEL, "champion", candidate)
    assert client.get_model_version(MODEL, candidate).tags[T.VERDICT] == T.ERROR_ALLOWED
    other = reference_only_version(client, MODEL)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe(on_error="allow").replace(
        "min_rows: 100}", "min_rows: 100, require_signed: true}"))
    with pytest.raises(MlflowException, match="evidence == signed failed"):
        client.set_registered_model_alias(MODEL, "champion", other)

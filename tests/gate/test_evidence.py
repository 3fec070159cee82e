"""Evidence provenance: every verdict says where its inputs came from and whether the
promoter could have written them; ``evidence: {require: owned}`` blocks on self-reported."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from mlflow_monitor.events import Verdict
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.data import log_current
from mlflow_monitor.gate.evidence import EVIDENCE_TAG, OWNED, SELF_REPORTED, evidence_of
from mlflow_monitor.gate.report_worker import wait_for_reports
from mlflow_monitor.integrations.slack.renderer import MessageRenderer
from mlflow_monitor.recipes import load_recipe
from helpers.gate import FEATURES, breast_cancer_frames, gated_client, train_version, write_current

MODEL = "evidence-model"


def _recipe_text(current: str, *, extra: str = "", rules: str = "[accuracy >= 0.99]") -> str:
    return (f"task: classification\ncolumns: {{target: target}}\ncurrent: {current}\n"
            f"presets: [DataDriftPreset]\nrules: {rules}\nreport: {{sample_size: 100}}\n{extra}")


# -- what counts as owned ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["classification", "regression", "drift"])
def test_builtin_recipes_read_self_reported_current_data(name):
    ev = evidence_of(load_recipe(name), "run123", labels="target" if name != "drift" else None)

    assert ev.level == SELF_REPORTED
    current = next(s for s in ev.sources if s.input == "current data")
    assert current.owner == SELF_REPORTED and "dataset 'evaluation' logged on the candidate's run run123" in current.origin


def test_path_into_the_candidates_run_is_self_reported_and_a_pinned_uri_is_owned():
    in_run = load_recipe({"task": "drift", "current": "runs:/{run_id}/eval.parquet"})
    pinned = load_recipe({"task": "drift", "current": "s3://owner-bucket/eval.parquet",
                          "reference": {"run_id": "ref-run"}})

    assert evidence_of(in_run, "r1").level == SELF_REPORTED
    ev = evidence_of(pinned, "r1")
    assert ev.level == OWNED and ev.summary() == OWNED
    assert [s.input for s in ev.sources] == ["reference", "current data"]


def test_reference_from_the_candidates_run_is_self_reported():
    recipe = load_recipe({"task": "drift", "current": "s3://owner-bucket/eval.parquet"})

    ev = evidence_of(recipe, "r1")

    assert ev.summary() == "self-reported: reference (logged on the candidate's run r1)"


def test_require_must_be_any_or_owned():
    with pytest.raises(ValueError, match="evidence.require: expected 'any' or 'owned', got 'yes'"):
        load_recipe({"task": "drift", "current": "/x.parquet", "evidence": {"require": "yes"}})


# -- real promotions -----------------------------------------------------------------------
def _fabricated_labels_version(client):
    """A version whose run logs evaluation data labelled with the model's own predictions."""
    version = train_version(client, MODEL)
    mv = client.get_model_version(MODEL, version)
    _, holdout = breast_cancer_frames()
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
    fabricated = holdout.assign(target=model.predict(holdout[FEATURES]))
    log_current(fabricated, context="evaluation", run_id=mv.run_id)
    return version, mv


@pytest.mark.slow  # trains and scores a real model
def test_labels_equal_to_own_predictions_pass_but_are_labelled_self_reported():
    client = gated_client()
    version, mv = _fabricated_labels_version(client)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe_text("{dataset: evaluation}"))

    client.set_registered_model_alias(MODEL, "champion", version)

    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.PASSED
    assert mv.tags[EVIDENCE_TAG] == SELF_REPORTED
    first_line = mv.description.splitlines()[0]
    assert first_line.startswith("PASSED (mlflow-monitor gate) for alias:champion")
    assert first_line.endswith("evidence self-reported")
    assert "evidence: self\\-reported: reference" in mv.description
    folder = mv.tags[T.REPORT].split(f"runs:/{mv.run_id}/", 1)[1]
    summary = json.loads(mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{folder}/summary.json"))
    assert summary["evidence"]["level"] == SELF_REPORTED
    owners = {s["input"]: s["owner"] for s in summary["evidence"]["sources"]}
    assert owners == {"reference": SELF_REPORTED, "current data": SELF_REPORTED,
                      "labels": SELF_REPORTED, "predictions": OWNED}
    assert wait_for_reports(180)  # the report is built after the call returns
    html = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{folder}/report.html")
    assert 'id="mlflow-monitor-evidence"' in html and "Evidence: self-reported" in html


@pytest.mark.slow  # trains a real model
def test_require_owned_blocks_self_reported_labels_even_with_on_error_allow():
    client = gated_client()
    version, _ = _fabricated_labels_version(client)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe_text(
        "{dataset: evaluation}", extra="evidence: {require: owned}\non_error: allow\n"))

    with pytest.raises(MlflowException) as info:
        client.set_registered_model_alias(MODEL, "champion", version)

    first = info.value.message.splitlines()[0]
    assert first == (f"mlflow-monitor gate BLOCKED v{version} -> alias:champion: evidence == owned failed; "
                     "details on the version page")
    assert "the recipe requires owned evidence, but reference, current data, labels are self-reported" \
        in info.value.message
    assert client.get_registered_model(MODEL).aliases == {}
    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.BLOCKED and mv.tags[EVIDENCE_TAG] == SELF_REPORTED


@pytest.mark.slow  # trains a real model
def test_pinned_current_uri_and_reference_run_make_the_verdict_owned(tmp_path):
    import mlflow_monitor

    client = gated_client()
    version = train_version(client, MODEL)
    train, holdout = breast_cancer_frames()
    with mlflow.start_run() as ref_run:  # the policy owner's reference
        mlflow_monitor.log_reference(train, target="target", task="classification")
    path = write_current(tmp_path, holdout)
    client.set_registered_model_tag(MODEL, T.RECIPE, _recipe_text(
        f'"{path}"', rules="[drift_share < 0.5, accuracy >= 0.8]",
        extra=f"reference: {{run_id: {ref_run.info.run_id}}}\nevidence: {{require: owned}}\n"))

    client.set_registered_model_alias(MODEL, "champion", version)

    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.PASSED and mv.tags[EVIDENCE_TAG] == OWNED
    assert mv.description.splitlines()[0].endswith("evidence owned")


# -- Slack -------------------------------------------------------------------------------------
def _text_of(blocks) -> str:
    return json.dumps(blocks)


def test_slack_verdict_on_self_reported_evidence_is_labelled():
    v = Verdict(model_name="m", version="3", target="alias:champion", passed=True,
                evidence="self-reported: current data (dataset 'evaluation' logged on the candidate's run r1)")

    msg = MessageRenderer().verdict(v)

    assert "Evidence is self-reported: current data" in _text_of(msg.blocks)
    assert msg.text.endswith("[self-reported evidence]")


def test_slack_verdict_on_owned_evidence_has_no_label():
    msg = MessageRenderer().verdict(Verdict(model_name="m", version="3", target="alias:champion",
                                            passed=True, evidence=OWNED))

    assert "self-reported" not in _text_of(msg.blocks) and "self-reported" not in msg.text

"""Champion comparison: the holder of the target is scored on the same current data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from mlflow_monitor.gate import tags as T
from helpers.gate import breast_cancer_frames, gated_client, recipe_yaml, train_version, write_current

MODEL = "champ"
RULES = ["drift_share < 0.5", "{metric: accuracy, max_drop_vs_champion: 0.01}"]


def _noisy_labels_frame():
    train, _ = breast_cancer_frames()
    rng = np.random.default_rng(1)
    flip = rng.random(len(train)) < 0.35
    noisy = train.copy()
    noisy.loc[flip, "target"] = 1 - noisy.loc[flip, "target"]
    return noisy


def test_challenger_blocked_when_worse_than_champion_on_same_data(tmp_path):
    client = gated_client()
    good = train_version(client, MODEL)
    weak = train_version(client, MODEL, frame=_noisy_labels_frame(), c_reg=0.001)
    path = write_current(tmp_path, breast_cancer_frames()[1])
    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(path, rules=RULES))
    client.set_registered_model_alias(MODEL, "champion", good)  # no champion yet: rule skipped

    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias(MODEL, "champion", weak)

    assert "accuracy >= champion - 0.01" in err.value.message
    assert f"champion version {good}" in err.value.message
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == good
    mv = client.get_model_version(MODEL, weak)
    assert mv.tags[T.VERDICT] == T.BLOCKED and mv.tags[T.CHAMPION] == good
    folder = mv.tags[T.REPORT].split(f"runs:/{mv.run_id}/", 1)[1]
    summary = json.loads(Path(client.download_artifacts(mv.run_id, f"{folder}/summary.json")).read_text())
    assert summary["champion_version"] == good
    assert summary["metrics"]["accuracy"] < summary["champion_metrics"]["accuracy"] - 0.01


def test_challenger_as_good_as_champion_passes(tmp_path):
    client = gated_client()
    first = train_version(client, MODEL)
    second = train_version(client, MODEL)  # same data and settings: same accuracy
    path = write_current(tmp_path, breast_cancer_frames()[1])
    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(path, rules=RULES))
    client.set_registered_model_alias(MODEL, "champion", first)

    client.set_registered_model_alias(MODEL, "champion", second)

    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == second
    run = client.get_run(client.get_model_version(MODEL, second).run_id)
    assert run.data.metrics["monitor/champion_accuracy"] == run.data.metrics["monitor/accuracy"]

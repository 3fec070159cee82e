"""Reference capture (log_reference/load_reference) and current-data loading, on a real
sqlite tracking store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.gate.data import CurrentDataError, load_current, log_current, read_frame, split_columns
from mlflow_monitor.gate.drift import compute_drift
from mlflow_monitor.recipes import load_recipe
from mlflow_monitor.reference import ReferenceNotFoundError, ReferenceProfile, load_reference, log_reference


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.normal(40, 8, n), "city": rng.choice(["a", "b"], n),
                         "label": rng.integers(0, 2, n)})


def _context_inputs(run_id: str, context: str):
    run = mlflow.get_run(run_id)
    return [di for di in run.inputs.dataset_inputs
            if any(t.key == "mlflow.data.context" and t.value == context for t in di.tags)]


def test_log_reference_logs_dataset_input_parquet_and_meta():
    df = _frame()
    with mlflow.start_run() as run:
        info = log_reference(df, target="label", task="classification")
    assert (info.total_rows, info.sample_size, info.sampled) == (200, 200, False)
    (ds,) = _context_inputs(run.info.run_id, "reference")
    assert ds.dataset.name == "reference"
    assert json.loads(ds.dataset.profile)["num_rows"] == 200
    files = {f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id, "mlflow_monitor/reference")}
    assert files == {"mlflow_monitor/reference/reference.parquet", "mlflow_monitor/reference/meta.json",
                     "mlflow_monitor/reference/profile.npz"}
    meta = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/mlflow_monitor/reference/meta.json")
    assert meta["target"] == "label" and meta["task"] == "classification"
    assert meta["dtypes"]["city"] in ("object", "str") and meta["columns"] == ["age", "city", "label"]


def test_large_frame_is_capped_by_a_seeded_sample_and_the_size_recorded():
    df = _frame(500)
    with mlflow.start_run() as first:
        info = log_reference(df, max_rows=120, seed=3)
    with mlflow.start_run() as second:
        log_reference(df, max_rows=120, seed=3)
    assert (info.total_rows, info.sample_size, info.seed, info.sampled) == (500, 120, 3, True)
    a, b = load_reference(first.info.run_id), load_reference(second.info.run_id)
    assert (a.total_rows, a.sample_size, a.seed) == (500, 120, 3)
    assert len(a.frame) == 120
    pd.testing.assert_frame_equal(a.frame, b.frame)  # same seed, same rows
    expected = df.sample(n=120, random_state=3).sort_index().reset_index(drop=True)
    pd.testing.assert_frame_equal(a.frame, expected)


def test_load_reference_round_trips_frame_roles_and_profile():
    df = _frame()
    with mlflow.start_run() as run:
        log_reference(df, target="label", prediction=None, task="classification")
    ref = load_reference(run.info.run_id)
    pd.testing.assert_frame_equal(ref.frame, df)
    assert (ref.target, ref.prediction, ref.task, ref.run_id) == ("label", None, "classification",
                                                                   run.info.run_id)
    assert isinstance(ref.profile, ReferenceProfile)
    cur = _frame(seed=1)
    with_profile = compute_drift(None, cur[["age", "city"]], numerical=["age"], categorical=["city"],
                                 profile=ref.profile)
    direct = compute_drift(df[["age", "city"]], cur[["age", "city"]], numerical=["age"], categorical=["city"])
    assert with_profile.to_dict()["columns"] == direct.to_dict()["columns"]


def test_log_reference_without_active_run_raises_and_logs_nothing():
    with pytest.raises(RuntimeError, match="needs an active MLflow run"):
        log_reference(_frame())
    assert mlflow.search_runs(search_all_experiments=True).empty


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"target": "y"}, "target column 'y' is not in the reference frame"),
     ({"task": "ranking"}, "task must be one of classification, regression, drift or None, got 'ranking'"),
     ({"max_rows": 0}, "max_rows must be a positive integer, got 0")],
)
def test_bad_log_reference_arguments_raise_and_log_nothing(kwargs, match):
    with mlflow.start_run() as run:
        with pytest.raises(ValueError, match=match):
            log_reference(_frame(), **kwargs)
    assert mlflow.MlflowClient().list_artifacts(run.info.run_id) == []
    assert mlflow.get_run(run.info.run_id).inputs.dataset_inputs == []


def test_log_reference_rejects_non_frames_and_empty_frames():
    with mlflow.start_run():
        with pytest.raises(TypeError, match="expects a pandas DataFrame, got ndarray"):
            log_reference(np.zeros((3, 2)))
        with pytest.raises(ValueError, match="empty frame"):
            log_reference(pd.DataFrame({"a": []}))


def test_load_reference_of_run_without_one_names_the_run():
    with mlflow.start_run() as run:
        pass
    with pytest.raises(ReferenceNotFoundError, match=f"no reference logged for run '{run.info.run_id}'"):
        load_reference(run.info.run_id)


# -- current data ----------------------------------------------------------------------
def _recipe(current) -> object:
    return load_recipe({"task": "drift", "current": current})


def test_load_current_from_local_parquet_path(tmp_path):
    df = _frame()
    df.to_parquet(tmp_path / "cur.parquet", index=False)
    out = load_current(_recipe(str(tmp_path / "cur.parquet")), run_id="unused")
    pd.testing.assert_frame_equal(out, df)


def test_load_current_from_runs_uri_with_run_id_placeholder(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "current.csv", index=False)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "current.csv"), "eval")
    out = load_current(_recipe("runs:/{run_id}/eval/current.csv"), run_id=run.info.run_id)
    pd.testing.assert_frame_equal(out, df)


def test_load_current_from_dataset_logged_under_context():
    df = _frame(seed=5)
    with mlflow.start_run() as run:
        log_current(df, context="evaluation")
    assert len(_context_inputs(run.info.run_id, "evaluation")) == 1
    out = load_current(_recipe({"dataset": "evaluation"}), run_id=run.info.run_id)
    pd.testing.assert_frame_equal(out, df)


def test_load_current_from_plain_mlflow_dataset_with_file_source(tmp_path):
    df = _frame(seed=6)
    path = tmp_path / "eval.parquet"
    df.to_parquet(path, index=False)
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_pandas(df, source=str(path)), context="evaluation")
    out = load_current(_recipe({"dataset": "evaluation"}), run_id=run.info.run_id)
    pd.testing.assert_frame_equal(out, df)


def test_missing_dataset_context_lists_the_contexts_found():
    with mlflow.start_run() as run:
        log_reference(_frame())
    with pytest.raises(CurrentDataError, match=r"context 'evaluation'; contexts found: \['reference'\]"):
        load_current(_recipe({"dataset": "evaluation"}), run_id=run.info.run_id)


def test_dataset_without_loadable_source_gives_clear_error():
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_pandas(_frame()), context="evaluation")
    with pytest.raises(CurrentDataError, match="holds no data to load"):
        load_current(_recipe({"dataset": "evaluation"}), run_id=run.info.run_id)


def test_unreadable_current_sources_name_the_location(tmp_path):
    with pytest.raises(CurrentDataError, match="no such file or directory"):
        read_frame(tmp_path / "missing.parquet")
    (tmp_path / "data.txt").write_text("a,b\n1,2\n")
    with pytest.raises(CurrentDataError, match="unknown format of suffix '.txt'"):
        read_frame(tmp_path / "data.txt")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(CurrentDataError, match="as parquet"):
        read_frame(tmp_path / "bad.parquet")
    with pytest.raises(CurrentDataError, match="cannot download data from 'runs:/"):
        read_frame("runs:/0123456789abcdef0123456789abcdef/none.csv")


def test_split_columns_infers_like_the_drift_verdict_and_skips_roles():
    df = _frame().assign(pred=0, small_int=lambda d: d.index % 3)
    cols = load_recipe({"task": "classification", "current": "x.csv",
                        "columns": {"target": "label", "prediction": "pred"}}).columns
    assert split_columns(df, cols) == (["age"], ["city", "small_int"])
    declared = load_recipe({"task": "drift", "current": "x.csv", "columns": {"numerical": ["age"]}}).columns
    assert split_columns(df, declared)[0] == ["age"]

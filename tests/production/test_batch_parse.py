"""``batch_parse.parse_bodies``: one MLflow parse for a batch's mergeable bodies, and for
every body the same result as MLflow's parser on that body alone (the oracle), on real
saved pyfunc models with and without a column schema."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from mlflow_monitor import mlflow_compat
from mlflow_monitor.production import batch_parse

JSON = "application/json"


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0] * len(model_input)


def _model(tmp_path, name: str, signature: bool):
    ref = pd.DataFrame({"x": [0.5, 1.5], "n": [1, 2], "c": ["a", "b"]})
    path = str(tmp_path / name)
    mlflow.pyfunc.save_model(path, python_model=_Echo(),
                             signature=infer_signature(ref, np.zeros(2)) if signature else None)
    return mlflow.models.Model.load(path)


def _split(rows, columns=("x", "n", "c"), **extra) -> bytes:
    return json.dumps({"dataframe_split": {"columns": list(columns), "data": rows, **extra}}).encode()


def _bodies(rng: np.random.Generator) -> list[tuple[bytes, str]]:
    bodies = []
    for i in range(60):
        rows = [[float(rng.normal()) if i % 5 else int(rng.integers(9)),  # ints in a double column
                 int(rng.integers(100)), str(rng.choice(["a", "b", "é"]))] for _ in range(1 + i % 3)]
        if i % 11 == 3:
            rows[0][0] = None  # a missing value
        bodies.append((_split(rows), JSON if i % 7 else JSON + "; charset=utf-8"))
    bodies[5] = (json.dumps({"dataframe_records": [{"x": 1.0, "n": 3, "c": "a"}]}).encode(), JSON)
    bodies[9] = (b"x,n,c\n1.0,2,a\n", "text/csv")
    bodies[13] = (_split([[1.0, 2, "a"]], index=[7]), JSON)  # an index: parsed alone
    bodies[17] = (json.dumps({"dataframe_split": {"columns": ["x", "n", "c"], "data": [[1.0, 2, "a"]]},
                              "params": {"k": 1}}).encode(), JSON)
    bodies[21] = (_split([[1.0, 2]], columns=("x", "n")), JSON)  # other columns: parsed alone
    bodies[25] = (b"{not json", JSON)
    bodies[29] = (json.dumps({"instances": [[1.0, 2, "a"]]}).encode(), JSON)
    bodies[33] = (_split([[1.0, 2, "a"]]), None)  # no content type at all: MLflow's error, alone
    return bodies


def _same(got, want) -> None:
    if isinstance(want, Exception):
        assert type(got) is type(want) and str(got) == str(want)
    elif isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True)
    else:
        assert type(got) is type(want) and repr(got) == repr(want)


@pytest.mark.parametrize("signature", [True, False])
def test_every_body_parses_as_mlflow_parses_it_alone(tmp_path, monkeypatch, signature):
    metadata = _model(tmp_path, "m", signature)
    bodies = _bodies(np.random.default_rng(4))
    alone = []
    for body, content_type in bodies:
        try:
            alone.append(mlflow_compat.parse_scoring_input(body, content_type, metadata))
        except Exception as exc:
            alone.append(exc)
    calls = []
    real = mlflow_compat.parse_scoring_input
    monkeypatch.setattr(mlflow_compat, "parse_scoring_input", lambda *a: calls.append(1) or real(*a))
    got = batch_parse.parse_bodies(bodies, metadata)
    assert len(got) == len(bodies)
    for i, (g, w) in enumerate(zip(got, alone)):
        try:
            _same(g, w)
        except AssertionError as exc:
            raise AssertionError(f"body {i}: {bodies[i][0][:80]!r}") from exc
    if signature:  # the 52 plain split bodies in one parse, the 8 others alone
        assert len(calls) == 1 + 8
    else:  # no schema to cast by: a merge could change dtypes, so every body is parsed alone
        assert len(calls) == len(bodies)


def test_a_failing_merged_parse_falls_back_to_each_body_alone(tmp_path, monkeypatch):
    metadata = _model(tmp_path, "m", True)
    bodies = [(_split([[1.0, 2, "a"]]), JSON), (_split([[2.0, 3, "b"], [3.0, 4, "c"]]), JSON)]
    real = mlflow_compat.parse_scoring_input

    def refuse_merged(body, content_type, meta):
        if isinstance(body, dict):
            raise ValueError("merged parse refused")
        return real(body, content_type, meta)

    monkeypatch.setattr(mlflow_compat, "parse_scoring_input", refuse_merged)
    got = batch_parse.parse_bodies(bodies, metadata)
    assert [len(g) for g in got] == [1, 2]
    _same(got[1], real(bodies[1][0], JSON, metadata))

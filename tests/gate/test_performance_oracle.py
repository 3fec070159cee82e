"""The gate's classification metrics against scikit-learn's (the oracle), on seeded labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from mlflow_monitor.gate.performance import score_predictions


def _sklearn(y, p, pos=None):
    average = "binary" if pos is not None else "macro"
    kwargs = {"pos_label": pos} if pos is not None else {}
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, average=average, zero_division=0, **kwargs)
    return {"accuracy": accuracy_score(y, p), "precision": prec, "recall": rec, "f1": f1}


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_equal_sklearns(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 5000)
    p = np.where(rng.random(5000) < 0.8, y, 1 - y)
    assert score_predictions("classification", y, p) == pytest.approx(_sklearn(y, p, pos=1), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_string_labels_macro_metrics_equal_sklearns(seed):
    rng = np.random.default_rng(seed)
    labels = np.array(["a", "b", "c", "<d>"], dtype=object)
    y = labels[rng.integers(0, 4, 3000)]
    p = np.where(rng.random(3000) < 0.6, y, labels[rng.integers(0, 4, 3000)])
    p[:5] = "only-predicted"  # a label never true: its recall term is 0 (zero_division=0)
    assert score_predictions("classification", y, p) == pytest.approx(_sklearn(y, p), abs=1e-12)


def test_integer_truth_and_float_predictions_are_one_label_set():
    y = pd.Series([0, 1, 1, 0, 1])
    p = pd.Series([0.0, 1.0, 0.0, 0.0, 1.0])
    assert score_predictions("classification", y, p) == pytest.approx(_sklearn(y, p, pos=1))


def test_only_the_positive_class_present_gives_sklearns_values():
    y = np.array([1, 1, 1])
    p = np.array([1, 1, 1])
    assert score_predictions("classification", y, p) == pytest.approx(_sklearn(y, p, pos=1))
    y, p = np.array([0, 0]), np.array([0, 0])  # no positive label at all: the larger label is it
    assert score_predictions("classification", y, p) == pytest.approx(_sklearn(y, p, pos=0))

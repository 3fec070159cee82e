"""Model performance on the current data, and predictions from a registered model.

The numbers match what Evidently's ClassificationPreset / RegressionPreset show for the
same frame: binary precision/recall/F1 for the positive label (``1`` or ``True`` when
present, else the larger label), macro averages for multiclass; RMSE, MAE, R2 and mean
error (``mean(prediction - target)``) for regression.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

__all__ = ["PredictionError", "compute_performance", "model_input", "predict_frame", "score_predictions"]


class PredictionError(RuntimeError):
    """The model could not be loaded, or failed to predict on the current data."""


def compute_performance(
    frame: pd.DataFrame,
    *,
    task: str,
    target: str,
    prediction: str,
    proba: Optional[Union[str, Sequence[str]]] = None,
) -> dict[str, float]:
    """Performance metrics of ``frame[prediction]`` against ``frame[target]``.

    classification: ``accuracy``, ``precision``, ``recall``, ``f1`` and, when ``proba``
    names the positive-class probability column (binary) or one column per class label,
    ``roc_auc``. regression: ``rmse``, ``mae``, ``r2``, ``mean_error``. Rows whose target
    or prediction is missing are dropped; raises ``ValueError`` when none remain.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    for role, col in (("target", target), ("prediction", prediction)):
        if col not in frame.columns:
            raise ValueError(
                f"{role} column {col!r} is not in the data; columns: {list(frame.columns)}"
            )
    proba_cols = [proba] if isinstance(proba, str) else list(proba or [])
    missing = [c for c in proba_cols if c not in frame.columns]
    if missing:
        raise ValueError(f"probability columns {missing} are not in the data; columns: {list(frame.columns)}")
    data = frame[[target, prediction, *proba_cols]].dropna(subset=[target, prediction])
    if data.empty:
        raise ValueError(
            f"no rows with both target {target!r} and prediction {prediction!r} "
            f"(of {len(frame)} rows)"
        )
    return score_predictions(task, data[target], data[prediction],
                             proba=data[proba_cols] if proba_cols else None)


def score_predictions(
    task: str, y_true: Any, y_pred: Any, *, proba: Optional[pd.DataFrame] = None
) -> dict[str, float]:
    """The metrics of :func:`compute_performance` from aligned label/prediction arrays
    (no missing values). ``proba``: one column (positive class) or one per class label."""
    y, p = pd.Series(np.asarray(y_true)), pd.Series(np.asarray(y_pred))
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} values but y_pred has {len(p)}")
    if len(y) == 0:
        raise ValueError("no labelled rows to score")
    if task == "regression":
        return _regression(y, p)
    if task == "classification":
        return _classification(y, p, None if proba is None else proba.reset_index(drop=True))
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def model_input(frame: pd.DataFrame, feature_columns: Sequence[str]) -> pd.DataFrame:
    """``frame[feature_columns]`` as the models are given it, built once per evaluation.

    Text columns of pandas' string dtype (Arrow-backed under pandas 3) become ``object``
    columns of the same ``str`` values: the conversion scikit-learn's input checks do on
    their own in every ``predict`` (about 0.5 s per model at 1M rows x 5 text columns),
    done once for the candidate and the champion. MLflow's schema enforcement accepts
    ``object`` for ``string`` inputs; the values, and so the predictions, are the same.
    Missing values stay ``NaN``, as scikit-learn's own conversion gives them. Feature
    columns the frame lacks are left out (:func:`predict_frame` then names them).
    """
    out = frame[[c for c in feature_columns if c in frame.columns]]
    text = {c: object for c in out.columns if isinstance(out[c].dtype, pd.StringDtype)}
    return out.astype(text) if text else out


def predict_frame(model_uri: str, frame: pd.DataFrame, feature_columns: Sequence[str]) -> pd.Series:
    """Predictions of the pyfunc model at ``model_uri`` on ``frame[feature_columns]``
    (``frame`` may already be :func:`model_input`'s output).

    A 2-D output keeps its first column. Raises :class:`PredictionError` naming the model
    and the reason when loading or predicting fails.
    """
    import mlflow

    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise PredictionError(
            f"cannot predict with model '{model_uri}': feature columns {missing} are missing "
            f"from the current data; columns: {list(frame.columns)}"
        )
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise PredictionError(f"cannot load model '{model_uri}': {_reason(exc)}") from exc
    try:
        out = model.predict(frame[list(feature_columns)])
    except Exception as exc:
        raise PredictionError(f"model '{model_uri}' failed to predict: {_reason(exc)}") from exc
    if isinstance(out, pd.DataFrame):
        out = out.iloc[:, 0]
    arr = np.asarray(out)
    if arr.ndim > 1:
        arr = arr[:, 0]
    if len(arr) != len(frame):
        raise PredictionError(
            f"model '{model_uri}' returned {len(arr)} predictions for {len(frame)} rows"
        )
    return pd.Series(arr, index=frame.index, name="prediction")


# -- helpers ---------------------------------------------------------------------------
def _regression(y: pd.Series, p: pd.Series) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_arr, p_arr = y.to_numpy(dtype=float), p.to_numpy(dtype=float)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_arr, p_arr))),
        "mae": float(mean_absolute_error(y_arr, p_arr)),
        "r2": float(r2_score(y_arr, p_arr)) if len(y_arr) > 1 else float("nan"),
        "mean_error": float(np.mean(p_arr - y_arr)),
    }


def _classification(y: pd.Series, p: pd.Series, probas: Optional[pd.DataFrame]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 (binary for the positive label, else macro), as
    scikit-learn computes them with ``zero_division=0``, from one confusion matrix
    (numpy; sklearn's own checks cost ~1 s per call at 1M rows). ``roc_auc`` is sklearn's."""
    from sklearn.metrics import roc_auc_score

    ya, pa = np.asarray(y), np.asarray(p)
    if ya.dtype.kind in "biuf" and pa.dtype.kind in "biuf":  # numbers: 1 and 1.0 are one label
        both = np.concatenate([ya, pa])
    else:
        both = np.concatenate([ya.astype(object), pa.astype(object)])
    codes, uniques = pd.factorize(both, sort=False)
    n = len(y)
    yc, pc = codes[:n], codes[n:]
    k = len(uniques)
    matrix = np.bincount(yc * k + pc, minlength=k * k).reshape(k, k)  # rows: truth, cols: prediction
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0).astype(float), matrix.sum(axis=1).astype(float)
    labels = sorted(uniques.tolist(), key=str)
    out = {"accuracy": float(tp.sum() / n)}
    if k <= 2:
        i = uniques.tolist().index(_positive_label(labels))
        prec, rec = _ratio(tp[i], predicted[i]), _ratio(tp[i], actual[i])
        f1 = _ratio(2 * tp[i], predicted[i] + actual[i])
    else:
        prec = float(np.mean([_ratio(t, d) for t, d in zip(tp, predicted)]))
        rec = float(np.mean([_ratio(t, d) for t, d in zip(tp, actual)]))
        f1 = float(np.mean([_ratio(2 * t, a + b) for t, a, b in zip(tp, predicted, actual)]))
    out.update(precision=float(prec), recall=float(rec), f1=float(f1))
    if probas is not None and y.nunique() > 1:
        try:
            if probas.shape[1] == 1:
                pos = _positive_label(labels)
                out["roc_auc"] = float(roc_auc_score((y == pos).astype(int), probas.iloc[:, 0]))
            else:
                classes = [_label_like(c, y) for c in probas.columns]
                out["roc_auc"] = float(roc_auc_score(y, probas.to_numpy(), multi_class="ovr",
                                                     average="macro", labels=classes))
        except ValueError as exc:
            raise ValueError(f"cannot compute roc_auc from {list(probas.columns)}: {exc}") from exc
    return out


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def _positive_label(labels: list[Any]) -> Any:
    for candidate in (1, True, "1"):
        if candidate in labels:
            return candidate
    return labels[-1]


def _label_like(column: str, y: pd.Series) -> Any:
    """Map a probability column name back to a label of ``y`` (``"1"`` -> ``1``)."""
    for value in pd.unique(y):
        if str(value) == str(column):
            return value
    raise ValueError(f"probability column {column!r} matches no label of the target {sorted(map(str, pd.unique(y)))}")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"

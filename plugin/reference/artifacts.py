"""Reference data as run artifacts: what "normal" looked like when the model was trained.

Call :func:`log_reference` in the training run; the promotion gate later loads it with
:func:`load_reference` from the candidate version's source run.

Artifacts (under the run's ``mlflow_monitor/reference/``):

- ``reference.parquet``: the frame, or a seeded sample of ``max_rows`` rows of it;
- ``meta.json``: columns, dtypes, target/prediction/task, total_rows, sample_size, seed;
- ``profile.npz``: the drift verdict's precomputed
  :class:`~mlflow_monitor.reference.ReferenceProfile` (sorted values, value counts);
- ``calibration.json`` (when a numerical feature column needs the bootstrap null):
  their null tails (:func:`mlflow_monitor.reference.null_tail.precalibrate`), computed
  within ``calibration_budget_s`` seconds, so the first gated check pays no calibration.

It is also logged as an MLflow dataset input with context ``reference`` (shown in the
run's "Datasets used" panel).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from mlflow_monitor.reference.errors import ReferenceNotFoundError
from mlflow_monitor.reference.profile import ReferenceProfile

_logger = logging.getLogger(__name__)

__all__ = [
    "REFERENCE_ARTIFACT_DIR",
    "ReferenceData",
    "ReferenceInfo",
    "load_reference",
    "log_reference",
]

REFERENCE_ARTIFACT_DIR = "mlflow_monitor/reference"
_DATA_FILE = "reference.parquet"
_META_FILE = "meta.json"
_PROFILE_FILE = "profile.npz"
_CALIBRATION_FILE = "calibration.json"
#: Default seconds :func:`log_reference` spends precomputing drift calibrations.
CALIBRATION_BUDGET_S = 2.0
_TASKS = ("classification", "regression", "drift")
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ReferenceInfo:
    """What :func:`log_reference` logged."""

    run_id: str
    artifact_path: str  # folder in the run's artifacts
    columns: list[str]
    total_rows: int  # rows in the frame given
    sample_size: int  # rows logged (== total_rows unless capped)
    seed: int
    target: Optional[str] = None
    prediction: Optional[str] = None
    task: Optional[str] = None

    @property
    def sampled(self) -> bool:
        return self.sample_size < self.total_rows


@dataclasses.dataclass
class ReferenceData:
    """A loaded reference: the (possibly sampled) frame and what was recorded with it."""

    frame: pd.DataFrame
    target: Optional[str]
    prediction: Optional[str]
    task: Optional[str]
    total_rows: int
    sample_size: int
    seed: int = 0
    run_id: Optional[str] = None
    profile: Optional[ReferenceProfile] = None
    calibration: Optional[dict[str, Any]] = None  # calibration.json, as logged


def log_reference(
    df: pd.DataFrame,
    *,
    target: Optional[str] = None,
    prediction: Optional[str] = None,
    task: Optional[str] = None,
    max_rows: int = 100_000,
    seed: int = 0,
    calibration_budget_s: float = CALIBRATION_BUDGET_S,
) -> ReferenceInfo:
    """Log ``df`` as the reference data of the active MLflow run.

    Frames longer than ``max_rows`` are replaced by a sample of ``max_rows`` rows drawn
    with ``seed``; ``total_rows`` and ``sample_size`` are recorded. Non-string column
    names are turned into strings (Parquet needs string names). The drift gate's
    bootstrap calibration of the numerical feature columns is computed here, on the
    caller's thread, for at most ``calibration_budget_s`` seconds (a column under way is
    finished; 0 turns it off; columns left out are calibrated on the first gated check).
    Raises ``TypeError`` / ``ValueError`` for bad input and ``RuntimeError`` without an
    active run, before logging anything.
    """
    import mlflow

    if isinstance(calibration_budget_s, bool) or not isinstance(calibration_budget_s, (int, float)) \
            or not calibration_budget_s >= 0:
        raise ValueError(f"calibration_budget_s must be a number of seconds >= 0, got {calibration_budget_s!r}")
    frame = _checked_frame(df, target=target, prediction=prediction, task=task, max_rows=max_rows)
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            "log_reference needs an active MLflow run: call it inside "
            "`with mlflow.start_run():` (the training run), got no active run"
        )
    total = len(frame)
    if total > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed).sort_index()
    meta = {
        "format_version": _FORMAT_VERSION,
        "columns": list(frame.columns),
        "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
        "target": target,
        "prediction": prediction,
        "task": task,
        "total_rows": total,
        "sample_size": len(frame),
        "seed": seed,
    }
    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_ref_") as tmp:
        folder = Path(tmp)
        frame.to_parquet(folder / _DATA_FILE, index=False)
        (folder / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        built = _profile(frame)
        if built is not None:
            profile, blob = built
            (folder / _PROFILE_FILE).write_bytes(blob)
            calibration = _calibration(profile, [c for c in frame.columns if c not in (target, prediction)],
                                       budget_s=float(calibration_budget_s))
            if calibration is not None and (calibration["columns"] or calibration["skipped"]):
                (folder / _CALIBRATION_FILE).write_text(json.dumps(calibration), encoding="utf-8")
        client.log_artifacts(run_id, str(folder), REFERENCE_ARTIFACT_DIR)
    _log_dataset_input(frame, run_id, target=target, prediction=prediction)
    return ReferenceInfo(
        run_id=run_id,
        artifact_path=REFERENCE_ARTIFACT_DIR,
        columns=list(frame.columns),
        total_rows=total,
        sample_size=len(frame),
        seed=seed,
        target=target,
        prediction=prediction,
        task=task,
    )


def load_reference(run_id: str, client: Any = None) -> ReferenceData:
    """Load the reference logged in run ``run_id``.

    Raises :class:`ReferenceNotFoundError` when the run has none.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    names = {Path(f.path).name for f in client.list_artifacts(run_id, REFERENCE_ARTIFACT_DIR)}
    if _DATA_FILE not in names:
        raise ReferenceNotFoundError(
            f"no reference logged for run {run_id!r}: expected artifact "
            f"'{REFERENCE_ARTIFACT_DIR}/{_DATA_FILE}'; call mlflow_monitor.log_reference(df) "
            "in the training run"
        )
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_ref_") as tmp:
        try:
            local = Path(client.download_artifacts(run_id, REFERENCE_ARTIFACT_DIR, tmp))
        except MlflowException as exc:
            raise ReferenceNotFoundError(
                f"cannot download the reference of run {run_id!r}: {exc.message}"
            ) from exc
        frame = pd.read_parquet(local / _DATA_FILE)
        meta = _read_json(local / _META_FILE) or {}
        profile = _read_profile(local / _PROFILE_FILE)
        calibration = _read_calibration(local / _CALIBRATION_FILE) if profile is not None else None
    return ReferenceData(
        frame=frame,
        target=meta.get("target"),
        prediction=meta.get("prediction"),
        task=meta.get("task"),
        total_rows=int(meta.get("total_rows", len(frame))),
        sample_size=int(meta.get("sample_size", len(frame))),
        seed=int(meta.get("seed", 0)),
        run_id=run_id,
        profile=profile,
        calibration=calibration,
    )


# -- helpers ---------------------------------------------------------------------------
def _checked_frame(
    df: Any, *, target: Optional[str], prediction: Optional[str], task: Optional[str], max_rows: int
) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"log_reference expects a pandas DataFrame, got {type(df).__name__}")
    if df.empty or len(df.columns) == 0:
        raise ValueError(f"log_reference got an empty frame ({len(df)} rows, {len(df.columns)} columns)")
    if task is not None and task not in _TASKS:
        raise ValueError(f"task must be one of {', '.join(_TASKS)} or None, got {task!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows <= 0:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    frame = df.rename(columns=str) if not all(isinstance(c, str) for c in df.columns) else df
    if frame.columns.duplicated().any():
        dups = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise ValueError(f"reference column names must be unique, got duplicates {dups}")
    for role, col in (("target", target), ("prediction", prediction)):
        if col is not None and col not in frame.columns:
            raise ValueError(
                f"{role} column {col!r} is not in the reference frame; columns: {list(frame.columns)}"
            )
    return frame.reset_index(drop=True)


def _profile(frame: pd.DataFrame) -> Optional[tuple[ReferenceProfile, bytes]]:
    """The drift verdict's reference profile of ``frame`` and its stored bytes; ``None``
    if it cannot be built (the Parquet file stays the source of truth)."""
    try:
        profile = ReferenceProfile.from_frame(frame)
        return profile, profile.to_bytes()
    except Exception:
        _logger.warning("mlflow-monitor: could not build the reference profile", exc_info=True)
        return None


def _calibration(profile: ReferenceProfile, columns: list[str], *, budget_s: float) -> Optional[dict[str, Any]]:
    """The precomputed drift calibration of ``columns``; ``None`` when off or failed
    (the gate then calibrates on first use, as it would anyway)."""
    if budget_s <= 0:
        return None
    from mlflow_monitor.reference.null_tail import precalibrate

    try:
        return precalibrate(profile, columns, budget_s=budget_s)
    except Exception:
        _logger.warning("mlflow-monitor: could not precompute the drift calibration", exc_info=True)
        return None


def _read_calibration(path: Path) -> Optional[dict[str, Any]]:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        _logger.warning("mlflow-monitor: ignoring unreadable drift calibration %s", path)
        return None
    return data if isinstance(data, dict) else None


def _read_profile(path: Path) -> Optional[ReferenceProfile]:
    if not path.exists():
        return None
    try:
        return ReferenceProfile.from_bytes(path.read_bytes())
    except Exception:
        _logger.warning("mlflow-monitor: ignoring unreadable reference profile %s", path, exc_info=True)
        return None


def _log_dataset_input(
    frame: pd.DataFrame, run_id: str, *, target: Optional[str], prediction: Optional[str]
) -> None:
    import mlflow

    uri = mlflow.get_artifact_uri(f"{REFERENCE_ARTIFACT_DIR}/{_DATA_FILE}")
    kwargs: dict[str, Any] = {"name": "reference", "targets": target, "predictions": prediction}
    try:
        dataset = mlflow.data.from_pandas(frame, source=uri, **kwargs)
    except Exception:  # no dataset source for this artifact scheme (e.g. mlflow-artifacts:/)
        dataset = mlflow.data.from_pandas(frame, **kwargs)
    mlflow.log_input(dataset, context="reference")


def _read_json(path: Path) -> Optional[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

"""Current data for the gate: read it from the recipe's source.

The source is either a path/URI (local, ``runs:/``, ``models:/``, ``s3://`` ... anything
``mlflow.artifacts.download_artifacts`` reads) or a dataset input logged on the
candidate's run under a context such as ``evaluation``. :func:`log_current` logs a frame
so that the second form can find it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import urlparse

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.recipes import Recipe
    from mlflow_monitor.recipes.schema import Columns

__all__ = [
    "CurrentDataError",
    "DATASETS_ARTIFACT_DIR",
    "load_current",
    "log_current",
    "read_frame",
    "split_columns",
]

DATASETS_ARTIFACT_DIR = "mlflow_monitor/datasets"
_READERS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class CurrentDataError(ValueError):
    """The current data could not be located or read."""


def load_current(recipe: "Recipe", *, run_id: str, client: Any = None) -> pd.DataFrame:
    """The current data named by ``recipe.current`` for the candidate's run ``run_id``.

    ``{run_id}`` in a path is replaced by ``run_id``. Raises :class:`CurrentDataError`.
    """
    from mlflow_monitor.gate.data_access import DataLocationRefused, check_location

    source = recipe.current
    if source.path is not None:
        location = source.path.replace("{run_id}", run_id)
        try:
            check_location(location, what="recipe current.path", client=client)
        except DataLocationRefused as exc:
            raise CurrentDataError(str(exc)) from None
        return read_frame(location, fmt=source.format)
    assert source.dataset is not None
    return _load_logged_dataset(run_id, source.dataset, fmt=source.format, client=client)


def read_frame(location: Union[str, Path], *, fmt: str = "auto") -> pd.DataFrame:
    """Read a CSV/Parquet/JSON(L) file from a local path or an MLflow-readable URI.

    A directory (e.g. an artifact folder) is read when it holds exactly one data file.
    """
    text = str(location)
    local = Path(text)
    if not local.exists() and _is_uri(text):
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_cur_") as tmp:
            local = _download(text, tmp)
            return _read_local(local, fmt=fmt, shown=text)
    if not local.exists():
        raise CurrentDataError(f"cannot read data from '{text}': no such file or directory")
    return _read_local(local, fmt=fmt, shown=text)


def log_current(df: pd.DataFrame, *, context: str = "evaluation", run_id: Optional[str] = None) -> str:
    """Log ``df`` on a run (the active one by default) as a dataset input with
    ``context`` plus a Parquet artifact, so a recipe with ``current: {dataset: context}``
    finds it. Returns the artifact URI of the Parquet file."""
    import mlflow

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"log_current expects a pandas DataFrame, got {type(df).__name__}")
    if not context or "/" in context:
        raise ValueError(f"context must be a non-empty name without '/', got {context!r}")
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError("log_current needs an active MLflow run or run_id=, got neither")
        run_id = active.info.run_id
    client = mlflow.MlflowClient()
    name = f"{context}.parquet"
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_cur_") as tmp:
        df.to_parquet(Path(tmp) / name, index=False)
        client.log_artifact(run_id, str(Path(tmp) / name), DATASETS_ARTIFACT_DIR)
    run = client.get_run(run_id)
    uri = f"{run.info.artifact_uri.rstrip('/')}/{DATASETS_ARTIFACT_DIR}/{name}"
    try:
        dataset = mlflow.data.from_pandas(df, source=uri, name=context)
    except Exception:  # no dataset source for this artifact scheme
        dataset = mlflow.data.from_pandas(df, name=context)
    from mlflow.entities import DatasetInput, InputTag

    from mlflow_monitor.mlflow_compat import dataset_context_tag, dataset_entity

    client.log_inputs(run_id, [DatasetInput(dataset_entity(dataset),
                                            [InputTag(dataset_context_tag(), context)])])
    return uri


def split_columns(current: pd.DataFrame, columns: "Columns") -> tuple[list[str], list[str]]:
    """``(numerical, categorical)`` feature columns of the recipe for ``current``.

    Declared lists win. Undeclared ones are inferred from the *current* frame exactly as
    the drift verdict (:func:`mlflow_monitor.gate.drift.infer_column_types`) and
    Evidently do, leaving out the target, prediction, probability and ``exclude``
    columns, so the HTML report covers the same columns as the verdict.
    """
    from mlflow_monitor.gate.drift import infer_column_types

    skip = [c for c in (columns.target, columns.prediction, *(columns.prediction_proba or []),
                        *columns.exclude) if c]
    num, cat, _ = infer_column_types(
        current.drop(columns=[c for c in skip if c in current.columns]),
        numerical=columns.numerical, categorical=columns.categorical, exclude=skip,
    )
    return num, cat


# -- helpers ---------------------------------------------------------------------------
def _load_logged_dataset(run_id: str, context: str, *, fmt: str, client: Any) -> pd.DataFrame:
    import mlflow

    from mlflow_monitor.mlflow_compat import dataset_context_tag

    context_key = dataset_context_tag()
    client = client or mlflow.MlflowClient()
    run = client.get_run(run_id)
    inputs = run.inputs.dataset_inputs if run.inputs else []
    matching = [
        di for di in inputs
        if any(t.key == context_key and t.value == context for t in di.tags)
    ]
    if not matching:
        seen = sorted({t.value for di in inputs for t in di.tags if t.key == context_key})
        raise CurrentDataError(
            f"no dataset logged on run {run_id!r} with context {context!r}; contexts found: "
            f"{seen or 'none'} (log one with mlflow_monitor.gate.data.log_current(df, "
            f"context={context!r}) or mlflow.log_input(dataset, context={context!r}))"
        )
    dataset = matching[-1].dataset
    own = f"{DATASETS_ARTIFACT_DIR}/{context}.parquet"
    if any(f.path == own for f in client.list_artifacts(run_id, DATASETS_ARTIFACT_DIR)):
        return read_frame(f"runs:/{run_id}/{own}", fmt=fmt)
    location = _source_location(dataset.source)
    if location is None:
        raise CurrentDataError(
            f"dataset {dataset.name!r} logged on run {run_id!r} with context {context!r} has a "
            f"{dataset.source_type!r} source, which holds no data to load; log it with "
            "mlflow.data.from_pandas(df, source=<file path or URI>)"
        )
    from mlflow_monitor.gate.data_access import DataLocationRefused, check_location

    try:
        check_location(location, what=f"source of dataset {dataset.name!r} (context {context!r})",
                       client=client)
    except DataLocationRefused as exc:
        raise CurrentDataError(str(exc)) from None
    return read_frame(location, fmt=fmt)


def _source_location(source_json: str) -> Optional[str]:
    try:
        data = json.loads(source_json)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("uri", "url", "path"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


def _is_uri(text: str) -> bool:
    scheme = urlparse(text).scheme
    return len(scheme) > 1  # skip Windows drive letters


def _download(uri: str, dst: str) -> Path:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst))
    except (MlflowException, OSError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
        raise CurrentDataError(f"cannot download data from '{uri}': {reason}") from exc


def _read_local(path: Path, *, fmt: str, shown: str) -> pd.DataFrame:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _READERS)
        if len(files) != 1:
            raise CurrentDataError(
                f"cannot read data from '{shown}': expected a directory with exactly one "
                f"{'/'.join(sorted(set(_READERS.values())))} file, found {len(files)}"
            )
        path = files[0]
    kind = fmt if fmt != "auto" else _READERS.get(path.suffix.lower())
    if kind is None:
        raise CurrentDataError(
            f"cannot read data from '{shown}': unknown format of suffix {path.suffix!r}; "
            f"expected one of {', '.join(_READERS)} or set format"
        )
    try:
        if kind == "csv":
            return pd.read_csv(path)
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_json(path)
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file
        # Only the type: parser messages quote the bytes they choked on (file contents).
        raise CurrentDataError(f"cannot read data from '{shown}' as {kind}: the file is not valid "
                               f"{kind} ({type(exc).__name__})") from None

"""The gate's production evidence: ``current: {production: {window: 7d, min_rows: 1000}}``.

The current data is the traffic the monitor captured for the model's current alias
holder (the champion, or the stage's latest version): the row samples of the merged
windows of its monitoring run in the last ``window``, newest window first, at most
``max_rows`` rows, with the labels joined to them so far (as the recipe's target
column). Nothing comes from the candidate's run, so a promoter who can only write there
cannot shape it. The monitoring run is found from the champion's version tag
``mlflow_monitor.prod.run_id`` (an ``mlflow_monitor.*`` tag the gate's store refuses to
let clients set) or by its ``mlflow_monitor.prod`` tag, and must not be the candidate's
run. Fewer than ``min_rows`` captured rows raises :class:`ProductionEvidenceError`:
the verdict says so and follows ``on_error``.

Signed evidence: with the evidence key in the gate's environment
(``MLFLOW_MONITOR_EVIDENCE_KEY`` or ``..._KEY_FILE``, :mod:`mlflow_monitor.windows.signing`),
only rows and labels whose signatures hold are evidence, so an editor of the monitoring
run's experiment cannot write rows or labels the gate takes. Without a key the windows
are read as stored, and ``current.production.require_signed: true`` refuses that.

Read through the core :mod:`mlflow_monitor.windows.stored`; this module never imports
the production service.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import pandas as pd

from mlflow_monitor.gate.data import CurrentDataError
from mlflow_monitor.gate.escaping import safe_text
from mlflow_monitor.windows.sample import ID_COLUMN
from mlflow_monitor.windows.state import PREDICTION_PREFIX
from mlflow_monitor.windows.granularity import parse_duration
from mlflow_monitor.windows.signing import ENV_KEY, ENV_KEY_FILE, EvidenceKey, EvidenceKeyError, evidence_key
from mlflow_monitor.windows.stored import find_monitoring_run, list_windows, read_window_labels, read_window_rows

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.recipes import Recipe

__all__ = ["ProductionEvidenceError", "UnsignedEvidenceError", "load_production_current"]


class ProductionEvidenceError(CurrentDataError):
    """No usable production traffic: no champion, no monitoring run, or too few rows."""


RE_MERGE_WAIT_S = 0.5  # how long the gate waits once for a re-merge's rows to follow its signature


class UnsignedEvidenceError(ProductionEvidenceError):
    """The evidence cannot be trusted: ``require_signed`` without a key on the gate, or too
    few signed rows while some files' signatures failed (someone may have written or
    changed them) or while ``require_signed`` is set (someone may have deleted them). A
    block, never an error that ``on_error: allow`` lets through."""


def _labels(client: Any, run_id: str, window: Any, key: Optional[EvidenceKey],
            ignored: list[str]) -> Optional[pd.DataFrame]:
    try:
        labels, batches = read_window_labels(client, run_id, window, key=key, ignored=ignored)
    except Exception:
        return None
    return labels if batches else None


def load_production_current(recipe: "Recipe", **kwargs: Any) -> pd.DataFrame:
    """The champion's captured traffic as the current data (input columns, plus
    ``target`` where labels were joined). Raises :class:`ProductionEvidenceError`; with
    ``require_signed``, every failure to find signed evidence is an
    :class:`UnsignedEvidenceError` (a block: no evidence is not a pass)."""
    try:
        return _load(recipe, **kwargs)
    except UnsignedEvidenceError:
        raise
    except ProductionEvidenceError as exc:
        spec = recipe.current.production
        if spec is not None and spec.require_signed:
            raise UnsignedEvidenceError(str(exc)) from None
        raise


def _load(recipe: "Recipe", *, name: str, holder: Optional[Any], candidate_run_id: str,
          client: Any, registry: Any = None, target: Optional[str] = None, now: Optional[float] = None,
          progress: Optional[Callable[[str], None]] = None) -> pd.DataFrame:
    spec = recipe.current.production
    assert spec is not None
    say = progress or (lambda _m: None)
    try:
        key = evidence_key()
    except EvidenceKeyError as exc:  # names the variable, never the secret
        raise ProductionEvidenceError(f"current.production: the gate's evidence key is unusable: {exc}") from None
    if key is None and spec.require_signed:
        raise UnsignedEvidenceError(
            f"current.production.require_signed is true, but the gate has no evidence key ({ENV_KEY} or "
            f"{ENV_KEY_FILE} in the environment of the process that runs the gate, e.g. mlflow server): "
            "unsigned windows are not evidence")
    if holder is None:
        raise ProductionEvidenceError(
            f"current.production: model '{safe_text(name)}' has no current alias holder (champion) whose "
            "production traffic could be the current data")
    version = str(holder.version)
    try:
        run_id = find_monitoring_run(client, name, version, registry=registry, strict=True)
    except LookupError as exc:
        raise ProductionEvidenceError(f"current.production: champion version {version} of '{safe_text(name)}': "
                                      f"{safe_text(str(exc))}") from None
    if run_id is None:
        raise ProductionEvidenceError(
            f"current.production: champion version {version} of '{safe_text(name)}' has no monitoring run: "
            f"no production traffic was captured for it (need at least {spec.min_rows} rows)")
    if run_id == candidate_run_id:
        raise ProductionEvidenceError("current.production: the champion's monitoring run is the candidate's own "
                                      "run; its windows are not evidence the monitor owns")
    seconds = parse_duration(spec.window, what="current.production.window")
    now = time.time() if now is None else now
    frames: list[pd.DataFrame] = []
    rows = 0
    ignored: list[str] = []  # files whose signature fails (with the key only)
    windows = list_windows(client, run_id, since=now - seconds, until=now + 1)
    for window in windows:
        # one wait for a re-merge in progress per evaluation, never one per window
        waited = any("a signature of other bytes" in i for i in ignored)
        part = read_window_rows(client, run_id, window, key=key, ignored=ignored,
                                retry_wait_s=0.0 if waited else RE_MERGE_WAIT_S)
        if part.empty:
            continue
        if target:
            labels = _labels(client, run_id, window, key, ignored)
            if labels is not None and len(labels):
                part = part.merge(labels.rename(columns={"id": ID_COLUMN, "label": target}), on=ID_COLUMN,
                                  how="left")
        frames.append(part)
        rows += len(part)
        if rows >= spec.max_rows:
            break
    unsigned = _ignored_note(ignored)
    if rows < spec.min_rows:
        # with failed signatures, or signing required, too little is a block: an editor who
        # spoils or deletes files must not turn the evidence into an error on_error may allow
        raise (UnsignedEvidenceError if ignored else ProductionEvidenceError)(
            f"current.production: too little production traffic for champion version {version} of "
            f"'{safe_text(name)}': {rows} captured{' signed' if key else ''} rows in {len(windows)} window(s) of the "
            f"last {spec.window}, the recipe needs at least {spec.min_rows} (min_rows){unsigned}")
    frame = pd.concat(frames, ignore_index=True, sort=False).head(spec.max_rows)
    keep = [c for c in frame.columns if c != ID_COLUMN and not str(c).startswith(PREDICTION_PREFIX)]
    signed = (f"signed with evidence key {key.key_id}" if key is not None
              else f"unsigned: the gate has no {ENV_KEY}, so an editor of the run's experiment could have written them")
    say(f"production evidence: {len(frame)} rows captured for champion version {version} in the last "
        f"{spec.window} (monitoring run {run_id}; {signed}){unsigned}")
    return frame[keep].infer_objects().reset_index(drop=True)


def _ignored_note(ignored: list[str]) -> str:
    """``; N files ... ignored: a, b, c`` for the verdict (paths are the monitor's own names)."""
    if not ignored:
        return ""
    shown = ", ".join(safe_text(p) for p in ignored[:3])
    more = f" and {len(ignored) - 3} more" if len(ignored) > 3 else ""
    return f"; {len(ignored)} file(s) without a valid evidence signature were ignored: {shown}{more}"

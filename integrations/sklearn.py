"""scikit-learn: compose with ``mlflow.sklearn.autolog`` instead of duplicating it.

- ``mlflow.sklearn.autolog`` keeps doing what it does inside a run (params, training
  metrics, model). We turn it on unless it is on already (then the user's settings stay,
  including the run it creates for a fit outside any run) and turn it off again on
  disable if we turned it on.
- When *we* turn it on, a fit outside any run creates no run: MLflow would start one
  (``with_managed_run``), which nobody asked for (a fit inside a library, a scaler fitted
  before the run) and which Slack would then announce. Such a fit runs as the plain
  original; fits inside a run are logged as MLflow logs them. Should MLflow's managed-run
  wrapper move (:func:`~mlflow_monitor.mlflow_compat.managed_run_module` is None), we
  leave sklearn autolog off with a warning rather than let it create runs.
- We add, through MLflow's official ``AutologgingEventLogger`` hook (no patch of our
  own), around the *outermost* ``fit``/``fit_transform``/``fit_predict`` of a call:
  a system-stats sampler into the run the fit logs to, and, when ``X`` is a pandas
  DataFrame, ``log_reference`` of ``X`` (with ``y`` as the target column) into that run.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Protocol

from mlflow_monitor.mlflow_compat import (
    autologging_event_logger_class,
    autologging_is_disabled,
    has_active_training_session,
    managed_run_module,
)
from mlflow_monitor.patching import PatchRegistry
from mlflow_monitor.runs import MonitoredRuns

_logger = logging.getLogger(__name__)

_FIT_FUNCTIONS = ("fit", "fit_transform", "fit_predict")


class SklearnKnobs(Protocol):
    """The autolog knobs the sklearn part reads."""

    @property
    def log_models(self) -> bool: ...
    @property
    def log_reference(self) -> bool: ...
    @property
    def silent(self) -> bool: ...


class _FitEvents:
    """An MLflow autologging event logger that sees the start and end of each original
    sklearn fit. Every event also goes to the logger that was set before (``previous``);
    events this class does not handle are delegated to it as they are."""

    def __init__(self, owner: "SklearnAutolog", previous: Any) -> None:
        self._owner = owner
        self.previous = previous
        self._depth = 0
        self._run_id: Optional[str] = None

    def __getattr__(self, name: str) -> Any:  # log_autolog_called, log_patch_function_*, ...
        if name == "previous":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.previous, name)

    def log_original_function_start(self, session, patch_obj, function_name, call_args, call_kwargs):  # noqa: ANN001
        self.previous.log_original_function_start(session, patch_obj, function_name, call_args, call_kwargs)
        if getattr(session, "integration", None) != "sklearn" or function_name not in _FIT_FUNCTIONS:
            return
        self._depth += 1
        if self._depth == 1:
            self._run_id = self._owner.fit_started(call_args, call_kwargs)

    def log_original_function_success(self, session, patch_obj, function_name, call_args, call_kwargs):  # noqa: ANN001
        self.previous.log_original_function_success(session, patch_obj, function_name, call_args, call_kwargs)
        self._fit_ended(session, function_name)

    def log_original_function_error(self, session, patch_obj, function_name, call_args, call_kwargs, exception):  # noqa: ANN001
        self.previous.log_original_function_error(
            session, patch_obj, function_name, call_args, call_kwargs, exception
        )
        self._fit_ended(session, function_name, exception)

    def _fit_ended(self, session: Any, function_name: str, error: Optional[BaseException] = None) -> None:
        if getattr(session, "integration", None) != "sklearn" or function_name not in _FIT_FUNCTIONS:
            return
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and self._run_id is not None:
            run_id, self._run_id = self._run_id, None
            self._owner.fit_ended(run_id, error)


class SklearnAutolog:
    """Turns on ``mlflow.sklearn.autolog`` and adds system stats and the reference."""

    def __init__(self, runs: MonitoredRuns, knobs: SklearnKnobs) -> None:
        self.runs = runs
        self.knobs = knobs

    def configure(self, knobs: SklearnKnobs) -> None:
        """New knobs from a second ``autolog()`` call."""
        self.knobs = knobs

    def install(self, patches: PatchRegistry) -> None:
        """Both steps are undone by ``patches.undo_all()``, newest first."""
        if autologging_is_disabled("sklearn"):
            if not _enable_mlflow_sklearn_autolog_in_runs_only(self.knobs):
                return
            patches.add_undo(_disable_mlflow_sklearn_autolog)
        event_logger = autologging_event_logger_class()
        if event_logger is None:
            _logger.warning("mlflow-monitor: this MLflow has no autologging event hook; "
                            "sklearn fits get no system stats or reference from us")
            return
        events = _FitEvents(self, event_logger.get_logger())
        event_logger.set_logger(events)
        patches.add_undo(lambda: _restore_event_logger(event_logger, events))

    # -- called around the outermost original fit ---------------------------------------
    def fit_started(self, call_args: tuple, call_kwargs: dict) -> Optional[str]:
        """Monitor the fit's run (the active one) and log the reference; returns the run id."""
        import mlflow

        active = mlflow.active_run()
        if active is None:  # autolog skipped this fit (e.g. exclusive mode): nothing to add
            return None
        run_id = active.info.run_id
        try:
            self.runs.begin(run_id, owned=False, info=active.info)
        except Exception:
            _logger.warning("mlflow-monitor: could not start system stats for the sklearn fit", exc_info=True)
        if self.knobs.log_reference:
            self._log_reference(call_args, call_kwargs)
        return run_id

    def fit_ended(self, run_id: str, error: Optional[BaseException]) -> None:
        if error is not None:
            self.runs.mark_failed(run_id, error)
        self.runs.stop_sampling(run_id)
    def _log_reference(self, call_args: tuple, call_kwargs: dict) -> None:
        X = call_args[1] if len(call_args) > 1 else call_kwargs.get("X")
        y = call_args[2] if len(call_args) > 2 else call_kwargs.get("y")
        try:
            import pandas as pd

            if not isinstance(X, pd.DataFrame):
                return
            from mlflow_monitor.reference import log_reference

            import numpy as np

            frame, target = X, None
            labels = np.asarray(y) if y is not None else None
            if labels is not None and labels.ndim == 1 and len(labels) == len(X):
                target = str(getattr(y, "name", None) or "target")
                if target in X.columns:
                    target = f"{target}_target"
                frame = X.copy()
                frame[target] = labels
            log_reference(frame, target=target)
        except Exception:
            _logger.warning("mlflow-monitor: could not log the reference data of this fit", exc_info=True)


def _enable_mlflow_sklearn_autolog_in_runs_only(knobs: SklearnKnobs) -> bool:
    """``mlflow.sklearn.autolog()`` with its patches logging only into an active run; False
    (left off, with a warning) when this MLflow's managed-run wrapper cannot be replaced."""
    import mlflow.sklearn

    module = managed_run_module()
    if module is None:
        _logger.warning("mlflow-monitor: this MLflow's sklearn autolog cannot be kept from starting runs for "
                        "fits outside a run, so autolog() leaves it off; call mlflow.sklearn.autolog() "
                        "yourself to log sklearn fits")
        return False
    installing = PatchRegistry()  # only while mlflow.sklearn.autolog() installs its patches
    installing.patch(module, "with_managed_run", _in_runs_only(module.with_managed_run))
    try:
        mlflow.sklearn.autolog(log_models=knobs.log_models, silent=knobs.silent)
    finally:
        installing.undo_all()
    return True


def _in_runs_only(with_managed_run: Callable[..., Any]) -> Callable[..., Any]:
    """MLflow's ``with_managed_run``, except that the sklearn patch it wraps is skipped (the
    original fit runs as it is) when no run is active and no autologged fit is under way."""

    def wrap(autologging_integration: str, patch_function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        managed = with_managed_run(autologging_integration, patch_function, *args, **kwargs)
        if autologging_integration != "sklearn":
            return managed

        def patch_in_active_run(original: Callable[..., Any], *call_args: Any, **call_kwargs: Any) -> Any:
            import mlflow

            if mlflow.active_run() is None and not has_active_training_session():
                return original(*call_args, **call_kwargs)  # a fit outside any run: no run for it
            return managed(original, *call_args, **call_kwargs)

        return patch_in_active_run

    return wrap


def _disable_mlflow_sklearn_autolog() -> None:
    import mlflow.sklearn

    mlflow.sklearn.autolog(disable=True, silent=True)


def _restore_event_logger(event_logger: type, events: _FitEvents) -> None:
    """Put back the logger set before ours, unless someone replaced ours meanwhile."""
    if event_logger.get_logger() is not events:
        return
    previous = events.previous
    # MLflow's default is a fresh instance of the base class: restore "none set"
    event_logger.set_logger(None if type(previous) is event_logger else previous)

"""Which MLflow run the calling thread logs to, found cheaply enough for every training step.

:func:`active_run_id` reads MLflow's fluent run stack (through
:mod:`mlflow_monitor.mlflow_compat`, with ``mlflow.active_run()`` as the fallback) and
caches the id per ``ActiveRun`` object: about 0.1 us a call. The first time it sees a
run it pins that run, in the metrics pipeline, to the tracking URI in force now, so the
run's points keep going to that store if the tracking URI changes later.
:func:`ensure_run_id` also starts a run when none is active, like ``mlflow.log_metric``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import mlflow

from mlflow_monitor import mlflow_compat
from mlflow_monitor.metrics.pipeline import get_pipeline

__all__ = ["active_run_id", "ensure_run_id"]

_stack_local = mlflow_compat.active_run_stack_local()  # .value: (stack, pid), see there
_pid = os.getpid()
_run_cache: tuple[Any, Optional[str]] = (None, None)  # (ActiveRun, its run id)


def active_run_id() -> Optional[str]:
    """The calling thread's active MLflow run id, or None."""
    global _run_cache
    try:
        stack, pid = _stack_local.value  # inlined: this runs at every log call
    except (AttributeError, TypeError, ValueError):  # no run on this thread yet, or another layout
        run = mlflow.active_run()
        return run.info.run_id if run else None
    if not stack or pid != _pid:
        return None
    top = stack[-1]
    cached = _run_cache
    if top is cached[0]:
        return cached[1]
    run_id: str = top.info.run_id
    _run_cache = (top, run_id)
    _bind_current_uri(run_id)
    return run_id


def ensure_run_id() -> str:
    """The active run's id; starts a fluent run first when none is active."""
    run_id = active_run_id()
    if run_id is not None:
        return run_id
    run_id = mlflow.start_run().info.run_id
    _bind_current_uri(run_id)
    return run_id


def _bind_current_uri(run_id: str) -> None:
    """Pin a run to the tracking URI in force when it was first logged to (once per run)."""
    pipe = get_pipeline()
    if pipe.store_uri(run_id) is None:
        pipe.bind_run(run_id, mlflow.get_tracking_uri())


def _after_fork_in_child() -> None:
    global _pid, _run_cache
    _pid, _run_cache = os.getpid(), (None, None)


os.register_at_fork(after_in_child=_after_fork_in_child)

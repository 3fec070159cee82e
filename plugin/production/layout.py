"""Where production monitoring writes in the monitoring run's artifacts.

``mlflow_monitor/prod/``:

- ``partials/<day>/<window_id>/<worker_id>__<seq>.json`` (+ ``.parquet``): the partial
  state each worker delivered (``<day>`` = UTC day of the window start);
- ``windows/<day>/<window_id>/summary.json``: the merged window's numbers and which
  partials were merged; ``rows.parquet`` beside it: the union of those partials' row
  samples (the closer prunes merged partials once the window's late check is over);
- ``samples/slot-<n>.parquet``: the merged row sample of a window; ``n`` is the window's
  index modulo the retention cap, so at most that many samples are kept (a slot is
  overwritten by a later window; ``summary.json`` names the window a slot holds).
"""

from __future__ import annotations

from mlflow_monitor.windows import WindowKey
from mlflow_monitor.windows.stored import PARTIALS, PROD_ROOT, WINDOW_ROWS, WINDOWS  # one definition, read by core

__all__ = ["PARTIALS", "PROD_ROOT", "SAMPLES", "WINDOWS", "WINDOW_ROWS", "partial_folder", "sample_path",
           "summary_folder"]

SAMPLES = f"{PROD_ROOT}/samples"


def partial_folder(key: WindowKey) -> str:
    return f"{PARTIALS}/{key.day}/{key.window_id}"


def summary_folder(key: WindowKey) -> str:
    return f"{WINDOWS}/{key.day}/{key.window_id}"


def sample_path(key: WindowKey, retention: int) -> str:
    return f"{SAMPLES}/slot-{key.index % retention:05d}.parquet"

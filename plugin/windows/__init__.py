"""The window data model of production monitoring (a core package: it imports no service).

Per window and model version, mergeable state (:class:`WindowState`): exact category
counts; count, missing share, min, max and mean of numeric columns; a bounded uniform
row sample that merges exactly (:class:`RowSample`, bottom-k by prediction id); a
latency histogram in fixed log buckets (:class:`LatencyHistogram`); error counts by
status. Windows are keyed by (model, version, start, granularity) (:class:`WindowKey`)
and aligned to the epoch, with a granularity from 1 s to 1 day
(:func:`parse_granularity`). :mod:`.stored` reads a monitoring run's stored windows
back (labels, the gate's production evidence, ``prod status``).
"""

from mlflow_monitor.windows.categories import CategoryCounts
from mlflow_monitor.windows.column import ColumnState
from mlflow_monitor.windows.frames import PREDICTION_COLUMN, inputs_frame, predictions_frame
from mlflow_monitor.windows.granularity import format_granularity, parse_duration, parse_granularity, window_start
from mlflow_monitor.windows.key import WindowKey
from mlflow_monitor.windows.latency import LatencyHistogram
from mlflow_monitor.windows.numeric import NumericStats
from mlflow_monitor.windows.sample import DEFAULT_SAMPLE_ROWS, RowSample, id_hashes, sampled_mask
from mlflow_monitor.windows.state import STATE_FORMAT, WindowState
from mlflow_monitor.windows.stored import StoredWindow, find_monitoring_run, list_windows, read_window_rows

__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "PREDICTION_COLUMN",
    "STATE_FORMAT",
    "CategoryCounts",
    "ColumnState",
    "LatencyHistogram",
    "NumericStats",
    "RowSample",
    "WindowKey",
    "StoredWindow",
    "WindowState",
    "find_monitoring_run",
    "list_windows",
    "parse_duration",
    "read_window_rows",
    "format_granularity",
    "id_hashes",
    "inputs_frame",
    "parse_granularity",
    "predictions_frame",
    "sampled_mask",
    "window_start",
]

"""Production monitoring (a service package): capture served traffic into windows, merge
them across workers and replicas, and log them to the model version's monitoring run.

- :class:`Capture` (:mod:`.capture`): the request path (one ``deque.append``), the
  aggregator thread (:mod:`.aggregator`), the window spool on disk (:mod:`.window_spool`)
  and the delivery thread (:mod:`.delivery`);
- :class:`WindowCloser` (:mod:`.closer`): merges the partials of each window and logs its
  ``prod/*`` metrics (:mod:`.window_metrics`) and drift (:mod:`.window_drift`, the gate's
  engine) in the monitoring run (:mod:`.monitoring_run`, artifact layout in :mod:`.layout`).

- :func:`log_labels` (:mod:`.labels`): delayed labels joined to their windows, per-window
  performance; :mod:`.alerts`: drift, performance, latency and error alerts on the bus.

See ``docs/production.md``.
"""

from mlflow_monitor.production.batch import log_predictions
from mlflow_monitor.production.capture import Capture, new_prediction_ids
from mlflow_monitor.production.labels import LabelReport, log_labels
from mlflow_monitor.production.closer import CloserThread, WindowCloser, default_grace_s
from mlflow_monitor.production.monitoring_run import PROD_RUN_TAG, PROD_TAG, monitoring_run_id
from mlflow_monitor.production.pyfunc_wrapper import capturing_model_class, wrap_model

__all__ = [
    "PROD_RUN_TAG",
    "PROD_TAG",
    "Capture",
    "LabelReport",
    "CloserThread",
    "WindowCloser",
    "capturing_model_class",
    "default_grace_s",
    "log_labels",
    "log_predictions",
    "monitoring_run_id",
    "new_prediction_ids",
    "wrap_model",
]

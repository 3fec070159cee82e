"""The metrics pipeline: typed points, a hot-path buffer, a background flusher, a spool.

``log_metrics`` / ``flush`` are the public logging API (also ``mlflow_monitor.log_metrics``);
``get_pipeline`` gives the process-wide :class:`~mlflow_monitor.metrics.pipeline.MetricsPipeline`
(``append``, ``append_many``, ``add_observer``, ``bind_run``, ``store_uri``, ``flush``);
``replay_spools`` delivers what earlier processes left in the spool.

Modules: ``point`` (the one point shape and the buffer entries), ``api`` (log_metrics,
validation, ``current_step``), ``pipeline`` (buffer + flusher), ``materialize`` (tensors
to floats), ``destination`` (one store: ordered delivery, outage, replay), ``sender``
(log-batch requests), ``spool`` (the on-disk spool), ``sql_writer`` (bulk SQL rows),
``writer_process`` (embedded sqlite writes from a child process).
"""

from __future__ import annotations

from mlflow_monitor.metrics.api import flush, log_metrics
from mlflow_monitor.metrics.pipeline import MetricsPipeline, get_pipeline, replay_spools, reset_pipeline
from mlflow_monitor.metrics.point import MetricPoint

__all__ = ["MetricPoint", "MetricsPipeline", "flush", "get_pipeline", "log_metrics", "replay_spools",
           "reset_pipeline"]

"""Fast, exact per-column drift verdict with Evidently 0.7's ``DataDriftPreset`` defaults.

Evidently computes every column's stat test three times (``ValueDrift``, the legacy
``DatasetDriftMetric`` and ``DataDriftTable``) plus histograms, correlations and plots.
The gate only needs the verdict, so this package computes each column once, with the
same default test, threshold and drift rule:

- :mod:`.stattests`: the tests as declarative descriptors (name, kind, default
  threshold, score function, drift rule);
- :mod:`.defaults`: the table of which test a column gets;
- :mod:`.column_types`: Evidently's column-type inference;
- :mod:`.compute`: :func:`compute_drift`; :mod:`.result`: what it returns.

"Cleaned" data means +/-inf and NaN/None dropped from each side first, as Evidently does.
Wasserstein is divided by ``max(std(reference), 0.001)``; Jensen-Shannon runs on
per-value frequencies (natural log). The exact Wasserstein distance comes from one stable
merge of the two sorted samples instead of SciPy's mergesort plus two binary searches;
the arithmetic is the same, so the score matches ``scipy.stats.wasserstein_distance`` to
the last few bits. The reference side can come precomputed from a
:class:`~mlflow_monitor.reference.ReferenceProfile`.
"""

from mlflow_monitor.gate.drift.column_types import infer_column_types
from mlflow_monitor.gate.drift.compute import DEFAULT_DRIFT_SHARE, compute_drift
from mlflow_monitor.gate.drift.defaults import SMALL_REFERENCE_ROWS, default_stattest
from mlflow_monitor.gate.drift.result import ColumnDrift, DriftResult
from mlflow_monitor.gate.drift.stattests import STAT_TESTS, StatTest

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "SMALL_REFERENCE_ROWS",
    "STAT_TESTS",
    "ColumnDrift",
    "DriftResult",
    "StatTest",
    "compute_drift",
    "default_stattest",
    "infer_column_types",
]

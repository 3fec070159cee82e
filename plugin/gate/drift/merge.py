"""Two numeric samples merged once: the distinct-value count and the Wasserstein inputs."""

from __future__ import annotations

import numpy as np

from mlflow_monitor.reference import ColumnSample

__all__ = ["SortedMerge"]


class SortedMerge:
    """The sorted reference and current values of one column, merged in one stable pass.

    ``from_reference[k]``: how many of the first ``k + 1`` merged values came from the
    reference; ``deltas``: gaps between successive merged values; ``n_unique``: distinct
    values over both sides (what Evidently's default-test choice counts).
    """

    __slots__ = ("from_reference", "deltas", "n_unique")

    def __init__(self, reference: ColumnSample, current: ColumnSample) -> None:
        merged, from_reference = _merged(reference.sorted64(), current.sorted64())
        deltas = np.diff(merged)
        del merged
        self.from_reference = from_reference
        self.deltas = deltas
        self.n_unique = int(np.count_nonzero(deltas)) + 1


def _merged(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted samples: merged values and, per position, how many came from ``u``."""
    both = np.concatenate((u, v))
    order = np.argsort(both, kind="stable")  # two sorted runs: an O(n) timsort merge
    merged = both[order]
    del both
    from_u = order < len(u)
    del order
    return merged, np.cumsum(from_u)

"""What the drift verdict returns: one :class:`ColumnDrift` per column, and the
dataset-level :class:`DriftResult`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from mlflow_monitor.gate.drift.stattests import STAT_TESTS

__all__ = ["ColumnDrift", "DriftResult"]


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column, as Evidently's default stat test decides it."""

    column: str
    column_type: str  # "num" | "cat"
    method: str  # Evidently stattest name: wasserstein, jensenshannon, ks, chisquare, z
    threshold: float
    score: float  # distance (wasserstein, jensenshannon) or p-value (ks, chisquare, z)
    drifted: bool

    @property
    def severity(self) -> float:
        """How far past (> 1) or short of (< 1) the threshold the score is."""
        if STAT_TESTS[self.method].kind == "p_value":
            return math.inf if self.score <= 0 else self.threshold / self.score
        return self.score / self.threshold


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift plus the dataset-level share, like Evidently's ``DriftedColumnsCount``."""

    columns: list[ColumnDrift]
    n_columns: int
    n_drifted: int
    drift_share: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    skipped: tuple[str, ...] = field(default=())  # text/datetime/unknown columns not checked

    def top(self, n: int) -> list[ColumnDrift]:
        """The ``n`` most drifted columns: drifted ones first, then by score vs threshold."""
        return sorted(self.columns, key=lambda c: (not c.drifted, -c.severity, c.column))[:n]

    def column(self, name: str) -> ColumnDrift:
        """The result for one column; KeyError names it when it was not checked."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(f"column {name!r} was not checked for drift")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = list(self.skipped)
        return d

"""What the drift verdict returns: one :class:`ColumnDrift` per column, and the
dataset-level :class:`DriftResult`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

from mlflow_monitor.gate.drift.findings import FINDING_METRICS, ColumnFindings
from mlflow_monitor.gate.drift.stattests import STAT_TESTS

__all__ = ["ColumnDrift", "DriftResult"]


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column: Evidently's default stat test and threshold (``detection ==
    "evidently"``), or a distance against its calibrated threshold (``"calibrated"``).

    ``threshold`` is the threshold applied. Calibrated: ``max(calibrated_threshold,
    effect_floor)``, drifted when ``score > threshold``; ``alpha`` is the per-test false-alarm
    rate the calibrated threshold was set for.
    """

    column: str
    column_type: str  # "num" | "cat"
    method: str  # Evidently stattest name: wasserstein, jensenshannon, ks, chisquare, z
    threshold: float
    score: float  # distance (wasserstein, jensenshannon) or p-value (ks, chisquare, z)
    drifted: bool
    detection: str = "evidently"  # "evidently" | "calibrated"
    calibrated_threshold: Optional[float] = None
    effect_floor: Optional[float] = None
    alpha: Optional[float] = None
    findings: Optional[ColumnFindings] = None

    @property
    def severity(self) -> float:
        """How far past (> 1) or short of (< 1) the threshold the score is."""
        if STAT_TESTS[self.method].kind == "p_value":
            return math.inf if self.score <= 0 else self.threshold / self.score
        if self.threshold <= 0:
            return math.inf if self.score > 0 else 0.0
        return self.score / self.threshold


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift plus the dataset-level share, like Evidently's ``DriftedColumnsCount``.

    ``method`` is the detection (``evidently`` or ``calibrated``); ``alpha`` the
    dataset-level false-alarm rate and ``n_tests`` the tests it was divided over (calibrated),
    ``new_category_alpha_share`` and ``distribution_alpha_share`` the shares of it the
    new-category and the distribution tests got (``None``: by test count; each column's
    per-test alphas are in its result);
    ``key_columns`` weigh ``key_weight`` in :attr:`weighted_drift_share`.
    """

    columns: list[ColumnDrift]
    n_columns: int
    n_drifted: int
    drift_share: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    skipped: tuple[str, ...] = field(default=())  # text/datetime/unknown columns not checked
    method: str = "evidently"
    alpha: Optional[float] = None
    n_tests: int = 0
    new_category_alpha_share: Optional[float] = None
    distribution_alpha_share: Optional[float] = None
    key_columns: tuple[str, ...] = field(default=())
    key_weight: float = 1.0

    @property
    def weighted_drift_share(self) -> float:
        """Drifted share with each key column weighing ``key_weight`` and the others 1."""
        keys = set(self.key_columns)
        weights = [self.key_weight if c.column in keys else 1.0 for c in self.columns]
        total = sum(weights)
        return sum(w for w, c in zip(weights, self.columns) if c.drifted) / total if total else 0.0

    def finding(self, name: str) -> float:
        """Dataset value of a finding metric (``missing_share_increase``,
        ``new_category_share``, ``out_of_range_share``): its largest value over the columns
        where it counts (:meth:`ColumnFindings.counts`), else 0; ``type_changes``: how many
        columns changed type family."""
        if name == "type_changes":
            return float(sum(1 for c in self.columns if c.findings is not None and c.findings.type_changed))
        if name not in FINDING_METRICS:
            raise KeyError(f"unknown finding {name!r}; expected one of {', '.join(FINDING_METRICS)}, type_changes")
        values = [float(getattr(c.findings, name)) for c in self.columns
                  if c.findings is not None and c.findings.counts(name)]
        return max(values, default=0.0)

    def rule_values(self) -> dict[str, float]:
        """Every drift metric a rule may name, by name."""
        out = {"drift_share": float(self.drift_share), "n_drifted": float(self.n_drifted),
               "weighted_drift_share": self.weighted_drift_share}
        for name in (*FINDING_METRICS, "type_changes"):
            out[name] = self.finding(name)
        return out

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
        d["key_columns"] = list(self.key_columns)
        d["columns"] = [_column_dict(c) for c in self.columns]
        d.update(self.rule_values())
        return d


def _column_dict(c: ColumnDrift) -> dict:
    d = asdict(c)
    d["findings"] = c.findings.to_dict() if c.findings is not None else None
    return d

"""Data-quality findings that run with the drift verdict, one set per column.

- missing-share change: the share of missing (NaN/None/inf) rows in each side;
- new categories: the share of current rows whose category the reference never saw
  (categorical columns);
- out of range: the share of current values below the reference minimum or above its
  maximum (numerical columns);
- type change: the column's type family (number, bool, text, datetime) in each side.

Each finding that can fire by chance comes with its null: missing-share increase with
Fisher's exact test (one-sided, hypergeometric), out-of-range with the exact rank bound
(under "no drift" the chance that the top ``k`` of ``n + m`` exchangeable values are all
current ones is ``prod (m - i) / (n + m - i)``), new categories with the calibrated
bootstrap (:mod:`.calibration`). ``significant`` says which are beyond chance at the
per-test alpha (``None`` in Evidently mode, which does no calibration).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

from scipy import stats

from mlflow_monitor.reference import ColumnSample

__all__ = ["FINDING_METRICS", "ColumnFindings", "exceed_p_value", "missing_p_value", "type_family"]

#: Rule metric name -> the :class:`ColumnFindings` field it takes the maximum of.
FINDING_METRICS = ("missing_share_increase", "new_category_share", "out_of_range_share")
_EXAMPLES = 5  # new categories named in a finding


@dataclass(frozen=True)
class ColumnFindings:
    """The data-quality findings of one column (shares are of rows, 0..1)."""

    reference_missing_share: float
    current_missing_share: float
    missing_share_increase: float  # current - reference (negative: fewer missing)
    missing_p_value: float  # one-sided: the increase is chance
    reference_type: str
    current_type: str
    new_category_share: Optional[float] = None  # categorical columns
    new_categories: tuple[str, ...] = ()  # up to 5 of them, as text
    new_category_threshold: Optional[float] = None  # calibrated null quantile
    new_category_alpha: Optional[float] = None  # the per-test alpha that threshold is for
    out_of_range_share: Optional[float] = None  # numerical columns
    out_of_range_p_value: Optional[float] = None
    significant: Optional[dict[str, bool]] = None  # finding -> beyond chance (calibrated mode)
    quality_alpha: Optional[float] = None  # the per-test alpha of the missing-share and out-of-range tests

    @property
    def type_changed(self) -> bool:
        return self.reference_type != self.current_type

    def counts(self, name: str) -> bool:
        """Whether finding ``name`` counts toward its rule metric: beyond chance when
        calibrated, any non-zero value otherwise."""
        value = getattr(self, name)
        if value is None or value <= 0:
            return False
        return True if self.significant is None else bool(self.significant.get(name, False))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["new_categories"] = list(self.new_categories)
        d["type_changed"] = self.type_changed
        return d


def type_family(dtype: str) -> str:
    """``number``, ``bool``, ``text``, ``datetime`` or ``other`` for a dtype name
    (int and float are both numbers; object, str, string and category are text)."""
    name = str(dtype).lower()
    if name.startswith(("int", "uint", "float")):
        return "number"
    if name in ("bool", "boolean"):
        return "bool"
    if name in ("object", "str", "string", "category") or name.startswith("string"):
        return "text"
    if name.startswith(("datetime", "timedelta", "period")):
        return "datetime"
    return "other"


def missing_p_value(ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int) -> float:
    """Fisher's exact one-sided p-value that the current missing share is this much higher."""
    if cur_missing == 0 or ref_rows + cur_rows == 0:
        return 1.0
    total = ref_rows + cur_rows
    return float(min(1.0, stats.hypergeom.sf(cur_missing - 1, total, ref_missing + cur_missing, cur_rows)))


def exceed_p_value(k: int, n: int, m: int) -> float:
    """P(the ``k`` largest of ``n`` reference and ``m`` current exchangeable values are all
    current) = prod_{i<k} (m - i) / (n + m - i)."""
    if k <= 0:
        return 1.0
    if k > m:
        return 0.0
    log_p = (math.lgamma(m + 1) - math.lgamma(m - k + 1)
             - math.lgamma(n + m + 1) + math.lgamma(n + m - k + 1))
    return math.exp(log_p)


def out_of_range(ref: ColumnSample, cur: ColumnSample) -> tuple[float, float]:
    """``(share, p_value)`` of current values outside the reference's [min, max]; the
    p-value is two-sided (twice the smaller side's)."""
    import numpy as np

    r, c = ref.sorted64(), cur.sorted64()
    below = int(np.searchsorted(c, r[0], side="left"))
    above = int(len(c) - np.searchsorted(c, r[-1], side="right"))
    p = min(1.0, 2.0 * min(exceed_p_value(below, len(r), len(c)), exceed_p_value(above, len(r), len(c))))
    return (below + above) / len(c), p


def new_categories(ref: ColumnSample, cur: ColumnSample, cur_rows: int) -> tuple[float, tuple[str, ...]]:
    """Share of all current rows whose (non-missing) value the reference never saw, and a
    few of those values."""
    rc = ref.counts()
    unseen = [(k, v) for k, v in cur.counts().items() if k not in rc]
    unseen.sort(key=lambda kv: (-kv[1], str(kv[0])))
    share = sum(v for _, v in unseen) / cur_rows if cur_rows else 0.0
    return share, tuple(str(k) for k, _ in unseen[:_EXAMPLES])

"""Which stat test a column gets: Evidently 0.7's ``DataDriftPreset`` defaults, as a table.

Mirrors ``evidently.legacy.calculations.stattests.registry._get_default_stattest``. Rows
are tried in order; the first that matches the column type, the reference size and the
number of distinct values (over both sides, after cleaning) decides:

==========  ============  ===================  =============
reference    column type   distinct values      test
==========  ============  ===================  =============
> 1000       num           <= 5                 jensenshannon
> 1000       num           any                  wasserstein
> 1000       cat           any                  jensenshannon
<= 1000      num           <= 2                 z
<= 1000      num           <= 5                 chisquare
<= 1000      num           any                  ks
<= 1000      cat           <= 2                 z
<= 1000      cat           any                  chisquare
==========  ============  ===================  =============

The row count is of the cleaned reference column (NaN and +/-inf dropped), as in Evidently.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from mlflow_monitor.gate.drift.stattests import CHISQUARE, JENSENSHANNON, KS, WASSERSTEIN, Z, StatTest

__all__ = ["DEFAULT_TESTS", "SMALL_REFERENCE_ROWS", "DefaultTest", "default_stattest"]

SMALL_REFERENCE_ROWS = 1000  # Evidently switches from distances to p-value tests at or below this


@dataclasses.dataclass(frozen=True)
class DefaultTest:
    """One row of the table: ``test`` for ``column_type`` columns whose cleaned reference
    has at most (``small_reference``) or more than 1000 rows, and at most ``max_unique``
    distinct values (``None``: any number)."""

    column_type: str  # "num" | "cat"
    small_reference: bool
    max_unique: Optional[int]
    test: StatTest

    def matches(self, column_type: str, small_reference: bool, n_unique: Callable[[], int]) -> bool:
        if self.column_type != column_type or self.small_reference != small_reference:
            return False
        return self.max_unique is None or n_unique() <= self.max_unique


DEFAULT_TESTS: tuple[DefaultTest, ...] = (
    DefaultTest("num", False, 5, JENSENSHANNON),
    DefaultTest("num", False, None, WASSERSTEIN),
    DefaultTest("cat", False, None, JENSENSHANNON),
    DefaultTest("num", True, 2, Z),
    DefaultTest("num", True, 5, CHISQUARE),
    DefaultTest("num", True, None, KS),
    DefaultTest("cat", True, 2, Z),
    DefaultTest("cat", True, None, CHISQUARE),
)


def default_stattest(column_type: str, reference_rows: int, n_unique: Callable[[], int]) -> StatTest:
    """The test for a column; ``n_unique`` is called only when a row needs it."""
    small = reference_rows <= SMALL_REFERENCE_ROWS
    for row in DEFAULT_TESTS:
        if row.matches(column_type, small, n_unique):
            return row.test
    raise ValueError(f"column type must be 'num' or 'cat', got {column_type!r}")

"""The stat-test descriptors and the default-test table agree with Evidently's registry."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from mlflow_monitor.gate.drift import SMALL_REFERENCE_ROWS, STAT_TESTS, default_stattest

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")


def _evidently_tests() -> dict:
    from evidently.legacy.calculations.stattests import (
        chi_stat_test,
        jensenshannon_stat_test,
        ks_stat_test,
        wasserstein_stat_test,
        z_stat_test,
    )

    return {t.name: t for t in (chi_stat_test, jensenshannon_stat_test, ks_stat_test,
                                wasserstein_stat_test, z_stat_test)}


def test_every_descriptor_has_evidentlys_name_and_default_threshold():
    theirs = _evidently_tests()

    assert set(STAT_TESTS) == set(theirs)
    for name, test in STAT_TESTS.items():
        assert test.default_threshold == theirs[name].default_threshold, name


@pytest.mark.parametrize(("name", "score", "drifted"), [
    ("wasserstein", 0.1, True), ("wasserstein", 0.0999, False),
    ("jensenshannon", 0.1, True), ("ks", 0.05, True), ("ks", 0.0501, False),
    ("chisquare", 0.05, False), ("chisquare", 0.0499, True), ("z", 0.05, False), ("z", 0.01, True),
])
def test_each_descriptor_decides_at_its_threshold_like_evidently(name, score, drifted):
    assert STAT_TESTS[name].drifted(score) is drifted


def test_p_value_tests_are_the_ones_evidently_calls_p_values():
    kinds = {name: t.kind for name, t in STAT_TESTS.items()}

    assert kinds == {"wasserstein": "distance", "jensenshannon": "distance", "ks": "p_value",
                     "chisquare": "p_value", "z": "p_value"}


@pytest.mark.parametrize(("column_type", "rows", "n_unique"), list(itertools.product(
    ["num", "cat"], [SMALL_REFERENCE_ROWS - 10, SMALL_REFERENCE_ROWS + 10], [2, 3, 5, 6, 12])))
def test_default_table_picks_evidentlys_default_test(column_type, rows, n_unique):
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType

    values = [float(i % n_unique) for i in range(rows)]
    reference = pd.Series(values)
    current = pd.Series(values[:200])
    ctype = ColumnType.Numerical if column_type == "num" else ColumnType.Categorical
    theirs = _get_default_stattest(reference, current, ctype).name

    assert default_stattest(column_type, rows, lambda: n_unique).name == theirs


def test_n_unique_is_not_counted_for_large_categorical_references():
    def refuse() -> int:
        raise AssertionError("counted")

    assert default_stattest("cat", SMALL_REFERENCE_ROWS + 1, refuse).name == "jensenshannon"

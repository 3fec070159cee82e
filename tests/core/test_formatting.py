"""The one number formatter (mlflow_monitor.formatting)."""

from __future__ import annotations

import math

import pytest

from mlflow_monitor.formatting import format_number, format_signed


@pytest.mark.parametrize("value, text", [
    (None, "n/a"), (0.123456, "0.1235"), (3, "3"), (1e-9, "1e-09"), (math.nan, "nan"),
    (math.inf, "inf"), ("accuracy", "accuracy"), (True, "True"), (12345.6, "1.235e+04"),
])
def test_numbers_have_four_significant_digits(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("value, text", [(12345.6, "12,346"), (999.5, "999.5"), (2e12, "2e+12"),
                                         (math.inf, "inf")])
def test_thousands_are_written_whole_between_1e4_and_1e12(value, text):
    assert format_number(value, thousands=True) == text


@pytest.mark.parametrize("value, text", [(0.0123, "+0.0123"), (-2, "-2"), (None, "n/a")])
def test_differences_carry_their_sign(value, text):
    assert format_signed(value) == text

"""Data-quality findings next to the drift verdict, with values computed by hand."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.gate.drift import compute_drift
from mlflow_monitor.gate.drift.calibration import Calibrator
from mlflow_monitor.gate.drift.findings import exceed_p_value, missing_p_value, type_family
from mlflow_monitor.recipes.schema import DriftSettings

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _both(ref: pd.DataFrame, cur: pd.DataFrame, tmp_path, **kw):
    ev = compute_drift(ref, cur, **kw)
    cal = compute_drift(ref, cur, settings=DriftSettings(), calibrator=Calibrator(tmp_path), **kw)
    return ev, cal


def test_missing_share_change_and_its_exact_p_value(tmp_path):
    ref = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8, np.nan, np.nan]})  # 2 of 10 missing
    cur = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, np.nan, np.nan, np.nan, np.nan, np.nan]})  # 5 of 10
    for result in _both(ref, cur, tmp_path):
        f = result.column("x").findings
        assert (f.reference_missing_share, f.current_missing_share) == (0.2, 0.5)
        assert f.missing_share_increase == pytest.approx(0.3)
        # Fisher one-sided: P(X >= 5), X ~ Hypergeom(20 rows, 7 missing, 10 drawn)
        by_hand = sum(comb(7, k) * comb(13, 10 - k) for k in range(5, 8)) / comb(20, 10)
        assert f.missing_p_value == pytest.approx(by_hand)
    assert missing_p_value(0, 10, 0, 10) == 1.0


def test_values_out_of_the_reference_range_and_the_rank_bound(tmp_path):
    ref = pd.DataFrame({"x": np.arange(10.0)})  # 0..9
    cur = pd.DataFrame({"x": [-1.0, 5.0, 10.0, 11.0]})  # 1 below, 2 above
    for result in _both(ref, cur, tmp_path, numerical=["x"]):
        f = result.column("x").findings
        assert f.out_of_range_share == 0.75
        # below: P(the lowest of 14 is current) = 4/14; above: (4 * 3) / (14 * 13); twice the smaller
        assert f.out_of_range_p_value == pytest.approx(2 * (4 * 3) / (14 * 13))
        assert f.new_category_share is None
    assert exceed_p_value(0, 10, 4) == 1.0 and exceed_p_value(5, 10, 4) == 0.0


def test_share_of_rows_with_categories_unseen_in_the_reference(tmp_path):
    ref = pd.DataFrame({"c": ["a", "b", "a", "b", "a", "b"]})
    cur = pd.DataFrame({"c": ["a", "z", "z", "y", None, "b", "a", "b"]})
    ev, cal = _both(ref, cur, tmp_path, categorical=["c"])
    for result in (ev, cal):
        f = result.column("c").findings
        assert f.new_category_share == pytest.approx(3 / 8)  # z, z, y of 8 rows (None is missing)
        assert f.new_categories == ("z", "y")
        assert f.current_missing_share == 1 / 8 and f.out_of_range_share is None
    assert ev.column("c").findings.significant is None  # Evidently mode: no calibration
    assert set(cal.column("c").findings.significant) == {"missing_share_increase", "new_category_share"}


def test_type_family_change_is_reported(tmp_path):
    ref = pd.DataFrame({"code": [1, 2, 3, 1, 2, 3]})
    cur = pd.DataFrame({"code": ["1", "2", "3", "1", "2", "3"]})
    for result in _both(ref, cur, tmp_path, categorical=["code"]):
        f = result.column("code").findings
        assert (f.reference_type, f.current_type, f.type_changed) == ("number", "text", True)
        assert result.finding("type_changes") == 1.0
    assert [type_family(t) for t in ("int64", "Float32", "bool", "object", "category", "datetime64[ns]", "x")] == \
        ["number", "number", "bool", "text", "text", "datetime", "other"]


def test_dataset_finding_is_the_largest_column_value_that_counts(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    cur = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    cur.loc[: int(0.2 * n) - 1, "a"] = np.nan  # a: +20 points missing, beyond chance
    cur.loc[:3, "b"] = np.nan  # b: 4 rows, +0.1 point: chance at this size
    result = compute_drift(ref, cur, settings=DriftSettings(), calibrator=Calibrator(tmp_path))
    a, b = result.column("a").findings, result.column("b").findings
    assert a.significant["missing_share_increase"] and not b.significant["missing_share_increase"]
    assert result.finding("missing_share_increase") == pytest.approx(0.2)
    ev = compute_drift(ref, cur)  # Evidently mode counts every positive value
    assert ev.finding("missing_share_increase") == pytest.approx(0.2)
    with pytest.raises(KeyError, match="unknown finding 'nope'"):
        result.finding("nope")


def test_findings_are_in_the_result_dict():
    ref = pd.DataFrame({"c": ["a", "b"] * 5})
    cur = pd.DataFrame({"c": ["a", "q"] * 5})
    d = compute_drift(ref, cur).to_dict()
    col = d["columns"][0]
    assert col["findings"]["new_category_share"] == 0.5 and col["findings"]["new_categories"] == ["q"]
    assert d["new_category_share"] == 0.5 and d["method"] == "evidently"

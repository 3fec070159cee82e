"""Calibrated drift detection: null quantiles against brute-force oracles, the alpha
correction, the effect floor, the cache, and missing values / new categories being seen."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from mlflow_monitor.gate.drift import compute_drift
from mlflow_monitor.gate.drift.calibration import (
    Calibrator,
    NullTail,
    js_rows,
    permutation_counts,
    permutation_wasserstein,
    refine_js_threshold,
    replicates_for,
    scale_to,
    simulate,
    size_bucket,
)
from mlflow_monitor.recipes.schema import DriftSettings, EffectFloor
from mlflow_monitor.reference import ColumnSample, ReferenceProfile
from mlflow_monitor.reference.null_tail import (
    DISTRIBUTION_DRAW_COUNTS,
    DISTRIBUTION_TAIL,
    NEW_CATEGORY_TAIL,
    new_category_replicates,
    split_alpha,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CAL = DriftSettings()


def _sample(values) -> ColumnSample:
    return ColumnSample(values=np.asarray(values, dtype=np.float64))


def _exact_tail_check(tail: NullTail, exact: np.ndarray, alpha: float, tol: float) -> None:
    """The Monte Carlo threshold is an (1 - alpha) quantile of the exact distribution:
    P(S > t) <= alpha and P(S >= t) >= alpha, up to Monte Carlo error ``tol``."""
    t = tail.threshold(alpha)
    assert np.mean(exact > t + 1e-12) <= alpha + tol
    assert np.mean(exact >= t - 1e-12) >= alpha - tol


# -- oracles -------------------------------------------------------------------------------
def _normed_wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    return stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)


def test_wasserstein_permutation_null_matches_full_enumeration():
    ref = np.array([0.3, 1.1, 2.0, 2.2, 3.5, 4.0, 7.5])
    cur = np.array([0.9, 2.8, 5.1, 6.0])
    pooled = np.concatenate((ref, cur))
    exact = []
    for idx in itertools.combinations(range(len(pooled)), len(cur)):  # all 330 splits
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        exact.append(_normed_wasserstein(pooled[~mask], pooled[mask]))
    exact_arr = np.array(exact)
    tail = permutation_wasserstein(_sample(ref), _sample(cur), replicates=20_000, seed=1)
    for alpha in (0.02, 0.05, 0.1):
        _exact_tail_check(tail, exact_arr, alpha, tol=0.006)


def test_count_permutation_null_matches_full_enumeration_with_new_categories():
    # rows: reference a a a b b c, current a b d d (d unseen in the reference); the last
    # value slot is the missing-value atom (1 missing row in each side)
    ref_rows = ["a", "a", "a", "b", "b", "c", None]
    cur_rows = ["a", "b", "d", "d", None]
    keys = ["a", "b", "c", "d", None]
    pooled = ref_rows + cur_rows
    exact_js, exact_new = [], []
    for idx in itertools.combinations(range(len(pooled)), len(cur_rows)):  # 792 splits
        cur = [pooled[i] for i in idx]
        ref = [pooled[i] for i in range(len(pooled)) if i not in idx]
        r = np.array([ref.count(k) for k in keys], float)
        c = np.array([cur.count(k) for k in keys], float)
        exact_js.append(distance.jensenshannon(r / r.sum(), c / c.sum()))
        exact_new.append(sum(1 for v in cur if v is not None and v not in ref) / len(cur))
    r0 = np.array([ref_rows.count(k) for k in keys], float)
    c0 = np.array([cur_rows.count(k) for k in keys], float)
    tail = permutation_counts(r0, c0, replicates=20_000, seed=2, missing_index=4)
    js, new = np.array(exact_js), np.array(exact_new)
    for alpha in (0.05, 0.1):
        _exact_tail_check(tail, js, alpha, tol=0.006)
        t = tail.threshold(alpha, "new_category")
        assert np.mean(new > t + 1e-12) <= alpha + 0.006
        assert np.mean(new >= t - 1e-12) >= alpha - 0.006


def test_bootstrap_null_matches_brute_force_resampling():
    """The atom multinomial bootstrap is resampling rows of the reference with replacement."""
    rng = np.random.default_rng(3)
    ref = rng.lognormal(0, 0.7, 300)  # < 512 distinct values: the atoms are exact
    m = 120
    oracle = np.array([stats.wasserstein_distance(rng.choice(ref, len(ref)), rng.choice(ref, m))
                       / max(np.std(ref), 0.001) for _ in range(6000)])
    tail = simulate(_sample(ref), current=m, replicates=6000, seed=4)
    for alpha in (0.02, 0.05, 0.1):
        q = np.quantile(oracle, 1 - alpha)
        assert tail.threshold(alpha) == pytest.approx(q, rel=0.06)


# -- buckets, thresholds and the alpha correction -------------------------------------------
def test_size_buckets_are_a_half_octave_grid_at_or_below_the_size():
    assert [size_bucket(m) for m in (1, 7, 10, 13, 14, 20, 99, 100, 113, 1_000_000)] == \
        [1, 7, 10, 10, 14, 20, 80, 80, 113, 926819]
    for m in range(1, 5000, 37):
        assert size_bucket(m) <= m < max(10, size_bucket(m) * 1.42)


def test_threshold_is_the_kth_largest_and_refuses_unresolvable_alpha():
    tail = NullTail(99, 50, np.array([9.0, 8.0, 7.0, 6.0]))
    assert tail.threshold(0.01) == 9.0  # k = floor(0.01 * 100) = 1
    assert tail.threshold(0.03) == 7.0
    with pytest.raises(ValueError, match="99 replicates cannot resolve alpha 0.001"):
        tail.threshold(0.001)
    assert replicates_for(0.01 / 30) == 3000
    assert replicates_for(0.05) == 1000


def test_scaling_follows_the_square_root_law_and_never_raises_a_threshold():
    assert scale_to(0.2, 1000, 100, 100) == 0.2
    assert scale_to(0.2, 1000, 100, 50) == 0.2
    assert scale_to(0.2, 1000, 100, 140) == pytest.approx(0.2 * math.sqrt((1 / 1000 + 1 / 140) / (1 / 1000 + 1 / 100)))


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, n), "y": rng.lognormal(0, 1, n),
                         "c": rng.choice(["a", "b", "c"], n).astype(object)})


def test_alpha_is_divided_over_every_test_and_stated_in_the_result(tmp_path):
    cal = Calibrator(tmp_path)
    result = compute_drift(_frame(3000, 0), _frame(1000, 1), settings=DriftSettings(alpha=0.03), calibrator=cal)
    assert result.method == "calibrated" and result.alpha == 0.03
    assert result.n_tests == 9  # 3 columns x (distribution, missing share, new categories / range)
    for c in result.columns:
        assert c.detection == "calibrated"
        assert c.alpha == pytest.approx(0.03 / 9)
        assert c.threshold == max(c.calibrated_threshold, c.effect_floor)
        assert c.drifted is (c.score > c.threshold)
    assert [c.effect_floor for c in result.columns] == [0.1, 0.1, 0.03]


def test_effect_floor_keeps_a_trivial_difference_on_huge_data_from_drifting(tmp_path):
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1, 200_000)})  # 0.05 sd: real, but trivial
    settings = DriftSettings(effect_floor=EffectFloor(numerical=0.1))
    col = compute_drift(ref, cur, settings=settings, calibrator=Calibrator(tmp_path)).column("x")
    assert col.calibrated_threshold < col.score < col.effect_floor  # significant, not material
    assert not col.drifted and col.threshold == 0.1
    no_floor = DriftSettings(effect_floor=EffectFloor(numerical=0.0))
    assert compute_drift(ref, cur, settings=no_floor, calibrator=Calibrator(tmp_path)).column("x").drifted


def test_real_shift_drifts_and_unshifted_columns_do_not(tmp_path):
    result = compute_drift(_frame(2000, 0), _frame(2000, 1, shift=0.5), settings=CAL,
                           calibrator=Calibrator(tmp_path))
    assert [c.column for c in result.columns if c.drifted] == ["x"]


def test_evidently_mode_is_the_default_api_and_keeps_evidentlys_thresholds():
    ref, cur = _frame(600, 0), _frame(600, 1, shift=0.3)
    a = compute_drift(ref, cur)
    b = compute_drift(ref, cur, settings=DriftSettings(method="evidently"))
    assert a.method == b.method == "evidently"
    assert [(c.method, c.threshold, c.score, c.drifted) for c in a.columns] == \
        [(c.method, c.threshold, c.score, c.drifted) for c in b.columns]
    assert {c.method for c in a.columns} == {"ks", "chisquare"}
    assert all(c.calibrated_threshold is None for c in a.columns)


# -- missing values and new categories are seen ----------------------------------------------
def test_missing_values_in_a_categorical_column_are_part_of_its_distribution(tmp_path):
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"c": rng.choice(["a", "b"], 4000).astype(object)})
    cur = pd.DataFrame({"c": rng.choice(["a", "b"], 4000).astype(object)})
    ref.loc[rng.random(4000) < 0.05, "c"] = None
    cur.loc[rng.random(4000) < 0.40, "c"] = None  # same a/b mix among the present values
    col = compute_drift(ref, cur, settings=CAL, calibrator=Calibrator(tmp_path)).column("c")
    assert col.drifted
    assert col.findings.missing_share_increase == pytest.approx(0.35, abs=0.03)
    assert col.findings.significant["missing_share_increase"]
    assert not compute_drift(ref, cur).column("c").drifted  # Evidently drops them


def test_new_categories_are_seen_and_a_sparse_column_is_not_flagged_for_its_tail(tmp_path):
    rng = np.random.default_rng(7)
    levels = [f"v{i}" for i in range(60)]
    p = 1 / np.arange(1, 61)
    p /= p.sum()
    ref = pd.DataFrame({"c": rng.choice(levels, 300, p=p).astype(object)})
    cur = pd.DataFrame({"c": rng.choice(levels, 300, p=p).astype(object)})
    col = compute_drift(ref, cur, settings=CAL, calibrator=Calibrator(tmp_path)).column("c")
    assert col.findings.new_category_share > 0  # rare levels the reference missed ...
    assert not col.findings.significant["new_category_share"] and not col.drifted  # ... are chance
    cur2 = cur.copy()
    cur2.loc[:29, "c"] = "brand_new"  # 10% of rows
    col2 = compute_drift(ref, cur2, settings=CAL, calibrator=Calibrator(tmp_path)).column("c")
    assert col2.findings.new_categories[0] == "brand_new"
    assert col2.findings.significant["new_category_share"]


# -- the alpha split between new-category tests and the others ------------------------------
def test_split_alpha_weights_sum_to_alpha_and_refuse_bad_input():
    dist, quality, new = split_alpha(0.01, 10, 4, 0.6)
    assert new == pytest.approx(0.01 * 0.6 / 4)
    assert dist == pytest.approx(0.01 * 0.4 / 26) and quality == pytest.approx(0.01 * 0.4 / 26)
    assert 4 * new + 26 * dist == pytest.approx(0.01)  # Bonferroni: the family still has alpha
    assert split_alpha(0.01, 10, 4, None) == pytest.approx((0.01 / 30,) * 3)
    assert split_alpha(0.01, 10, 0, 0.6) == pytest.approx((0.01 / 30,) * 3)
    with pytest.raises(ValueError, match=r"new_category_share must be in \(0, 1\), got 1.0"):
        split_alpha(0.01, 10, 4, 1.0)
    with pytest.raises(ValueError, match=r"n_categorical must be in \[0, 10\], got 11"):
        split_alpha(0.01, 10, 11, 0.5)
    with pytest.raises(ValueError, match="at least one column, got 0"):
        split_alpha(0.01, 0, 0, 0.5)
    # enough replicates that NEW_CATEGORY_TAIL of them lie beyond the threshold
    assert math.floor(new * (new_category_replicates(new) + 1)) == NEW_CATEGORY_TAIL


def test_split_alpha_gives_the_distribution_tests_their_share():
    # the built-in split over the benchmark's 10 columns, 4 categorical: 10 distribution
    # tests, 16 quality tests (10 missing share, 6 out of range), 4 new-category tests
    split = split_alpha(0.01, 10, 4, 0.6, 0.3)
    assert split == pytest.approx((0.003 / 10, 0.001 / 16, 0.006 / 4))
    assert 10 * split.distribution + 16 * split.quality + 4 * split.new_category == pytest.approx(0.01)
    # only the distribution share set: the other two groups share the rest by test count
    only = split_alpha(0.01, 10, 4, None, 0.5)
    assert only == pytest.approx((0.005 / 10, 0.005 / 20, 0.005 / 20))
    # no categorical column: the new-category share is not spent, the others scale up
    numeric = split_alpha(0.01, 6, 0, 0.6, 0.3)
    assert numeric == pytest.approx((0.0075 / 6, 0.0025 / 12, 0.01 / 18))
    assert 6 * numeric.distribution + 12 * numeric.quality == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"distribution_share must be in \(0, 1\), got 0.0"):
        split_alpha(0.01, 10, 4, 0.6, 0.0)
    with pytest.raises(ValueError, match=r"must be below 1 \(the quality tests need some alpha\), got 0.6 \+ 0.4"):
        split_alpha(0.01, 10, 4, 0.6, 0.4)


def test_distribution_share_reaches_each_test_and_the_result(tmp_path):
    ref, cur = _frame(600, 40), _frame(600, 41)
    settings = DriftSettings(alpha=0.01, new_category_alpha_share=0.6, distribution_alpha_share=0.3)
    result = compute_drift(ref, cur, settings=settings, calibrator=Calibrator(tmp_path))
    n, c = result.n_columns, sum(col.column_type == "cat" for col in result.columns)
    assert c >= 1 and result.distribution_alpha_share == 0.3
    assert result.to_dict()["distribution_alpha_share"] == 0.3
    for col in result.columns:
        assert col.alpha == pytest.approx(0.003 / n)
        assert col.findings.quality_alpha == pytest.approx(0.001 / (2 * n - c))
    family = sum(col.alpha + col.findings.quality_alpha * (1 if col.column_type == "cat" else 2)
                 + (col.findings.new_category_alpha or 0.0) for col in result.columns)
    assert family == pytest.approx(0.01)


def test_refined_threshold_is_the_same_decision_as_drawing_every_replicate():
    """The sequential draw stops once DISTRIBUTION_TAIL replicates reach the score; its
    decision must equal that of all R = ceil(10 / alpha) replicates (the oracle: the full
    permutation tail, drawn with the same generator)."""
    alpha = 3e-4
    rng = np.random.default_rng(5)
    ref = rng.multinomial(5000, [0.5, 0.3, 0.2]).astype(float)
    total = math.ceil(DISTRIBUTION_TAIL / alpha)
    for shift, seed in [(0.0, 1), (0.03, 2), (0.05, 3), (0.08, 4)]:
        cur = rng.multinomial(5000, [0.5 + shift, 0.3 - shift, 0.2]).astype(float)
        score = float(js_rows(ref / ref.sum(), cur / cur.sum()))
        first = permutation_counts(ref, cur, replicates=math.ceil(1 / alpha), seed=seed)
        refined = refine_js_threshold(ref, cur, score, alpha, first=first, seed=seed + 100)
        # the oracle: the first draw's replicates plus the rest, all of them
        rest = permutation_counts(ref, cur, replicates=total - first.replicates, seed=seed + 100)
        k = math.floor(alpha * (total + 1))
        exceed_first = int((first.distribution >= score).sum())
        if exceed_first >= k:  # settled by the first draw: not called, and says so
            assert refined >= score
            continue
        full_top = np.sort(np.concatenate([first.distribution, rest.distribution]))[::-1]
        assert (score > refined) == (score > full_top[k - 1])
    # a score far beyond every replicate: all R drawn, the exact k-th largest, called
    cur = rng.multinomial(5000, [0.6, 0.2, 0.2]).astype(float)
    score = float(js_rows(ref / ref.sum(), cur / cur.sum()))
    first = permutation_counts(ref, cur, replicates=math.ceil(1 / alpha), seed=9)
    assert score > refine_js_threshold(ref, cur, score, alpha, first=first, seed=10)


def test_refined_threshold_of_a_many_valued_column_stays_within_its_draw_budget():
    """2,000 values: DISTRIBUTION_DRAW_COUNTS allows fewer replicates than the first draw
    already has, so the first draw's threshold stands (no further draw, whatever the score)."""
    alpha, values = 3e-4, 2000
    assert DISTRIBUTION_DRAW_COUNTS // values < math.ceil(1 / alpha) < math.ceil(DISTRIBUTION_TAIL / alpha)
    rng = np.random.default_rng(11)
    ref = rng.multinomial(100_000, np.full(values, 1 / values)).astype(float)
    cur = rng.multinomial(100_000, np.full(values, 1 / values)).astype(float)
    first = permutation_counts(ref, cur, replicates=math.ceil(1 / alpha), seed=1)
    assert refine_js_threshold(ref, cur, 1.0, alpha, first=first, seed=2) == first.threshold(alpha)


def test_refined_threshold_settles_a_noisy_monte_carlo_tail():
    """One replicate beyond the threshold (R = 1 / alpha) spreads it over the upper tail;
    ten beyond it (the refinement) narrow it. Oracle: the chi-square limit of the JS
    divergence, JS^2 ~ chi2(k - 1) (n + m) / (8 n m), at 5,000 / 5,000 rows."""
    from scipy.stats import chi2
    alpha, n = 3e-4, 5000
    target = math.sqrt(chi2.ppf(1 - alpha, 2) * (2 * n) / (8 * n * n))  # about 0.028
    ref = np.array([2500.0, 1500.0, 1000.0])
    coarse, fine = [], []
    for seed in range(30):
        first = permutation_counts(ref, ref, replicates=math.ceil(1 / alpha), seed=seed)
        coarse.append(first.threshold(alpha))
        fine.append(refine_js_threshold(ref, ref, 1.0, alpha, first=first, seed=seed + 1000))
    assert np.std(fine) < 0.6 * np.std(coarse)
    assert abs(np.median(fine) - target) < 0.1 * target


def _cat_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"c{i}": rng.choice(["a", "b", "c", "d", "e"], n).astype(object) for i in range(4)})


def test_new_category_share_of_alpha_is_what_calls_ten_new_rows_at_a_thousand(tmp_path):
    ref, cur = _cat_frame(1000, 30), _cat_frame(1000, 31)
    cur.loc[:9, "c0"] = "NEW"  # exactly 1% of the current rows
    # under "no drift" all 10 rows of a value land in the current half with this probability:
    h10 = math.comb(1000, 10) / math.comb(2000, 10)
    assert 0.0009 < h10 < 0.001

    def run(share):
        result = compute_drift(ref, cur, settings=DriftSettings(alpha=0.01, new_category_alpha_share=share),
                               calibrator=Calibrator(tmp_path))
        return result, result.column("c0")

    equal, col = run(None)  # 1/1200 per test > h10: still called, at 12 tests
    assert col.findings.new_category_alpha == pytest.approx(0.01 / 12) and col.alpha == pytest.approx(0.01 / 12)
    result, col = run(0.6)  # 0.0015 per new-category test (> h10): called
    assert result.new_category_alpha_share == 0.6 and result.to_dict()["new_category_alpha_share"] == 0.6
    assert col.findings.new_category_alpha == pytest.approx(0.0015)
    assert col.alpha == pytest.approx(0.004 / 8)  # the other 8 tests share the rest
    assert col.findings.new_category_share == 0.01 and col.findings.significant["new_category_share"]
    assert col.findings.new_category_threshold < 0.01
    low, col = run(0.1)  # 0.00025 per new-category test (< h10): no valid test calls it
    assert col.findings.new_category_alpha == pytest.approx(0.00025)
    assert not col.findings.significant["new_category_share"]
    assert col.findings.new_category_threshold == pytest.approx(0.01)  # 10 rows are within chance
    for r in (equal, result, low):
        assert sum(c.alpha * 2 + c.findings.new_category_alpha for c in r.columns) == pytest.approx(0.01)


def test_new_category_split_leaves_evidently_mode_untouched():
    ref, cur = _cat_frame(600, 32), _cat_frame(600, 33)
    cur.loc[:5, "c1"] = "NEW"
    plain = compute_drift(ref, cur, settings=DriftSettings(method="evidently"))
    split = compute_drift(ref, cur, settings=DriftSettings(method="evidently", new_category_alpha_share=0.6))
    assert plain.to_dict() == split.to_dict() and split.new_category_alpha_share is None


# -- the cache ------------------------------------------------------------------------------
def test_bootstrap_calibration_is_cached_in_memory_and_in_a_private_file(tmp_path):
    ref, cur = _frame(5000, 0)[["x"]], _frame(4000, 1)[["x"]]
    cal = Calibrator(tmp_path)
    first = compute_drift(ref, cur, settings=CAL, calibrator=cal).column("x")
    assert cal.computed == 1
    again = compute_drift(ref, _frame(4100, 2)[["x"]], settings=CAL, calibrator=cal)  # same bucket
    assert cal.computed == 1
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    fresh = Calibrator(tmp_path)  # a new process: read from the file
    assert compute_drift(ref, cur, settings=CAL, calibrator=fresh).column("x") == first
    assert fresh.computed == 0
    files[0].write_text("{not json")
    broken = Calibrator(tmp_path)
    assert compute_drift(ref, cur, settings=CAL, calibrator=broken).column("x") == first  # recomputed
    assert broken.computed == 1 and json.loads(files[0].read_text())["entries"]
    assert again.column("x").calibrated_threshold is not None


def test_profile_keeps_the_column_hash_so_a_promotion_does_not_rehash(tmp_path):
    ref = _frame(5000, 0)
    blob = ReferenceProfile.from_frame(ref).to_bytes()
    with np.load(io.BytesIO(blob)) as z:
        header = json.loads(z["header"].tobytes().decode())
    profile = ReferenceProfile.from_bytes(blob)
    for col in ref.columns:
        kind = "num" if col != "c" else "cat"
        fresh = ColumnSample.from_series(ref[col], col, "reference", kind)
        assert header["columns"][col]["digest"] == fresh.digest() == profile.side(col).digest()
    cur = _frame(3000, 1)
    cal = Calibrator(tmp_path)
    a = compute_drift(ref, cur, settings=CAL, calibrator=cal)
    b = compute_drift(None, cur, profile=profile, settings=CAL, calibrator=cal)
    for x, y in zip(a.columns, b.columns):  # same calibration, scores to the last bits
        assert (x.threshold, x.calibrated_threshold, x.drifted, x.findings) == \
            (y.threshold, y.calibrated_threshold, y.drifted, y.findings)
        assert x.score == pytest.approx(y.score, rel=1e-12)


def test_normal_limit_bootstrap_agrees_with_exact_multinomials_at_its_switch():
    rng = np.random.default_rng(8)
    ref = _sample(rng.lognormal(0, 1, 5000))
    exact = simulate(ref, current=1999, replicates=4000, seed=9)  # multinomial counts
    normal = simulate(ref, current=2000, replicates=4000, seed=9)  # their normal limit
    for alpha in (0.02, 0.05, 0.1):
        assert normal.threshold(alpha) == pytest.approx(exact.threshold(alpha), rel=0.06)


def test_categorical_thresholds_do_not_depend_on_the_process_hash_seed(tmp_path):
    import subprocess
    import sys

    script = (
        "import numpy as np, pandas as pd\n"
        "from mlflow_monitor.gate.drift import compute_drift\n"
        "from mlflow_monitor.gate.drift.calibration import Calibrator\n"
        "from mlflow_monitor.recipes.schema import DriftSettings\n"
        "rng = np.random.default_rng(0)\n"
        "cats = [f'v{i}' for i in range(12)]\n"
        "ref = pd.DataFrame({'c': rng.choice(cats, 800)})\n"
        "cur = pd.DataFrame({'c': rng.choice(cats + ['new'], 800)})\n"
        "col = compute_drift(ref, cur, categorical=['c'], settings=DriftSettings(),\n"
        "                    calibrator=Calibrator(persist=False)).column('c')\n"
        "print(repr(col.calibrated_threshold), repr(col.findings.new_category_threshold))\n"
    )
    outs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2, 3, 4)}
    assert len(outs) == 1, outs

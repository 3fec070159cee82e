"""The fast drift verdict gives Evidently's own per-column methods, scores and decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.gate.drift import (
    ColumnDrift,
    DriftResult,
    compute_drift,
    infer_column_types,
)
from mlflow_monitor.gate.validation import DataValidationError
from mlflow_monitor.reference import ReferenceProfile

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Every column kind Evidently distinguishes; ``shift`` moves some of them."""
    rng = np.random.default_rng(seed)
    cat_p = [0.4, 0.3, 0.2, 0.1] if shift == 0 else [0.1, 0.2, 0.3, 0.4]
    df = pd.DataFrame(
        {
            "shifted": rng.normal(shift, 1.0, n),
            "stable": rng.normal(0.0, 1.0, n),
            "float32": rng.normal(0.0, 1.0, n).astype(np.float32),
            "few_values": rng.choice([0.0, 1.0, 2.5], n),
            "binary_num": rng.choice([0.0, 1.0], n),
            "int_wide": rng.integers(0, 1000, n),
            "int_narrow": rng.integers(0, 4, n),
            "multi_cat": rng.choice(["x", "y", "z", "w"], n, p=cat_p),
            "binary_cat": rng.choice(["yes", "no"], n),
            "flag": rng.choice([True, False], n),
            "<script>&": rng.choice(["a", "b", "c"], n),
        }
    )
    df.loc[::7, "shifted"] = np.nan
    df.loc[::11, "stable"] = np.nan
    df["multi_cat"] = df["multi_cat"].astype(object)
    df.loc[::5, "multi_cat"] = None
    return df


def _evidently(reference, current, numerical=None, categorical=None) -> dict:
    """Run Evidently's DataDriftPreset and read back what it decided per column."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests import registry
    from evidently.presets import DataDriftPreset

    names = {st.display_name: st.name for d in registry._registered_stat_tests.values() for st in d.values()}
    if numerical is not None or categorical is not None:
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        current = Dataset.from_pandas(current, data_definition=definition)
        reference = Dataset.from_pandas(reference, data_definition=definition)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference).dict()
    status = {
        t["metric_config"]["params"]["column"]: t["status"]
        for t in snapshot["tests"]
        if t["id"] == "drift"
    }
    columns, count = {}, None
    for m in snapshot["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            columns[cfg["column"]] = (
                names[cfg["method"]],
                cfg["threshold"],
                float(m["value"]),
                str(status[cfg["column"]]).endswith("FAIL"),
            )
        elif cfg["type"].endswith("DriftedColumnsCount"):
            count = m["value"]
    return {"columns": columns, "count": count["count"], "share": count["share"]}


SCENARIOS = {
    # name: (reference rows, current rows): above and at/below Evidently's 1000-row switch
    "large_reference": (3000, 500),
    "small_reference": (500, 400),
    "small_reference_big_current": (800, 3000),
}


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scenario(request):
    n_ref, n_cur = SCENARIOS[request.param]
    reference = _frame(n_ref, seed=1)
    current = _frame(n_cur, seed=2, shift=0.4)
    return reference, current, _evidently(reference, current)


def _assert_same_as_evidently(ours: DriftResult, theirs: dict) -> None:
    assert {c.column for c in ours.columns} == set(theirs["columns"])
    for col in ours.columns:
        method, threshold, score, drifted = theirs["columns"][col.column]
        assert (col.column, col.method, col.threshold) == (col.column, method, threshold)
        assert col.score == pytest.approx(score, abs=1e-6), col.column
        assert col.drifted is drifted, col.column
    assert ours.n_drifted == theirs["count"]
    assert ours.drift_share == pytest.approx(theirs["share"], abs=1e-12)
    assert ours.dataset_drift is (theirs["share"] >= 0.5)


def test_methods_thresholds_scores_and_decisions_equal_evidentlys(scenario):
    reference, current, theirs = scenario
    ours = compute_drift(reference, current)
    _assert_same_as_evidently(ours, theirs)
    assert 0 < ours.n_drifted < ours.n_columns  # the scenario has both outcomes
    assert (ours.reference_rows, ours.current_rows) == (len(reference), len(current))


def test_reference_profile_round_trip_gives_evidentlys_verdict_without_the_frame(scenario):
    reference, current, theirs = scenario
    profile = ReferenceProfile.from_bytes(ReferenceProfile.from_frame(reference).to_bytes())
    ours = compute_drift(None, current, profile=profile)
    _assert_same_as_evidently(ours, theirs)
    assert ours.reference_rows == len(reference)


def test_scenarios_cover_every_default_method():
    seen = set()
    for n_ref, n_cur in SCENARIOS.values():
        result = compute_drift(_frame(n_ref, 1), _frame(n_cur, 2, shift=0.4))
        seen |= {(c.column_type, c.method) for c in result.columns}
    assert seen >= {
        ("num", "wasserstein"), ("num", "jensenshannon"), ("cat", "jensenshannon"),
        ("num", "ks"), ("num", "chisquare"), ("num", "z"), ("cat", "chisquare"), ("cat", "z"),
    }


def test_explicit_column_types_match_evidently_with_the_same_data_definition():
    reference, current = _frame(2000, 3), _frame(700, 4, shift=0.4)
    numerical, categorical = ["shifted", "int_narrow"], ["few_values", "multi_cat"]
    theirs = _evidently(reference, current, numerical=numerical, categorical=categorical)
    ours = compute_drift(reference, current, numerical=numerical, categorical=categorical)
    assert [c.column_type for c in ours.columns] == ["num", "num", "cat", "cat"]
    _assert_same_as_evidently(ours, theirs)


def test_column_types_are_inferred_from_current_data_like_evidently():
    from evidently.core.datasets import infer_column_type
    from evidently.legacy.core import ColumnType

    n = 30
    current = pd.DataFrame(
        {
            "f": np.linspace(0, 1, n),
            "i_few": np.arange(n) % 3,
            "i_many": np.arange(n),
            "s": np.array(["a", "b", "c"])[np.arange(n) % 3],
            "s_object": pd.Series(["a", "b"] * (n // 2), dtype=object),
            "text": [f"note {i}" for i in range(n)],
            "flag": np.arange(n) % 2 == 0,
            "when": pd.date_range("2024-01-01", periods=n),
        }
    )
    num, cat, skipped = infer_column_types(current)
    expected = {ColumnType.Numerical: [], ColumnType.Categorical: []}
    for col in current.columns:
        expected.setdefault(infer_column_type(current[col]), []).append(col)
    assert (num, cat) == (expected[ColumnType.Numerical], expected[ColumnType.Categorical])
    assert (num, cat) == (["f", "i_many"], ["i_few", "s", "s_object", "flag"])
    assert skipped == ["text", "when"]


def test_text_columns_are_skipped_and_reported():
    reference = pd.DataFrame({"x": np.arange(50, dtype=float), "note": [f"n{i}" for i in range(50)]})
    result = compute_drift(reference, reference.copy())
    assert [c.column for c in result.columns] == ["x"]
    assert result.skipped == ("note",)


def test_column_named_like_markup_is_checked_like_any_other():
    reference, current = _frame(1500, 5), _frame(1500, 6, shift=0.4)
    result = compute_drift(reference, current)
    col = result.column("<script>&")
    assert (col.column_type, col.method) == ("cat", "jensenshannon")
    assert result.to_dict()["columns"][-1]["column"] == "<script>&"


def test_top_lists_drifted_columns_first_then_by_distance_past_threshold():
    result = DriftResult(
        columns=[
            ColumnDrift("calm", "num", "wasserstein", 0.1, 0.02, False),
            ColumnDrift("wild", "num", "wasserstein", 0.1, 0.9, True),
            ColumnDrift("p_small", "num", "ks", 0.05, 1e-9, True),
            ColumnDrift("mild", "cat", "jensenshannon", 0.1, 0.2, True),
        ],
        n_columns=4, n_drifted=3, drift_share=0.75, dataset_drift=True,
        reference_rows=10, current_rows=10,
    )
    assert [c.column for c in result.top(3)] == ["p_small", "wild", "mild"]
    assert [c.column for c in result.top(10)][-1] == "calm"


def test_missing_column_in_current_data_raises_naming_it():
    reference = _frame(1200, 1)
    with pytest.raises(DataValidationError, match="'stable' is missing from the current data"):
        compute_drift(reference, _frame(300, 2).drop(columns=["stable"]), numerical=["stable"])


def test_column_without_finite_values_raises_naming_side():
    reference, current = _frame(1200, 1), _frame(300, 2)
    current["stable"] = np.nan
    with pytest.raises(DataValidationError, match="'stable' has no finite, non-null values in current"):
        compute_drift(reference, current, numerical=["stable"], categorical=[])


def test_text_in_a_numerical_column_raises():
    reference, current = _frame(1200, 1), _frame(300, 2)
    with pytest.raises(DataValidationError, match="'binary_cat' should be numerical"):
        compute_drift(reference, current, numerical=["binary_cat"], categorical=[])


def test_profile_leaves_out_columns_it_cannot_store_and_says_why():
    reference = pd.DataFrame(
        {
            "x": np.arange(40, dtype=float),
            "pairs": pd.Series([(1, 2), (3, 4)] * 20, dtype=object),
            "when": pd.date_range("2024-01-01", periods=40),
            "empty": np.nan,
        }
    )
    profile = ReferenceProfile.from_bytes(ReferenceProfile.from_frame(reference).to_bytes())
    assert profile.columns == ["x"]
    assert set(profile.unprofiled) == {"pairs", "when", "empty"}
    with pytest.raises(DataValidationError, match="'pairs' is not in the reference profile: it holds a tuple"):
        compute_drift(None, reference, categorical=["pairs"], numerical=[], profile=profile)
    with pytest.raises(DataValidationError, match="'empty' is not in the reference profile: it has no finite"):
        compute_drift(None, reference.assign(empty=1.0), numerical=["empty"], categorical=[], profile=profile)


def test_profile_from_another_format_is_rejected():
    blob = ReferenceProfile.from_frame(pd.DataFrame({"x": [1.0, 2.0]})).to_bytes()
    import io
    import json

    with np.load(io.BytesIO(blob)) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    header["format"] = "something/9"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="format is 'something/9'"):
        ReferenceProfile.from_bytes(buf.getvalue())


def test_profile_keeps_large_integers_exact():
    big = 2**60
    reference = pd.DataFrame({"id_like": np.arange(big, big + 2000, dtype=np.int64)})
    profile = ReferenceProfile.from_bytes(ReferenceProfile.from_frame(reference).to_bytes())
    with_frame = compute_drift(reference, reference.iloc[:700], numerical=["id_like"])
    with_profile = compute_drift(None, reference.iloc[:700], numerical=["id_like"], profile=profile)
    assert with_profile.columns == with_frame.columns


def test_threaded_columns_give_the_same_result_in_the_same_order():
    reference, current = _frame(4000, 7), _frame(3000, 8, shift=0.4)
    assert compute_drift(reference, current, workers=3) == compute_drift(reference, current, workers=1)


@pytest.mark.parametrize("n_ref, n_cur", [(1500, 1500), (2500, 1200), (1001, 40000)])
def test_wasserstein_score_equals_scipy_on_ties_and_unequal_sizes(n_ref, n_cur):
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(n_ref + n_cur)
    reference = pd.DataFrame({"x": rng.integers(0, 40, n_ref).astype(float) / 4})
    current = pd.DataFrame({"x": rng.integers(3, 50, n_cur).astype(float) / 4})
    (col,) = compute_drift(reference, current, numerical=["x"]).columns
    expected = wasserstein_distance(reference["x"], current["x"]) / max(np.std(reference["x"]), 0.001)
    assert col.method == "wasserstein"
    assert col.score == pytest.approx(expected, rel=1e-12)


def test_constant_reference_column_uses_evidentlys_minimum_norm():
    from scipy.stats import wasserstein_distance

    reference = pd.DataFrame({"x": np.full(2000, 7.0)})
    current = pd.DataFrame({"x": 7.0 + (np.arange(1500) % 7) * 1e-4})
    (col,) = compute_drift(reference, current, numerical=["x"]).columns
    assert col.method == "wasserstein"
    assert col.score == pytest.approx(wasserstein_distance(reference["x"], current["x"]) / 0.001, rel=1e-9)
    assert col.drifted and np.isfinite(col.score)  # W = 3e-4, over the 0.001 floor: 0.3



def test_the_1000_row_switch_counts_reference_rows_after_dropping_nan_like_evidently():
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"one_nan": rng.normal(0, 1, 1001), "no_nan": rng.normal(0, 1, 1001)})
    reference.loc[500, "one_nan"] = np.nan  # 1000 usable rows: the p-value regime
    current = pd.DataFrame({"one_nan": rng.normal(0.3, 1, 400), "no_nan": rng.normal(0.3, 1, 400)})
    theirs = _evidently(reference, current)
    ours = compute_drift(reference, current)
    assert [(c.column, c.method) for c in ours.columns] == [("one_nan", "ks"), ("no_nan", "wasserstein")]
    _assert_same_as_evidently(ours, theirs)


def test_column_listed_as_both_types_is_refused():
    reference = _frame(1200, 1)
    with pytest.raises(DataValidationError, match=r"columns \['stable'\] are listed as both"):
        compute_drift(reference, reference, numerical=["stable"], categorical=["stable", "flag"])


def test_dataset_drift_uses_the_given_share_threshold():
    reference, current = _frame(1500, 1), _frame(1500, 2, shift=0.4)
    result = compute_drift(reference, current)
    assert 0 < result.drift_share < 0.5 and not result.dataset_drift
    assert compute_drift(reference, current, drift_share=result.drift_share).dataset_drift
    with pytest.raises(ValueError, match=r"drift_share must be in \(0, 1\], got 1.5"):
        compute_drift(reference, current, drift_share=1.5)

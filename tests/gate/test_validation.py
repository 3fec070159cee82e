"""Bad reference/current data is refused with a message naming the column, expected and actual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.gate.validation import DataValidationError, validate_frames


def _reference() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31.0, 45.0, 27.0, 52.0],
            "visits": [1, 4, 2, 7],
            "city": ["Oslo", "Rome", "Oslo", "Lima"],
            "label": [0, 1, 0, 1],
        }
    )


def _check(reference, current, **kwargs) -> str:
    before = (reference.copy(deep=True), current.copy(deep=True))
    with pytest.raises(DataValidationError) as info:
        validate_frames(reference, current, **kwargs)
    pd.testing.assert_frame_equal(reference, before[0])  # nothing was changed
    pd.testing.assert_frame_equal(current, before[1])
    return str(info.value)


def test_good_frames_pass():
    validate_frames(_reference(), _reference(), target="label", need_target=True)


def test_data_validation_error_is_a_value_error():
    assert issubclass(DataValidationError, ValueError)


def test_empty_current_frame_is_refused():
    msg = _check(_reference(), _reference().iloc[:0])
    assert msg == "current data is empty: expected at least one row, got 0"


def test_reference_without_columns_is_refused():
    msg = _check(pd.DataFrame(index=range(3)), _reference())
    assert msg == "reference data is empty: expected at least one column, got 0"


def test_non_dataframe_is_refused_naming_its_type():
    with pytest.raises(DataValidationError, match="current data must be a pandas DataFrame, got list"):
        validate_frames(_reference(), [1, 2, 3])  # type: ignore[arg-type]


def test_missing_current_column_is_named():
    msg = _check(_reference(), _reference().drop(columns=["city"]))
    assert msg.startswith("column 'city' is missing from the current data")
    assert "'age'" in msg  # lists what the current data has


def test_every_missing_column_is_named():
    msg = _check(_reference(), _reference()[["age"]])
    assert "columns ['visits', 'city', 'label'] are missing from the current data" in msg


def test_requested_column_missing_from_reference_is_named():
    current = _reference().assign(extra=1.0)
    msg = _check(_reference(), current, columns=["age", "extra"])
    assert msg.startswith("column 'extra' is missing from the reference data")


def test_only_requested_columns_are_checked():
    current = _reference().drop(columns=["city"])
    validate_frames(_reference(), current, columns=["age", "visits"])


def test_columns_given_as_one_string_is_refused():
    msg = _check(_reference(), _reference(), columns="age")  # type: ignore[arg-type]
    assert msg == "columns must be a list of column names, got the string 'age'"


def test_dtype_mismatch_names_column_and_both_dtypes():
    current = _reference()
    current["age"] = current["age"].astype(str).astype(object)
    msg = _check(_reference(), current)
    assert msg == "column 'age' is float64 in reference but object in current data"


def test_integer_and_float_columns_are_compatible():
    current = _reference()
    current["age"] = current["age"].astype(int)
    current["visits"] = current["visits"].astype("float32")
    validate_frames(_reference(), current)


def test_string_category_and_object_columns_are_compatible():
    current = _reference()
    current["city"] = current["city"].astype("category")
    validate_frames(_reference(), current)


def test_bool_and_number_columns_are_a_mismatch():
    current = _reference()
    current["label"] = current["label"].astype(bool)
    msg = _check(_reference(), current)
    assert msg == "column 'label' is int64 in reference but bool in current data"


def test_all_nan_column_is_refused_naming_the_side():
    current = _reference()
    current["age"] = np.nan
    msg = _check(_reference(), current)
    assert msg == "column 'age' is all NaN in current data (4 rows); expected at least one value"


def test_all_none_reference_column_is_refused():
    reference = _reference()
    reference["city"] = pd.Series([None] * 4, dtype=object)
    msg = _check(reference, _reference())
    assert msg.startswith("column 'city' is all NaN in reference data")


def test_inf_values_are_refused_with_their_count():
    current = _reference()
    current.loc[[0, 2], "age"] = [np.inf, -np.inf]
    msg = _check(_reference(), current)
    assert msg == (
        "column 'age' has 2 inf values in current data; expected finite numbers (drop or replace them)"
    )


def test_inf_in_reference_is_refused():
    reference = _reference()
    reference.loc[1, "age"] = np.inf
    assert "column 'age' has 1 inf value in reference data" in _check(reference, _reference())


def test_performance_rule_without_configured_target_is_refused():
    msg = _check(_reference(), _reference(), need_target=True)
    assert msg == "a performance rule needs a target column, but no target column is configured"


def test_performance_rule_with_target_missing_from_current_is_refused():
    current = _reference().drop(columns=["label"])
    msg = _check(_reference(), current, columns=["age"], target="label", need_target=True)
    assert msg.startswith("a performance rule needs the target column 'label', which is missing")


def test_target_missing_is_fine_without_a_performance_rule():
    current = _reference().drop(columns=["label"])
    validate_frames(_reference(), current, columns=["age", "city"], target="label")


def test_duplicate_column_in_current_data_is_refused():
    current = pd.concat([_reference(), _reference()[["age"]]], axis=1)
    msg = _check(_reference(), current)
    assert msg == "column 'age' appears 2 times in current data; expected once"


def test_markup_in_column_name_is_quoted_not_interpreted():
    reference = _reference().rename(columns={"city": "<script>&"})
    msg = _check(reference, reference.drop(columns=["<script>&"]))
    assert msg.startswith("column '<script>&' is missing from the current data")

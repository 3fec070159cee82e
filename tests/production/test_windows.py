"""The window data model: granularity parsing, exact merges against pandas, the bottom-k
sample (uniform, exact and idempotent merge), latency quantiles, serialization."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.windows import (
    LatencyHistogram,
    RowSample,
    WindowKey,
    WindowState,
    format_granularity,
    id_hashes,
    parse_granularity,
    window_start,
)

KEY = WindowKey("m", "1", 1_764_583_200, 300)


@pytest.mark.parametrize("text,seconds", [("1s", 1), ("5m", 300), ("1h", 3600), ("1d", 86_400),
                                          (" 15M ", 900), ("90s", 90), (60, 60)])
def test_granularity_parses(text, seconds):
    assert parse_granularity(text) == seconds


@pytest.mark.parametrize("bad", ["0s", "2d", "5", "m5", "1.5m", "-1s", "", "5 minutes", True, 0, 86_401, 1.5, None])
def test_bad_granularity_is_a_clear_error(bad):
    with pytest.raises(ValueError) as err:
        parse_granularity(bad)
    assert repr(bad) in str(err.value) and "1s to 1d" in str(err.value)


def test_format_and_window_start():
    assert [format_granularity(s) for s in (1, 90, 300, 3600, 86_400)] == ["1s", "90s", "5m", "1h", "1d"]
    assert window_start(1_764_583_499.9, 300) == 1_764_583_200
    assert KEY.window_id == "20251201T100000Z-5m" and KEY.day == "2025-12-01"
    assert KEY.end == KEY.start + 300 and KEY.index == KEY.start // 300
    with pytest.raises(ValueError, match="finite"):
        window_start(math.nan, 5)


def _frame(rng, n, offset=0):
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "n": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 50, n).astype(float)),
        "c": rng.choice(["a", "b", "c", None], n, p=[0.5, 0.3, 0.15, 0.05]),
        "flag": rng.random(n) < 0.3,
    }), [f"id-{offset + i}" for i in range(n)]


def _state(frame, ids, preds, sample_rows=400):
    st = WindowState(KEY, sample_rows=sample_rows)
    st.add_rows(frame, preds, ids, id_hashes(ids))
    return st


def test_merged_partials_equal_pandas_on_all_rows():
    """The oracle: three workers' partials, merged, give pandas' numbers on the union."""
    rng = np.random.default_rng(0)
    parts, frames, all_preds = [], [], []
    for w in range(3):
        frame, ids = _frame(rng, 1000 + 137 * w, offset=10_000 * w)
        preds = pd.DataFrame({"prediction": rng.choice([0, 1], len(frame))})
        parts.append(_state(frame, ids, preds))
        frames.append(frame)
        all_preds.append(preds)
    merged = WindowState(KEY, sample_rows=400)
    for p in parts:
        merged.merge(WindowState.from_dict(json.loads(json.dumps(p.to_dict())), p.sample.to_parquet()))
    everything = pd.concat(frames, ignore_index=True)
    preds = pd.concat(all_preds, ignore_index=True)
    assert merged.rows == merged.sampled_rows == len(everything)
    x = merged.columns["x"].numeric
    assert x.count == everything["x"].count()
    assert x.mean == pytest.approx(everything["x"].mean(), rel=1e-12)
    assert x.std == pytest.approx(everything["x"].std(ddof=0), rel=1e-9)
    assert (x.min, x.max) == (everything["x"].min(), everything["x"].max())
    assert merged.missing_share("n") == pytest.approx(everything["n"].isna().mean(), abs=0)
    assert merged.missing_share("c") == everything["c"].isna().mean()
    assert merged.columns["c"].categories.counts == everything["c"].value_counts().to_dict()
    assert merged.columns["flag"].categories.counts == everything["flag"].value_counts().to_dict()
    assert merged.predictions["prediction"].numeric.mean == pytest.approx(preds["prediction"].mean(), rel=1e-12)
    # the merged sample is the bottom-k of all rows: the same as sampling the union at once
    union = _state(everything, [i for f in (0, 1, 2) for i in
                                [f"id-{10_000 * f + j}" for j in range(1000 + 137 * f)]], preds)
    assert list(merged.sample.frame()["__prediction_id"]) == list(union.sample.frame()["__prediction_id"])


def test_sample_merge_is_idempotent_and_bounded():
    rng = np.random.default_rng(1)
    frame, ids = _frame(rng, 3000)
    a = RowSample(500)
    a.add(frame, ids, id_hashes(ids))
    once = a.frame().copy()
    a.merge(RowSample.from_parquet(a.to_parquet(), 500))  # the same rows again
    again = RowSample(500)
    again.add(frame.iloc[:1500], ids[:1500], id_hashes(ids[:1500]))
    a.merge(again)
    assert len(a) == 500
    pd.testing.assert_frame_equal(a.frame().reset_index(drop=True), once.reset_index(drop=True))
    assert a.frame()["__prediction_id"].is_unique


def test_sample_is_uniform():
    """Bottom-k by id hash keeps each row with the same chance: the sample's mean of an
    index column is within a few standard errors of the population mean, over many ids."""
    n, k = 200_000, 2000
    ids = [f"p{i}" for i in range(n)]
    s = RowSample(k)
    s.add(pd.DataFrame({"i": np.arange(n, dtype=float)}), ids, id_hashes(ids))
    v = s.values()["i"].to_numpy()
    se = n / math.sqrt(12 * k)
    assert abs(v.mean() - (n - 1) / 2) < 4 * se
    counts, _ = np.histogram(v, bins=10, range=(0, n))
    assert counts.min() > k / 10 * 0.7


def test_sampling_fraction_is_by_id_and_counts_all_rows():
    rng = np.random.default_rng(2)
    frame, ids = _frame(rng, 20_000)
    st = WindowState(KEY)
    st.add_rows(frame, pd.DataFrame({"prediction": np.zeros(len(frame))}), ids, id_hashes(ids), fraction=0.25)
    assert st.rows == 20_000
    assert 0.22 * 20_000 < st.sampled_rows < 0.28 * 20_000
    again = WindowState(KEY)
    again.add_rows(frame, pd.DataFrame({"prediction": np.zeros(len(frame))}), ids, id_hashes(ids), fraction=0.25)
    assert again.sampled_rows == st.sampled_rows  # the same ids, the same decision


def test_latency_quantiles_are_within_half_a_bucket():
    rng = np.random.default_rng(3)
    lat = rng.lognormal(mean=1.0, sigma=0.8, size=50_000)
    h1, h2 = LatencyHistogram(), LatencyHistogram()
    for i, v in enumerate(lat):
        (h1 if i % 2 else h2).add(v)
    h1.merge(LatencyHistogram.from_dict(json.loads(json.dumps(h2.to_dict()))))
    assert h1.count == len(lat) and h1.max == lat.max()
    for q in (0.5, 0.95, 0.99):
        assert h1.quantile(q) == pytest.approx(np.quantile(lat, q), rel=0.035)
    assert math.isnan(LatencyHistogram().quantile(0.5))
    with pytest.raises(ValueError, match="quantile"):
        h1.quantile(1.5)


def test_errors_and_requests_merge():
    a, b = WindowState(KEY), WindowState(KEY)
    a.add_request(3.0, 200, KEY.start + 1)
    a.add_request(4.0, 400, KEY.start + 2)
    b.add_request(5.0, 400, KEY.start + 3)
    b.add_request(6.0, 500, KEY.start + 4)
    a.merge(b)
    assert a.requests == 4 and a.errors == {400: 2, 500: 1} and a.error_count == 3
    assert (a.first_ts, a.last_ts) == (KEY.start + 1, KEY.start + 4)
    with pytest.raises(ValueError, match="different windows"):
        a.merge(WindowState(WindowKey("m", "1", KEY.end, 300)))


def test_category_table_is_bounded_and_total_stays_exact():
    st = WindowState(KEY, max_categories=10)
    ids = [str(i) for i in range(100)]
    st.add_rows(pd.DataFrame({"c": [f"v{i}" for i in range(100)]}), pd.DataFrame({"p": [1] * 100}), ids,
                id_hashes(ids))
    cats = st.columns["c"].categories
    assert len(cats.counts) == 10 and cats.total == 100 and cats.overflow == 90


def test_state_round_trips_and_refuses_other_formats():
    rng = np.random.default_rng(4)
    frame, ids = _frame(rng, 300)
    st = _state(frame, ids, pd.DataFrame({"prediction": rng.normal(size=300)}))
    st.add_request(2.5, 200, KEY.start)
    back = WindowState.from_dict(json.loads(json.dumps(st.to_dict())), st.sample.to_parquet())
    assert back.to_dict() == st.to_dict()
    pd.testing.assert_frame_equal(back.sample.frame(), st.sample.frame())
    assert list(back.sample_predictions().columns) == ["prediction"]
    assert "prediction" not in back.sample_inputs().columns
    with pytest.raises(ValueError, match="format"):
        WindowState.from_dict({**st.to_dict(), "format": "other/9"})


def test_infinities_and_missing_values_are_counted_apart():
    """+/-inf are present but not finite (as the drift engine cleans them); NaN and None are
    missing; nullable integers and ints are numeric, booleans categorical."""
    frame = pd.DataFrame({
        "f": [1.0, np.inf, -np.inf, np.nan, 3.0],
        "i": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        "b": [True, False, None, True, True],
    })
    ids = [f"r{i}" for i in range(5)]
    st = _state(frame, ids, pd.DataFrame({"prediction": [0, 1, 0, 1, 1]}))
    f = st.columns["f"].numeric
    assert (f.count, f.nonfinite, f.min, f.max, f.mean) == (2, 2, 1.0, 3.0, 2.0)
    assert st.missing_share("f") == 0.2 and st.columns["f"].kind == "num"
    i = st.columns["i"].numeric
    assert (i.count, i.sum) == (4, 13.0) and st.missing_share("i") == 0.2
    assert st.columns["b"].categories.counts == {True: 3, False: 1} and st.columns["b"].kind == "cat"
    assert st.missing_share("b") == 0.2

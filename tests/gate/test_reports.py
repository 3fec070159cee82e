"""Evidently HTML/JSON reports: escaping of user strings, bounded seeded samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.gate.drift import compute_drift
from mlflow_monitor.gate.reports import build_report, drift_summary, escape_embedded_data, verdict_header
from mlflow_monitor.recipes import load_recipe
from mlflow_monitor.reference import ReferenceData

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"


def _frames(n_ref: int = 600, n_cur: int = 400, shift: float = 1.0):
    rng = np.random.default_rng(0)

    def make(n, s):
        y = rng.integers(0, 2, n)
        return pd.DataFrame({
            "age": rng.normal(40 + s * 10, 5, n),
            IMG: rng.normal(0, 1, n),
            "city": rng.choice(["a", SCRIPT], n),
            "target": y,
            "prediction": np.where(rng.random(n) < 0.8, y, 1 - y),
        })

    return make(n_ref, 0.0), make(n_cur, shift)


def _recipe(**extra):
    return load_recipe({"name": "<b>r</b>", "task": "classification", "current": "x.csv",
                        "columns": {"target": "target", "prediction": "prediction"}, **extra})


@pytest.fixture(scope="module")
def report():
    ref, cur = _frames()
    return build_report(ref, cur, recipe=_recipe(), title=f"model {IMG} v1")


def test_column_and_category_names_never_appear_raw_in_html(report):
    html = report.html
    assert IMG not in html and SCRIPT not in html
    assert "<b>r</b>" not in html
    # still shown to the reader, as JSON-escaped text the page decodes
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in html
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(2)" in html
    assert "model &lt;img src=x onerror=alert(1)&gt; v1" in html


def test_snapshot_keeps_true_column_names_and_drift_matches_the_verdict(report):
    ref, cur = _frames()
    summary = report.drift_summary()
    verdict = compute_drift(ref[["age", IMG, "city"]], cur[["age", IMG, "city"]],
                            numerical=["age", IMG], categorical=["city"])
    assert {c["column"]: c["drifted"] for c in summary["columns"]} == {
        c.column: c.drifted for c in verdict.columns}
    assert summary["drift_share"] == pytest.approx(verdict.drift_share)
    assert summary["columns"][0] == {"column": "age", "method": "K-S p_value", "threshold": 0.05,
                                     "score": pytest.approx(verdict.column("age").score, abs=1e-9),
                                     "drifted": True}


def test_report_contains_classification_section_and_small_html(report):
    names = [m["metric_name"] for m in report.snapshot["metrics"]]
    assert any(n.startswith("Accuracy(") for n in names)
    assert len(report.html.encode()) < 10 * 1024 * 1024  # far below the UI's 50 MiB preview limit
    assert report.sample_rows is None
    assert "Reference: 600 rows. Current: 400 rows." in report.html


def test_big_frames_are_sampled_with_seed_and_the_banner_says_so():
    ref, cur = _frames(3000, 2500)
    a = build_report(ref, cur, recipe=_recipe(report={"sample_size": 500, "seed": 4}))
    assert (a.sample_rows, a.reference_rows, a.current_rows, a.seed) == (500, 3000, 2500, 4)
    assert ("built from a seeded sample (seed 4): 500 of 3,000 reference rows and "
            "500 of 2,500 current rows") in a.html
    b = build_report(ref, cur, recipe=_recipe(), sample_size=500, seed=4)
    assert drift_summary(a.snapshot) == drift_summary(b.snapshot)  # same seed, same sample


def test_missing_prediction_drops_performance_section_with_a_note():
    ref, cur = _frames(300, 300)
    out = build_report(ref, cur.drop(columns=["prediction"]), recipe=_recipe())
    names = [m["metric_name"] for m in out.snapshot["metrics"]]
    assert not any(n.startswith("Accuracy(") for n in names)
    assert "no performance section" in out.html


def test_reference_data_object_supplies_recorded_roles():
    ref, cur = _frames(300, 300)
    recipe = load_recipe({"task": "classification", "current": "x.csv"})
    refdata = ReferenceData(frame=ref, target="target", prediction="prediction", task="classification",
                            total_rows=300, sample_size=300)
    out = build_report(refdata, cur, recipe=recipe)
    names = [m["metric_name"] for m in out.snapshot["metrics"]]
    assert any(n.startswith("Accuracy(") for n in names)
    assert {c["column"] for c in out.drift_summary()["columns"]} == {"age", IMG, "city"}


def test_escape_embedded_data_reencodes_only_the_data_block():
    page = ('<html><head><script>\n    var metric_' + "a" * 32 + ' = {"t": "</script><i>"};\n'
            '    var additional_graphs_metric_' + "a" * 32 + ' = {};\n</script></head>'
            '<body><script>if (a < b) {}</script></body></html>')
    out = escape_embedded_data(page)
    assert '{"t": "\\u003c/script\\u003e\\u003ci\\u003e"}' in out
    assert "if (a < b) {}" in out  # library code untouched


def test_reference_without_predictions_gets_current_metrics_in_the_banner():
    ref, cur = _frames(300, 300)
    out = build_report(ref.drop(columns=["prediction"]), cur, recipe=_recipe())
    accuracy = float((cur["target"] == cur["prediction"]).mean())
    assert f"performance on all current rows: accuracy {accuracy:.4g}" in out.html


def test_prediction_keyword_names_the_column_when_the_recipe_does_not():
    ref, cur = _frames(300, 300)
    recipe = load_recipe({"task": "classification", "current": "x.csv", "columns": {"target": "target"}})
    out = build_report(ref, cur, recipe=recipe, prediction="prediction")
    assert any(m["metric_name"].startswith("Accuracy(") for m in out.snapshot["metrics"])


def test_column_only_in_current_data_is_left_out_with_a_note():
    ref, cur = _frames(300, 300)
    out = build_report(ref, cur.assign(row_id=range(300)), recipe=_recipe())
    assert "row_id" not in {c["column"] for c in out.drift_summary()["columns"]}
    assert "not compared (missing from one of the frames): row_id" in out.html


# -- the verdict header: the report opens with the gate's decision --------------------------
def _verdict_summary(columns):
    return {"verdict": "BLOCKED", "allowed": False, "model_name": f"m{SCRIPT}", "version": "7",
            "target": "alias:champion", "timestamp": "2026-01-01T00:00:00.000000Z", "user": IMG,
            "rules": [{"rule": "drift_share < 0.3", "passed": False, "actual": 0.4, "threshold": 0.3,
                       "message": f"drift in {IMG}", "skipped": False},
                      {"rule": "accuracy >= 0.8", "passed": True, "actual": 0.91, "threshold": 0.8,
                       "message": "ok", "skipped": False}],
            "drift": {"method": "calibrated", "drift_share": 0.4, "n_drifted": 2, "columns": columns}}


def test_verdict_header_states_rules_and_every_columns_applied_threshold_escaped():
    columns = [{"column": IMG, "column_type": "num", "method": "wasserstein", "threshold": 0.07,
                "score": 0.2, "drifted": True},
               {"column": "city", "column_type": "cat", "method": "jensenshannon", "threshold": 0.1,
                "score": 0.01, "drifted": False}]
    html = verdict_header(_verdict_summary(columns))

    assert IMG not in html and SCRIPT not in html  # every user string escaped
    assert html.index("mlflow-monitor gate: BLOCKED") < html.index('id="mlflow-monitor-rules"') \
        < html.index('id="mlflow-monitor-columns"') < html.index('id="mlflow-monitor-evidently-note"')
    rules = html[html.index('id="mlflow-monitor-rules"'):html.index('id="mlflow-monitor-drift"')]
    assert "<code>drift_share &lt; 0.3</code></td><td><strong>FAILED</strong></td><td>0.4</td><td>0.3</td>" in rules
    table = html[html.index('id="mlflow-monitor-columns"'):]
    assert "<th>threshold (applied)</th>" in table
    assert "<td>wasserstein</td><td>0.07</td><td>0.2</td><td><strong>yes</strong></td>" in table
    assert "method calibrated" in html and "Evidently's own defaults" in html


def test_verdict_header_shows_extra_column_fields_generically():
    """Fields the drift engine adds to its column rows (calibration, floors, data quality)
    get columns of their own after the fixed ones, without code changes here."""
    columns = [{"column": "age", "column_type": "num", "method": "ks", "threshold": 0.001, "score": 0.5,
                "drifted": False, "calibrated": True, "effect_floor": 0.05},
               {"column": "city", "column_type": "cat", "method": "chisquare", "threshold": 0.002,
                "score": 0.0, "drifted": True, "new_category_share": 0.12, "nested": {"x": 1}}]
    html = verdict_header(_verdict_summary(columns))

    head = html[html.index('id="mlflow-monitor-columns"'):]
    head = head[:head.index("</tr>")]
    assert [h.split("</th>")[0] for h in head.split("<th>")[1:]] == [
        "column", "type", "method", "threshold (applied)", "score", "drifted", "calibrated",
        "effect_floor", "new_category_share"]  # non-scalar fields are left out
    assert "<td>city</td><td>cat</td><td>chisquare</td><td>0.002</td><td>0</td><td><strong>yes</strong></td>" \
           "<td></td><td></td><td>0.12</td>" in html  # drifted first; missing fields empty


def test_report_with_verdict_opens_with_it_above_evidentlys_sections():
    ref, cur = _frames(300, 300)
    out = build_report(ref, cur, recipe=_recipe(), verdict=_verdict_summary([]))

    body = out.html[out.html.index("<body>"):]
    assert body.index('id="mlflow-monitor-verdict"') < body.index('id="mlflow-monitor-banner"') \
        < body.index("<script")

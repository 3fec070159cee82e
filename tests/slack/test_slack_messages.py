"""What the notifier sends: Block Kit content and escaping, checked by the stub."""

from __future__ import annotations

import json

from helpers.slack_stub import FAST_SETTINGS as FAST

from mlflow_monitor.events import HealthAlert, RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack


def _send(event, **config):
    notifier = slack.enable({**FAST, **config})
    assert notifier is not None
    publish(event)
    assert notifier.flush(10)
    return notifier


def _all_text(message) -> str:
    return json.dumps(message["blocks"]) + message["text"]


def _blocked_verdict(**kw) -> Verdict:
    base = dict(
        model_name="churn", version="7", target="alias:champion", passed=False,
        failed_rules=[{"rule": "drift_share", "actual": 0.42, "threshold": 0.3, "message": "too many columns drifted"},
                      {"rule": "accuracy_min", "actual": 0.81, "threshold": 0.85, "message": ""}],
        drifted_columns=[{"column": "age", "score": 0.31, "method": "ks", "threshold": 0.1},
                         {"column": "income", "score": 0.77, "method": "psi", "threshold": 0.2}],
        champion_version="6", champion_delta={"accuracy": -0.021, "f1": 0.004},
        run_id="abc123run", user="alice")
    base.update(kw)
    return Verdict(**base)


def test_blocked_verdict_message_lists_rules_columns_delta_and_ui_links(webhook_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_UI_URL", "https://mlflow.example.com/")
    _send(_blocked_verdict())
    (msg,) = webhook_env.wait_for_messages(1)
    blocks = msg["blocks"]
    text = json.dumps(blocks)
    assert blocks[0]["type"] == "header"
    assert "BLOCKED" in blocks[0]["text"]["text"] and "churn v7" in blocks[0]["text"]["text"]
    assert "@champion" in blocks[0]["text"]["text"]
    assert "`drift_share`: actual 0.42, threshold 0.3" in text
    assert "`accuracy_min`: actual 0.81, threshold 0.85" in text
    # highest drift score first
    assert text.index("`income`: score 0.77") < text.index("`age`: score 0.31")
    assert "`accuracy`: -0.021" in text and "`f1`: +0.004" in text and "vs champion v6" in text
    assert "<https://mlflow.example.com/#/models/churn/versions/7|Model version>" in text
    assert "<https://mlflow.example.com/#/runs/abc123run|Report run>" in text
    assert msg["text"].startswith("BLOCKED: churn v7 -&gt; @champion")


def test_passing_stage_verdict_says_pass_and_names_the_stage(webhook_env):
    _send(Verdict(model_name="churn", version="3", target="stage:Production", passed=True))
    (msg,) = webhook_env.wait_for_messages(1)
    assert "PASS" in msg["blocks"][0]["text"]["text"]
    assert "stage Production" in msg["blocks"][0]["text"]["text"]
    assert "Failed rules" not in _all_text(msg)


def test_link_uses_http_tracking_uri_without_credentials(webhook_env, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri("https://bob:hunter2@mlflow.internal:5000")
    _send(Verdict(model_name="my model/x", version="2", target="alias:champion", passed=True))
    (msg,) = webhook_env.wait_for_messages(1)
    text = _all_text(msg)
    assert "<https://mlflow.internal:5000/#/models/my%20model%2Fx/versions/2|" in text
    assert "hunter2" not in text and "bob" not in text


def test_column_named_script_tag_is_escaped_for_mrkdwn(webhook_env):
    _send(_blocked_verdict(model_name="m&<b>", drifted_columns=[{"column": "<script>&", "score": 0.9}],
                           failed_rules=[{"rule": "<!channel>", "actual": 1, "threshold": 0, "message": "a<b>&c"}]))
    (msg,) = webhook_env.wait_for_messages(1)
    mrkdwn = [t for t in _mrkdwn_texts(msg["blocks"])]
    joined = "\n".join(mrkdwn) + msg["text"]
    assert "`&lt;script&gt;&amp;`" in joined
    assert "&lt;!channel&gt;" in joined and "a&lt;b&gt;&amp;c" in joined
    assert "<script>" not in joined and "<!channel>" not in joined and "m&<b>" not in joined


def _mrkdwn_texts(blocks):
    for block in blocks:
        for obj in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                yield obj["text"]


def test_200_drifted_columns_are_cut_to_the_top_ones_with_a_more_line(webhook_env):
    cols = [{"column": f"feature_{i:03d}", "score": i / 200, "method": "psi", "threshold": 0.1} for i in range(200)]
    _send(_blocked_verdict(drifted_columns=cols))
    (msg,) = webhook_env.wait_for_messages(1)  # the stub validates Slack's limits: accepted
    text = _all_text(msg)
    assert "feature_199" in text and "feature_000" not in text
    assert "+190 more drifted columns" in text


def test_oversized_verdict_stays_within_every_slack_limit(webhook_env):
    long = "x" * 400
    cols = [{"column": f"{long}{i}", "score": 1 - i / 1000} for i in range(200)]
    rules = [{"rule": f"rule_{i}_{long}", "actual": i, "threshold": 0, "message": long} for i in range(300)]
    _send(_blocked_verdict(model_name="M" * 300, drifted_columns=cols, failed_rules=rules,
                           champion_delta={f"m{i}": 0.1 for i in range(100)}),
          max_drifted_columns=200)
    (msg,) = webhook_env.wait_for_messages(1)
    assert len(webhook_env.messages) == 1 and webhook_env.requests[-1]["status"] == 200
    text = _all_text(msg)
    assert "more drifted columns" in text and "more failed rules" in text and "more metrics" in text
    assert len(msg["blocks"][0]["text"]["text"]) <= 150


def test_run_summary_shows_status_duration_metrics_and_system_peaks(webhook_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_UI_URL", "http://ui:5000")
    _send(RunSummary(run_id="r1", status="FAILED", duration_s=3725.0, experiment_id="4", run_name="resnet<1>",
                     final_metrics={"train/loss": 0.25, "val/acc": 0.9}, best_metrics={"train/loss": 0.2},
                     system_peaks={"system/cpu_utilization_percentage": 97.5,
                                   "system/process_rss_megabytes": 2048.0,
                                   "system/gpu_0_memory_usage_megabytes": 15000.0},
                     error="RuntimeError: CUDA out of memory <oops>"))
    (msg,) = webhook_env.wait_for_messages(1)
    text = _all_text(msg)
    assert "Run failed: resnet<1>" in msg["blocks"][0]["text"]["text"]
    assert "1h 02m 05s" in text
    assert "`train/loss`: 0.25 (best 0.2)" in text and "`val/acc`: 0.9" in text
    assert "CPU %: 97.5" in text and "Process RSS (MB): 2048" in text and "GPU 0 memory (MB): 15,000" in text
    assert "<http://ui:5000/#/experiments/4/runs/r1|resnet&lt;1&gt;>" in text
    assert "CUDA out of memory &lt;oops&gt;" in text


def test_health_alert_names_rule_metric_value_and_step(webhook_env):
    _send(HealthAlert(run_id="r9", rule="nan_loss", message="train/loss is nan at step 12", metric="train/loss",
                      value=float("nan"), step=12, severity="critical"))
    (msg,) = webhook_env.wait_for_messages(1)
    text = _all_text(msg)
    assert "Training health: nan_loss" in msg["blocks"][0]["text"]["text"]
    assert "train/loss is nan at step 12" in text and "*Step*\\n12" in text and "nan" in text

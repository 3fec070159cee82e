"""A real gated promotion reaches Slack: the registry store enables the notifier from env vars."""

from __future__ import annotations

import json

import pytest
from mlflow.exceptions import MlflowException

from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.threads import TAG_TS

from helpers.gate import breast_cancer_frames, drifted, gated_client, recipe_yaml, train_version

MODEL = "cancer"


@pytest.mark.slow  # trains a model and runs two gated promotions (~20 s)
def test_blocked_then_passed_promotion_posts_both_verdicts_in_one_version_thread(bot_env, tmp_path):
    from mlflow_monitor.gate import tags as T

    client = gated_client()
    version = train_version(client, MODEL)
    assert slack.get_notifier() is not None  # building the registry store turned it on from env vars
    _, holdout = breast_cancer_frames()
    drifted(holdout).to_parquet(tmp_path / "bad.parquet", index=False)
    holdout.to_parquet(tmp_path / "good.parquet", index=False)

    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(tmp_path / "bad.parquet"))
    with pytest.raises(MlflowException):
        client.set_registered_model_alias(MODEL, "champion", version)
    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(tmp_path / "good.parquet"))
    client.set_registered_model_alias(MODEL, "champion", version)
    assert slack.get_notifier().flush(30)

    blocked, passed = bot_env.wait_for_messages(2)
    blocked_text = json.dumps(blocked["blocks"])
    assert blocked["text"].startswith(f"BLOCKED: {MODEL} v{version} -&gt; @champion")
    assert "Failed rules" in blocked_text and "drift_share" in blocked_text and "threshold 0.3" in blocked_text
    assert "Drifted columns" in blocked_text
    assert passed["text"].startswith(f"PASS: {MODEL} v{version}")
    assert passed["thread_ts"] == blocked["ts"]
    assert client.get_model_version(MODEL, version).tags[TAG_TS] == blocked["ts"]

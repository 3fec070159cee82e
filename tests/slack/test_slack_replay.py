"""Dead letters and `mlflow-monitor slack replay`."""

from __future__ import annotations

import json

from click.testing import CliRunner
from helpers.slack_stub import FAST_SETTINGS as FAST

from mlflow_monitor import paths
from mlflow_monitor.cli import main
from mlflow_monitor.events import RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack


def _dead_letter_file():
    return paths.dead_letter_dir() / "slack.jsonl"


def test_replay_resends_dead_letters_and_removes_what_was_delivered(webhook_env):
    webhook_env.fail_next(None, status=503)
    notifier = slack.enable({**FAST, "max_retries": 0})
    publish(Verdict(model_name="m", version="1", target="alias:champion", passed=False))
    publish(RunSummary(run_id="r1", status="FINISHED", duration_s=3))
    assert notifier.flush(10)
    slack.disable()
    assert len(_dead_letter_file().read_text().splitlines()) == 2
    webhook_env.clear_faults()

    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code == 0, result.output
    assert "replayed 2 message(s)" in result.output
    msgs = webhook_env.wait_for_messages(2)
    assert [m["text"].split(":")[0] for m in msgs] == ["BLOCKED", "Run finished"]
    assert not _dead_letter_file().exists() or _dead_letter_file().read_text() == ""


def test_replay_keeps_what_still_fails_and_exits_nonzero(webhook_env, tmp_path):
    webhook_env.fail_next(None, status=503)
    notifier = slack.enable({**FAST, "max_retries": 0})
    publish(RunSummary(run_id="r1", status="FAILED", duration_s=3))
    assert notifier.flush(10)
    slack.disable()

    result = CliRunner().invoke(main, ["slack", "replay", "--file", str(_dead_letter_file())],
                                env={"SLACK_WEBHOOK_URL": webhook_env.webhook_url})
    assert result.exit_code == 1
    assert "1 kept" in result.output
    (entry,) = [json.loads(line) for line in _dead_letter_file().read_text().splitlines()]
    assert entry["replay_attempts"] == 1 and entry["message"]["kind"] == "run_summary"


def test_replay_without_slack_configured_says_how_to_configure(tmp_path):
    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code != 0
    assert "SLACK_WEBHOOK_URL" in result.output

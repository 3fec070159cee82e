"""Slack demo: send a gate verdict and a run summary, and show the Block Kit sent.

Without Slack configured it starts the local Slack API stub (tests/helpers/slack_stub.py),
points the notifier at it and prints the messages as received. With SLACK_WEBHOOK_URL
(or SLACK_BOT_TOKEN + SLACK_CHANNEL) set, it posts to your real workspace instead.

    python examples/demo_slack.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from mlflow_monitor.events import RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack import SlackConfig


def demo_events() -> list[Any]:
    """A blocked promotion and a finished training run, as the gate and autolog publish them."""
    verdict = Verdict(
        model_name="churn-classifier", version="7", target="alias:champion", passed=False,
        failed_rules=[
            {"rule": "drift_share_max", "actual": 0.42, "threshold": 0.3, "message": "5 of 12 columns drifted"},
            {"rule": "roc_auc_min", "actual": 0.81, "threshold": 0.85, "message": "below the recipe's floor"},
        ],
        drifted_columns=[{"column": f"feature_{i}", "score": round(0.9 - i * 0.05, 2), "method": "psi",
                          "threshold": 0.2} for i in range(14)],
        champion_version="6", champion_delta={"roc_auc": -0.021, "f1": -0.013},
        run_id="0123456789abcdef0123456789abcdef", user="alice")
    summary = RunSummary(
        run_id="fedcba9876543210fedcba9876543210", status="FINISHED", duration_s=1834.0, experiment_id="1",
        run_name="churn-resnet", final_metrics={"train/loss": 0.214, "val/roc_auc": 0.861},
        best_metrics={"train/loss": 0.201, "val/roc_auc": 0.866},
        system_peaks={"system/cpu_utilization_percentage": 96.0, "system/process_rss_megabytes": 3120.0,
                      "system/gpu_0_memory_usage_megabytes": 14210.0})
    return [verdict, summary]


def run_slack_demo(out: Callable[[str], None] = print, events: Optional[list[Any]] = None) -> list[dict[str, Any]]:
    """Send ``events`` (default: a canned verdict and run summary); return what Slack received."""
    events = list(events) if events else demo_events()
    if SlackConfig.resolve(None) is not None:  # a real workspace is configured
        notifier = slack.enable()
        for event in events:
            publish(event)
        ok = notifier is not None and notifier.flush(30)
        slack.disable()
        ok = ok and not notifier.stats["dead_lettered"]  # type: ignore[union-attr]
        out("Sent a verdict and a run summary to your Slack workspace." if ok
            else "Some messages were not delivered: see the dead-letter file; `mlflow-monitor slack replay`.")
        return []

    try:
        from helpers.slack_stub import SlackStub  # under pytest: tests/ is on the path
    except ImportError:  # run as a script from a source checkout
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from helpers.slack_stub import SlackStub

    with SlackStub() as stub:
        os.environ.setdefault("MLFLOW_UI_URL", "http://127.0.0.1:5000")
        out(f"No Slack configured: posting to a local Slack API stub at {stub.api_url}")
        notifier = slack.SlackNotifier(SlackConfig(webhook_url=stub.webhook_url, min_interval_s=0)).start()
        try:
            for event in events:
                publish(event)
            notifier.flush(30)
        finally:
            notifier.close(5)
        for message in stub.messages:
            out(json.dumps({"text": message["text"], "blocks": message["blocks"]}, indent=2, ensure_ascii=False))
        out(f"The stub accepted {len(stub.messages)} message(s) (it validates Slack's Block Kit limits). "
            "Set SLACK_WEBHOOK_URL to send them to a real workspace (see docs/slack.md).")
        return list(stub.messages)


if __name__ == "__main__":
    run_slack_demo()

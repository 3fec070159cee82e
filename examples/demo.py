"""The mlflow-monitor demo (``make demo``), on the embedded default store.

Everything lands in a sqlite MLflow store in the working folder (``./mlflow.db``,
artifacts in ``./mlruns``, monitor state in ``./.mlflow_monitor``):

1. a small PyTorch model trains with ``mlflow_monitor.autolog()``: loss, learning rate,
   step time, throughput and system stats, live;
2. the promotion gate: version 1 is promoted to ``@champion`` (passes), version 2 is
   evaluated on drifted data and blocked, with the reason;
3. Slack: the run summaries and verdicts of steps 1-2; without Slack configured they go
   to a local Slack API stub (``tests/slack_stub.py``) and the Block Kit JSON is printed;
4. production: ``mlflow-monitor serve`` serves the champion, a drifted segment of traffic
   raises a drift alert in its monitoring run (``examples/demo_serving.py``).

Then open the UI with the printed ``mlflow ui`` command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def main() -> None:
    import logging
    import warnings

    import mlflow

    from mlflow_monitor import events

    warnings.filterwarnings("ignore")  # third-party deprecation chatter would drown the demo
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    seen: list = []  # the events the demo really produces: sent to Slack in step 3
    events.subscribe(seen.append, events.RunSummary, events.Verdict)
    workdir = Path.cwd()
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    os.environ.setdefault("MLFLOW_MONITOR_HOME", str(workdir / ".mlflow_monitor"))

    from demo_training import train_demo

    _banner("1. Training with mlflow_monitor.autolog()")
    run_id = train_demo(tracking_uri)
    print(f"training run id: {run_id}")

    from demo_gate import run_gate_demo

    _banner("2. Promotion gate")
    run_gate_demo(tracking_uri)

    from demo_slack import run_slack_demo

    _banner("3. Slack notifications (the run summary and verdicts above)")
    run_slack_demo(events=seen)

    from demo_serving import run_serving_demo

    _banner("4. Serving the champion with production monitoring")
    run_serving_demo(tracking_uri)

    _banner("Open the MLflow UI")
    print(f"  mlflow ui --backend-store-uri {tracking_uri} --port 5000")
    print("  (or: .venv/bin/mlflow ui ... if the venv is not activated), then http://127.0.0.1:5000")
    print(f"  training run: #/experiments/<id>/runs/{run_id}  -> Metrics (train/*) and System Metrics tabs")


if __name__ == "__main__":
    main()

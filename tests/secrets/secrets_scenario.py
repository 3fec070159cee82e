"""The run the secrets test greps (run by test_no_secret_in_any_output.py as a subprocess).

A user's training script with fake credentials everywhere: the tracking URI carries
``user:PASSWORD@``, Slack has a bot token and a webhook URL (from the env the test sets).
It goes through a tracking outage mid-run (real ``mlflow server`` killed and restarted),
a NaN loss (health alert: a run tag and a Slack message, which fails: the stub answers
500), a gate error (a promotion whose recipe names missing data), and exits while the
server is down again (points left in the spool).

    python secrets_scenario.py WORKDIR PASSWORD
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the helpers package


def main() -> None:
    workdir, password = Path(sys.argv[1]), sys.argv[2]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # a user who shows every log line
    logging.getLogger("mlflow_monitor").setLevel(logging.DEBUG)
    import mlflow
    import torch
    from helpers.gate import recipe_yaml, reference_only_version
    from helpers.servers import MlflowServer
    from mlflow.exceptions import MlflowException

    import mlflow_monitor
    from mlflow_monitor.gate import tags as T
    from mlflow_monitor.metrics import get_pipeline

    server = MlflowServer(workdir / "server").start()
    uri = f"http://user:{password}@127.0.0.1:{server.port}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    print(f"tracking store on port {server.port}", flush=True)
    mlflow_monitor.autolog(system_metrics=True, system_metrics_interval_s=0.2, sklearn=False,
                           notify={"retry_backoff_s": 0.01, "timeout_s": 2.0, "flush_timeout_s": 5.0})

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def step(nan: bool = False) -> None:
        loss = torch.nn.functional.mse_loss(model(x), y)
        if nan:
            loss = loss * float("nan")
        opt.zero_grad()
        loss.backward()
        opt.step()

    with mlflow.start_run(run_name="secrets-scenario") as run:
        for _ in range(20):
            step()
        mlflow_monitor.log_metrics({"huge": 10**400})  # a bad point: rejected.jsonl
        assert mlflow_monitor.flush(timeout=30)
        server.stop()  # tracking outage mid-run
        for i in range(20):
            step(nan=i == 5)  # a NaN loss: health alert -> run tag (store down) + Slack (failing)
        mlflow_monitor.flush(timeout=3)  # cannot succeed: spooled
        server.start()  # back: the spool replays
        assert mlflow_monitor.flush(timeout=60)
    mlflow_monitor.flush(timeout=30)

    mlflow_monitor.enable_gating()
    client = mlflow.MlflowClient()
    version = reference_only_version(client, "secret-model")
    client.set_registered_model_tag("secret-model", T.RECIPE,
                                    recipe_yaml(workdir / "missing.parquet", on_error="block"))
    try:
        client.set_registered_model_alias("secret-model", "champion", version)
        print("gate: promotion passed (unexpected)")
    except MlflowException as exc:
        print(f"gate error shown to the user: {exc}")

    server.stop()  # down again at exit: these points stay in the spool
    get_pipeline().append(run.info.run_id, "late/point", 1.0, 99)
    print("scenario done", flush=True)


if __name__ == "__main__":
    main()

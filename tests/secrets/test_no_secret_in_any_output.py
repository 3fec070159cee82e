"""No secret in any output: fake credentials in the tracking URI, a Slack token and a webhook URL
go through a tracking outage, a Slack failure and a gate error; then every output stream and
every file the run leaves is searched for them. State files are mode 0600 in 0700 folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.slack_stub import SlackStub

PASSWORD = "s3cretPW-e1f2a3"
TOKEN = "xoxb-1234-FAKE-s3cretTOKEN-9z8y"
SCENARIO = Path(__file__).with_name("secrets_scenario.py")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Run the scenario once; (workdir, stdout, stderr, webhook url)."""
    workdir = tmp_path_factory.mktemp("secrets")
    with SlackStub(token=TOKEN) as stub:
        stub.fail_next(None, status=500)  # every Slack message fails: retries, then dead letters
        env = {**os.environ, "MLFLOW_MONITOR_HOME": str(workdir / "home"), "SLACK_WEBHOOK_URL": stub.webhook_url,
               "SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": stub.api_url, "MLFLOW_MONITOR_EXIT_FLUSH_TIMEOUT_S": "3",
               "MLFLOW_ENABLE_ASYNC_LOGGING": "false", "GIT_PYTHON_REFRESH": "quiet"}
        for var in ("SLACK_CHANNEL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            env.pop(var, None)
        proc = subprocess.run([sys.executable, str(SCENARIO), str(workdir), PASSWORD], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=400)
        webhook = stub.webhook_url
        requests = len(stub.requests)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "scenario done" in proc.stdout
    assert requests > 0  # Slack was tried (and failed)
    return workdir, proc.stdout, proc.stderr, webhook


# MLflow's own end_run prints the run's URL, built from the tracking URI as the user gave it
# (mlflow/tracking/_tracking_service/client.py, _log_url): that happens without mlflow-monitor
# and is not ours to rewrite, so those two lines are not searched.
_MLFLOW_OWN_LINES = ("\N{RUNNER} View run ", "\N{TEST TUBE} View experiment at: ")


def _ours(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(_MLFLOW_OWN_LINES))


def _secrets(webhook: str) -> list[str]:
    return [PASSWORD, TOKEN, webhook, webhook.rsplit("/", 1)[-1], f"user:{PASSWORD}"]


@pytest.mark.slow
def test_no_secret_in_stdout_stderr_or_any_file_left(scenario):
    workdir, stdout, stderr, webhook = scenario
    # the scenario really went through an outage, a Slack failure and a gate error
    assert "unavailable" in stderr and "spool" in stderr
    assert "gate error shown to the user" in stdout
    home = workdir / "home"
    assert list((home / "spool").glob("*.jsonl")), "points left in the spool at exit"
    assert list((home / "dead_letter").glob("*")), "a failed Slack message or tag was dead-lettered"
    leaks = []
    for secret in _secrets(webhook):
        for name, text in (("stdout", _ours(stdout)), ("stderr", _ours(stderr))):
            if secret in text:
                line = next(ln for ln in text.splitlines() if secret in ln)
                leaks.append(f"{name}: {line[:300]}")
        for path in _files(workdir):  # monitor home, the server's artifacts and database
            data = path.read_bytes()
            if secret.encode() in data:
                leaks.append(f"{path.relative_to(workdir)} holds {secret[:12]}...")
    assert not leaks, "\n".join(leaks)


@pytest.mark.slow
def test_spool_header_names_the_store_without_credentials(scenario):
    workdir, _, _, _ = scenario
    import json

    (spool,) = (workdir / "home" / "spool").glob("*.jsonl")
    header = json.loads(spool.read_text().splitlines()[0])
    assert header["tracking_uri"].startswith("http://127.0.0.1:")


def _wide(home: Path) -> dict[str, str]:
    out = {}
    for p in [home, *home.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        if mode != (0o700 if p.is_dir() else 0o600):
            name = str(p.relative_to(home))
            out["locks/*.lock" if name.startswith("locks/") else name] = oct(mode)
    return out


@pytest.mark.slow
def test_our_state_files_are_0600_in_a_0700_home(scenario):
    workdir, _, _, _ = scenario
    home = workdir / "home"
    assert home.stat().st_mode & 0o777 == 0o700
    for must_be_private in ("spool", "dead_letter", "dead_letter/health_tags.jsonl", "rejected.jsonl"):
        assert must_be_private not in _wide(home)
    assert _wide(home) == {}  # every folder 0700 and every file 0600: audit, locks, dead letters too

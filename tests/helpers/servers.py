"""A real ``mlflow server`` subprocess on 127.0.0.1 for tests (bounded in time)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` bound to 127.0.0.1 on a fixed free port; can be killed and restarted."""

    def __init__(
        self,
        workdir: Path,
        backend_store_uri: Optional[str] = None,
        registry_store_uri: Optional[str] = None,
        env: Optional[dict[str, str]] = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.workdir / 'server.db'}"
        self.registry_store_uri = registry_store_uri
        self.artifacts = self.workdir / "artifacts"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the gate reads local data files on a server only under allowed roots: tests write
        # theirs to pytest's tmp dirs (a test that checks the restriction passes its own)
        self.env = {"MLFLOW_MONITOR_ALLOWED_DATA_ROOTS": tempfile.gettempdir(), **(env or {})}
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.workdir / "server.log"

    app_args: tuple[str, ...] = ()  # e.g. ("--app-name", "basic-auth")
    # client credentials a server process must not inherit from the test's environment
    _CLIENT_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME",
                   "MLFLOW_TRACKING_PASSWORD")

    def start(self, timeout: float = 240.0) -> "MlflowServer":
        cmd = [
            sys.executable, "-m", "mlflow", "server", *self.app_args,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.artifacts),
            "--workers", "1",
        ]
        if self.registry_store_uri:
            cmd += ["--registry-store-uri", self.registry_store_uri]
        env = {**os.environ, **self.env}
        for var in self._CLIENT_ENV:
            env.pop(var, None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"mlflow server not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        """Kill the whole process group (gunicorn/uvicorn workers included)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        # wait until the port is really free so a restart can bind it again
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    def restart(self, timeout: float = 240.0) -> "MlflowServer":
        self.stop()
        return self.start(timeout=timeout)

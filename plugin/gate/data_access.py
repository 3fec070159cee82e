"""Which data locations the gate may read when it runs inside ``mlflow server``.

A recipe (a registered-model tag) and a dataset input (logged on the candidate's run) are
written by users of the server; the gate reads what they name *on the server host*. In a
server process (:func:`mlflow_monitor.mlflow_compat.server_backend_store_uri` is set), a
location is read only when it is

- an artifact or object-store URI (:data:`ARTIFACT_SCHEMES`: ``runs:/``, ``models:/``,
  ``mlflow-artifacts:/``, ``s3://``, ``gs://``, ``wasbs://`` ...), and for ``runs:/`` the
  run's own artifact location passes the same check; or
- a local path (or ``file:`` URI) under a root the operator allows: the server's
  ``--artifacts-destination`` and ``--default-artifact-root`` when they are local, and
  every directory in ``MLFLOW_MONITOR_ALLOWED_DATA_ROOTS`` (separated by ``os.pathsep``).
  Symbolic links and ``..`` are resolved before the check.

Anything else (``http://``, ``ftp://``, ``/etc/...``) is refused with
:class:`DataLocationRefused`, whose message names the location and what is allowed and
never anything read from it. Outside a server (the client, the CLI) every location the
user can read is allowed: the user reads their own files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = ["ALLOWED_ROOTS_ENV", "ARTIFACT_SCHEMES", "DataLocationRefused", "allowed_roots", "check_location",
           "in_server"]

ALLOWED_ROOTS_ENV = "MLFLOW_MONITOR_ALLOWED_DATA_ROOTS"

#: URI schemes that name artifacts or object-store objects (never a file of the server host).
ARTIFACT_SCHEMES = frozenset({
    "runs", "models", "mlflow-artifacts",
    "s3", "s3a", "gs", "wasbs", "wasb", "abfss", "abfs", "oss", "hdfs", "viewfs",
})


class DataLocationRefused(ValueError):
    """The server may not read this location."""


def in_server() -> bool:
    """Whether this process is an ``mlflow server`` (app worker)."""
    from mlflow_monitor.mlflow_compat import server_backend_store_uri

    return bool(server_backend_store_uri())


def check_location(location: str, *, what: str, client: Any = None) -> None:
    """Raise :class:`DataLocationRefused` when the server may not read ``location``.

    ``what`` says where the location came from (``"recipe current.path"``); ``client``
    (an ``MlflowClient`` on the server's backend) resolves ``runs:/`` URIs. No-op outside
    a server.
    """
    if not in_server():
        return
    _check(location, what=what, client=client, depth=0)


def _check(location: str, *, what: str, client: Any, depth: int) -> None:
    scheme = _scheme(location)
    if scheme in ARTIFACT_SCHEMES:
        if scheme == "runs":
            _check_run_location(location, what=what, client=client, depth=depth)
        return
    if scheme in ("", "file"):
        path = _local_path(location, scheme)
        roots = allowed_roots()
        if any(_within(path, root) for root in roots):
            return
        shown = ", ".join(str(r) for r in roots) or "none configured"
        raise DataLocationRefused(
            f"{what} '{location}' is a file on the server host outside the allowed data roots "
            f"({shown}); on a server the gate reads artifact URIs ({_schemes()}) or local paths "
            f"under {ALLOWED_ROOTS_ENV}")
    raise DataLocationRefused(
        f"{what} '{location}' uses scheme '{scheme}', which the gate does not read on a server; "
        f"expected an artifact URI ({_schemes()}) or a local path under {ALLOWED_ROOTS_ENV}")


def _check_run_location(location: str, *, what: str, client: Any, depth: int) -> None:
    """``runs:/<id>/<path>`` reads from the run's artifact location, which whoever created the
    experiment chose: check that location too (a local one must be under an allowed root)."""
    if depth > 2:
        raise DataLocationRefused(f"{what} '{location}' resolves through too many runs:/ URIs")
    parsed = urlparse(location)
    parts = parsed.path.lstrip("/").split("/", 1)
    if not parts[0]:
        raise DataLocationRefused(f"{what} '{location}' names no run; expected runs:/<run_id>/<path>")
    from mlflow.exceptions import MlflowException

    try:
        import mlflow

        run = (client or mlflow.MlflowClient()).get_run(parts[0])
    except MlflowException as exc:
        raise DataLocationRefused(f"{what} '{location}': run {parts[0]!r} not found "
                                  f"({exc.error_code})") from None
    root = str(run.info.artifact_uri or "")
    if not root:
        raise DataLocationRefused(f"{what} '{location}': run {parts[0]!r} has no artifact location")
    _check(root, what=f"{what} (artifact location of run {parts[0]})", client=client, depth=depth + 1)


def allowed_roots() -> list[Path]:
    """Local roots the server may read data from (resolved, existing or not)."""
    from mlflow_monitor.mlflow_compat import server_artifact_root, server_artifacts_destination

    raw = [p for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    for uri in (server_artifacts_destination(), server_artifact_root()):
        if uri and _scheme(uri) in ("", "file"):
            raw.append(str(_local_path(uri, _scheme(uri))))
    out: list[Path] = []
    for p in raw:
        resolved = Path(os.path.realpath(os.path.expanduser(p.strip())))
        if resolved not in out:
            out.append(resolved)
    return out


def _scheme(location: str) -> str:
    scheme = urlparse(location).scheme.lower()
    return "" if len(scheme) <= 1 else scheme  # "C:\\data" is a Windows path, not a scheme


def _local_path(location: str, scheme: str) -> Path:
    raw = unquote(urlparse(location).path) if scheme == "file" else location
    return Path(os.path.realpath(os.path.expanduser(raw)))


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _schemes() -> str:
    return ", ".join(f"{s}:/" for s in sorted(ARTIFACT_SCHEMES))


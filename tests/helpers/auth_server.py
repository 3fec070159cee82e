"""A real ``mlflow server --app-name basic-auth`` for the gate's trust tests.

The auth app's own user store is a sqlite file in the server's folder (an ini under
``MLFLOW_AUTH_CONFIG_PATH``); users and permissions are created through MLflow's auth
REST API with the admin's credentials, as an operator would.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional

import requests

from helpers.servers import MlflowServer

ADMIN = "admin"
ADMIN_PASSWORD = "admin-pw-Not-Default-1"
PASSWORD = "pw-{user}-Long-Enough-1"  # every test user's password, by name


def password_of(user: str) -> str:
    return ADMIN_PASSWORD if user == ADMIN else PASSWORD.format(user=user)


class AuthServer(MlflowServer):
    """``mlflow server --app-name basic-auth`` on 127.0.0.1; ``session(user)`` talks as a user."""

    app_args = ("--app-name", "basic-auth")

    def __init__(self, workdir: Path, *, registry_store_uri: Optional[str] = None,
                 env: Optional[dict[str, str]] = None) -> None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        ini = workdir / "basic_auth.ini"
        ini.write_text(textwrap.dedent(f"""\
            [mlflow]
            default_permission = READ
            database_uri = sqlite:///{workdir / 'basic_auth.db'}
            admin_username = {ADMIN}
            admin_password = {ADMIN_PASSWORD}
            authorization_function = mlflow.server.auth:authenticate_request_basic_auth
            grant_default_workspace_access = false
            """), encoding="utf-8")
        ini.chmod(0o600)
        import secrets

        env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini),
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16), **(env or {})}
        super().__init__(workdir, registry_store_uri=registry_store_uri, env=env)

    def session(self, user: str) -> requests.Session:
        s = requests.Session()
        s.auth = (user, password_of(user))
        return s

    def api(self, user: str, method: str, path: str, **kwargs) -> requests.Response:
        """One REST call as ``user`` (``path`` after ``/api/``, e.g. ``2.0/mlflow/...``)."""
        kwargs.setdefault("timeout", 180)
        return self.session(user).request(method, f"{self.url}/api/{path}", **kwargs)

    def create_user(self, user: str) -> None:
        r = self.api(ADMIN, "POST", "2.0/mlflow/users/create",
                     json={"username": user, "password": password_of(user)})
        r.raise_for_status()

    def grant(self, user: str, model: str, permission: str) -> None:
        """Give ``user`` ``permission`` (READ/EDIT/MANAGE) on registered model ``model``."""
        r = self.api(ADMIN, "POST", "3.0/mlflow/users/permissions/grant",
                     json={"username": user, "resource_type": "registered_model",
                           "resource_id": model, "permission": permission})
        r.raise_for_status()

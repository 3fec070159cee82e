"""The ``mlflow-monitor`` command line (click, like MLflow's).

Subcommands live next to the code they drive and are loaded lazily, so
``mlflow-monitor --help`` stays fast and one broken area cannot hide the others.
"""

from __future__ import annotations

import importlib
from typing import Optional

import click

# name -> "module:attribute" of a click command or group
_SUBCOMMANDS = {
    "audit": "mlflow_monitor.gate.cli_audit:audit",
    "check": "mlflow_monitor.gate.cli_commands:check",
    "recipe": "mlflow_monitor.gate.cli_commands:recipe",
    "override": "mlflow_monitor.gate.cli_commands:override",
    "report": "mlflow_monitor.gate.cli_report:report",
    "serve": "mlflow_monitor.production.cli_serve:serve",
    "slack": "mlflow_monitor.integrations.slack.cli:slack",
    "prod": "mlflow_monitor.production.cli_prod:prod",  # status, backfill
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in _SUBCOMMANDS:
            target = _SUBCOMMANDS[cmd_name]
            module_name, attr = target.split(":")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except Exception as exc:  # broken install or area: show it, do not hide the command
                return _unavailable(cmd_name, target, exc)
        return super().get_command(ctx, cmd_name)


def _unavailable(name: str, target: str, exc: Exception) -> click.Command:
    """A stand-in for a subcommand whose module failed to import: it is still listed, and
    running it prints the (redacted) import error and exits 1."""
    from mlflow_monitor.redaction import redact

    error = redact(f"{type(exc).__name__}: {exc}")

    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                           "help_option_names": []},
                   help=f"(unavailable: {error})", add_help_option=False)
    @click.pass_context
    def broken(ctx: click.Context) -> None:
        click.echo(f"mlflow-monitor {name}: cannot load {target.split(':')[0]}: {error}", err=True)
        ctx.exit(1)

    return broken


@click.group(cls=_LazyGroup)
@click.version_option(package_name="mlflow-monitor")
def main() -> None:
    """mlflow-monitor: training telemetry, promotion gates and alerts for MLflow."""


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``mlflow-monitor`` command line (click, like MLflow's).

Subcommands live next to the code they drive and are loaded lazily, so
``mlflow-monitor --help`` stays fast and one broken area cannot hide the others.
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group
_SUBCOMMANDS = {
    "check": "mlflow_monitor.gate.cli_commands:check",
    "recipe": "mlflow_monitor.gate.cli_commands:recipe",
    "override": "mlflow_monitor.gate.cli_commands:override",
    "report": "mlflow_monitor.gate.cli_report:report",
    "slack": "mlflow_monitor.integrations.slack.cli:slack",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str):
        if cmd_name in _SUBCOMMANDS:
            module_name, attr = _SUBCOMMANDS[cmd_name].split(":")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError):
                return None
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="mlflow-monitor")
def main() -> None:
    """mlflow-monitor: training telemetry, promotion gates and alerts for MLflow."""


if __name__ == "__main__":  # pragma: no cover
    main()

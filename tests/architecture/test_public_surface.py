"""The public surface, pinned: ``mlflow_monitor.__all__``, the entry points, the CLI commands
and the public import paths. A change here is a change users see: make it on purpose."""

from __future__ import annotations

import importlib
from importlib.metadata import distribution

import pytest

import mlflow_monitor

PUBLIC_API = ["__version__", "autolog", "disable_gating", "enable_gating", "flush", "log_labels", "log_metrics",
              "log_predictions", "log_reference"]

ENTRY_POINTS = {
    ("mlflow.model_registry_store", "monitor"): "mlflow_monitor.gate.registry_store:build_monitor_registry_store",
    ("mlflow.model_evaluator", "evidently"): "mlflow_monitor.gate.mlflow_evaluator:EvidentlyEvaluator",
    ("mlflow_monitor.notifiers", "slack"): "mlflow_monitor.integrations.slack:enable",
    ("console_scripts", "mlflow-monitor"): "mlflow_monitor.cli:main",
}

CLI_COMMANDS = {
    "audit": ["export", "show", "verify"],
    "check": [],
    "override": [],
    "prod": ["backfill", "status"],
    "recipe": ["remove", "set", "show"],
    "report": [],
    "serve": [],
    "slack": ["replay"],
}

PUBLIC_MODULES = ["mlflow_monitor", "mlflow_monitor.integrations.slack", "mlflow_monitor.recipes",
                  "mlflow_monitor.reference", "mlflow_monitor.events", "mlflow_monitor.production",
                  "mlflow_monitor.windows"]


def test_all_lists_exactly_the_public_api():
    assert sorted(mlflow_monitor.__all__) == PUBLIC_API


@pytest.mark.parametrize("name", PUBLIC_API)
def test_every_public_name_resolves(name):
    assert getattr(mlflow_monitor, name) is not None


def test_entry_points_are_pinned():
    dist = distribution("mlflow-monitor")
    found = {(ep.group, ep.name): ep.value for ep in dist.entry_points}
    assert found == ENTRY_POINTS


@pytest.mark.parametrize("group_name", sorted(ENTRY_POINTS))
def test_every_entry_point_loads(group_name):
    ep = next(ep for ep in distribution("mlflow-monitor").entry_points if (ep.group, ep.name) == group_name)
    assert callable(ep.load())


def test_cli_commands_are_pinned():
    import click

    from mlflow_monitor.cli import main

    ctx = click.Context(main)
    commands = {}
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        commands[name] = sorted(cmd.list_commands(ctx)) if isinstance(cmd, click.Group) else []
    assert commands == CLI_COMMANDS


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_import_paths_stay(module):
    importlib.import_module(module)

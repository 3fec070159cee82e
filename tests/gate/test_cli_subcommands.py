"""A subcommand whose module fails to import stays listed and says why when run."""

from __future__ import annotations

import importlib.abc
import sys

import pytest
from click.testing import CliRunner

from mlflow_monitor.cli import main

_MODULE = "mlflow_monitor.gate.cli_report"


class _BrokenImport(importlib.abc.MetaPathFinder):
    """Makes importing one module fail with a message that holds a credential."""

    def find_spec(self, fullname, path, target=None):
        if fullname == _MODULE:
            raise ImportError("cannot reach postgresql://gate:hunter2@db:5432/mlflow")
        return None


@pytest.fixture
def broken_report(monkeypatch):
    monkeypatch.delitem(sys.modules, _MODULE, raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenImport(), *sys.meta_path])


def test_subcommand_with_failing_import_prints_the_redacted_error_and_exits_1(broken_report):
    result = CliRunner().invoke(main, ["report", "--reference", "a.csv", "--current", "b.csv"])

    assert result.exit_code == 1
    assert "No such command" not in result.output
    assert f"cannot load {_MODULE}: ImportError: cannot reach postgresql://***@db:5432/mlflow" in result.output
    assert "hunter2" not in result.output


def test_subcommand_with_failing_import_is_still_listed_in_help(broken_report):
    result = CliRunner().invoke(main, ["--help"])

    assert result.exit_code == 0
    assert "report" in result.output and "unavailable" in result.output
    assert "check" in result.output and "hunter2" not in result.output


def test_working_subcommands_are_unaffected():
    result = CliRunner().invoke(main, ["report", "--help"])

    assert result.exit_code == 0 and "--reference" in result.output

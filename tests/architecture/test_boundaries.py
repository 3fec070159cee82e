"""The package's boundaries, checked on its source: one-way layers (import-linter), no
private name imported across modules, and MLflow internals reached only from
``mlflow_monitor.mlflow_compat``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = {"mlflow_monitor": ROOT / "plugin", "mlflow_monitor.integrations": ROOT / "integrations",
                "mlflow_monitor.recipes": ROOT / "recipes"}
COMPAT = "mlflow_monitor.mlflow_compat"

# MLflow modules that are public API (documented, stable across 3.x) and may be imported anywhere.
# Anything else of MLflow's goes through mlflow_monitor.mlflow_compat.
PUBLIC_MLFLOW_MODULES = {
    "mlflow", "mlflow.entities", "mlflow.entities.model_registry", "mlflow.exceptions",
    "mlflow.protos.databricks_pb2", "mlflow.tracking", "mlflow.client", "mlflow.pyfunc",
    "mlflow.sklearn", "mlflow.pytorch", "mlflow.models", "mlflow.data", "mlflow.models.evaluation",
    "mlflow.store.model_registry.abstract_store",  # the registry-store plugin base class
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package, folder in SOURCE_ROOTS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "mlflow_monitor" and parts[:1] in (["integrations"], ["recipes"]):
                continue
            found.append((name, path))
    return found


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def test_import_layers_hold():
    """integrations -> services -> core, and nothing the other way (contracts in .importlinter)."""
    # In a subprocess: import-linter reconfigures logging in the process that runs it.
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--no-cache", str(ROOT / ".importlinter")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_private_name_is_imported_across_modules():
    offences = []
    for name, path in _modules():
        for lineno, module, names in _imports(path):
            if not module.startswith("mlflow_monitor"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in module.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                offences.append(f"{path.relative_to(ROOT)}:{lineno} imports {private} from {module}")
    assert not offences, "\n".join(offences)


def test_mlflow_internals_are_used_only_from_the_compat_module():
    offences = []
    for name, path in _modules():
        if name == COMPAT:
            continue
        for lineno, module, names in _imports(path):
            if module != "mlflow" and not module.startswith("mlflow."):
                continue
            private = [n for n in names if n.startswith("_")]
            if module not in PUBLIC_MLFLOW_MODULES or private:
                offences.append(f"{path.relative_to(ROOT)}:{lineno} uses {module} {private or ''}")
    assert not offences, "MLflow internals outside mlflow_compat:\n" + "\n".join(offences)


@pytest.mark.parametrize("package", sorted(SOURCE_ROOTS))
def test_every_source_root_is_a_package(package):
    assert (SOURCE_ROOTS[package] / "__init__.py").is_file()

"""The built wheel carries every package, the built-in recipes and the entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_built_wheel_imports_and_carries_recipes_and_entry_points(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, timeout=300, cwd=tmp_path,
    )
    wheel = next(out.glob("mlflow_monitor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "mlflow_monitor/__init__.py",
        "mlflow_monitor/metrics/pipeline.py",
        "mlflow_monitor/system/sampler.py",
        "mlflow_monitor/gate/registry_store.py",
        "mlflow_monitor/health/monitor.py",
        "mlflow_monitor/integrations/slack/__init__.py",
        "mlflow_monitor/integrations/torch.py",
        "mlflow_monitor/recipes/builtin/classification.yaml",
        "mlflow_monitor/recipes/builtin/regression.yaml",
        "mlflow_monitor/recipes/builtin/drift.yaml",
        "mlflow_monitor/py.typed",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    # every source module ships (a subpackage missing from pyproject's `packages` would not)
    roots = {"plugin": "mlflow_monitor", "integrations": "mlflow_monitor/integrations", "recipes": "mlflow_monitor/recipes"}
    for folder, prefix in roots.items():
        for src in (ROOT / folder).rglob("*.py"):
            shipped = f"{prefix}/{src.relative_to(ROOT / folder).as_posix()}"
            assert shipped in names, f"{shipped} missing from {wheel.name} (add its package to pyproject)"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[mlflow.model_registry_store]" in text and "monitor = mlflow_monitor.gate.registry_store" in text
    assert "[mlflow.model_evaluator]" in text and "mlflow-monitor = mlflow_monitor.cli:main" in text
    # import from the wheel itself (pure Python, zip-importable), not from the source tree
    probe = (
        "import mlflow_monitor, mlflow_monitor.recipes as r;"
        "assert mlflow_monitor.__file__.startswith(%r), mlflow_monitor.__file__;"
        "print(r.load_recipe('classification').task)" % str(wheel)
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(wheel)!r}] + {sys.path!r}; {probe}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "classification"

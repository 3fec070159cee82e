"""``mlflow-monitor report``: an ad-hoc Evidently comparison of two data sets.

    mlflow-monitor report --reference train.parquet --current today.csv --output drift.html
    mlflow-monitor report --reference <run_id> --current runs:/<run_id>/eval.parquet \\
        --target label --prediction pred

Writes the HTML report (and optionally the JSON snapshot) and prints a drift summary,
the performance numbers when labels and predictions are present, and the recipe's rules
(champion rules are skipped: there is no champion in an ad-hoc comparison).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from mlflow_monitor.formatting import format_number

_RUN_ID_LEN = 32


@click.command("report")
@click.option("--reference", "reference_src", default=None,
              help="Reference data: a CSV/Parquet/JSON path or URI, or the id of a run that logged "
                   "a reference with mlflow_monitor.log_reference.")
@click.option("--current", "current_src", default=None,
              help="Current data: a CSV/Parquet/JSON path or URI (runs:/, models:/, s3:// ...).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="Where to write the HTML report.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write Evidently's JSON snapshot here.")
@click.option("--recipe", "recipe_src", default=None,
              help="Recipe: a built-in name or a YAML file (default: built from --task/--target).")
@click.option("--target", default=None, help="Target (label) column.")
@click.option("--prediction", default=None, help="Prediction column (with --target: performance).")
@click.option("--task", type=click.Choice(["classification", "regression", "drift"]), default=None,
              help="Task when no recipe is given (default: drift, or inferred from the target).")
@click.option("--sample-size", type=click.IntRange(min=1), default=None,
              help="Rows per frame in the HTML report (default: the recipe's, 50000).")
@click.option("--seed", type=int, default=None, help="Sampling seed for the HTML report.")
@click.option("--pending", is_flag=True,
              help="Instead: build the gate reports left pending by processes that ended "
                   "(for the current registry), and link them to their versions.")
def report(
    reference_src: Optional[str],
    current_src: Optional[str],
    output: Path,
    json_out: Optional[Path],
    recipe_src: Optional[str],
    target: Optional[str],
    prediction: Optional[str],
    task: Optional[str],
    sample_size: Optional[int],
    seed: Optional[int],
    pending: bool,
) -> None:
    """Compare CURRENT data against REFERENCE data and write an Evidently HTML report.

    With --pending: build the gate's reports that a promotion or check queued in a process
    that ended before they were built."""
    import json

    from mlflow_monitor.gate.reports import build_report

    if pending:
        if reference_src or current_src:
            raise click.UsageError("--pending takes no --reference/--current")
        _resume_pending()
        return
    if not reference_src or not current_src:
        raise click.UsageError("give --reference and --current (or --pending)")
    reference = _read(reference_src, "reference")
    current = _read(current_src, "current")
    recipe = _recipe(recipe_src, task, target, prediction, current)
    _check_roles(recipe, reference, current)
    click.echo(f"Comparing {len(current):,} current rows with {len(reference):,} reference rows "
               f"(recipe {recipe.name or recipe.task}) ...", err=True)
    drift, perf = _verdict(recipe, reference, current)
    results = _rule_results(recipe, drift, perf)
    try:
        artifacts = build_report(reference, current, recipe=recipe, sample_size=sample_size, seed=seed,
                                 verdict=_header(recipe, drift, results))
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(artifacts.html, encoding="utf-8")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(artifacts.snapshot, indent=1), encoding="utf-8")
    _print_summary(drift, perf, results, artifacts)
    click.echo(f"Report: {output}")


def _resume_pending() -> None:
    """``report --pending``: the orphaned pending reports of the current registry, built now."""
    import mlflow

    from mlflow_monitor.gate.escaping import safe_text
    from mlflow_monitor.gate.registry_store import SCHEME, inner_uri_of
    from mlflow_monitor.gate.report_worker import pending_dir, resume_pending_reports
    from mlflow_monitor.mlflow_compat import registry_store

    registry_uri, tracking_uri = mlflow.get_registry_uri(), mlflow.get_tracking_uri()
    if registry_uri.startswith(SCHEME + ":"):
        registry_uri = inner_uri_of(registry_uri)
    failed: list[str] = []

    def show(job: Any, error: Optional[str]) -> None:
        where = f"model '{safe_text(job.model_name)}' version {safe_text(job.version)}, {job.report_uri}"
        if error is None:
            click.echo(f"built: {where}/report.html")
        else:
            failed.append(where)
            click.echo(f"FAILED: {where}: {error}")

    done = resume_pending_reports(registry_store(registry_uri, tracking_uri), registry_uri=registry_uri,
                                  tracking_uri=tracking_uri, on_result=show)
    click.echo(f"{done} pending report(s) of this registry processed ({pending_dir()})", err=True)
    if failed:
        raise SystemExit(1)


def _rule_results(recipe: Any, drift: Any, perf: dict[str, float]) -> list[Any]:
    from mlflow_monitor.gate.rules import evaluate_rules

    if not recipe.rules:
        return []
    metrics = {**drift.rule_values(), **perf}
    return evaluate_rules(recipe.rules, metrics=metrics, drift=drift, champion_metrics=None)


def _header(recipe: Any, drift: Any, results: list[Any]) -> dict[str, Any]:
    """The report's opening block for an ad-hoc comparison: the recipe's rules as the gate
    would evaluate them (no champion), the drift method and every column's threshold."""
    import dataclasses

    from mlflow_monitor.gate.escaping import json_safe

    verdict = "NO RULES" if not results else ("PASSED" if all(r.passed for r in results) else "FAILED")
    columns = [dataclasses.asdict(c) for c in drift.columns]  # every field the engine reports
    return json_safe({
        "verdict": verdict, "target": f"ad-hoc comparison, recipe {recipe.name or recipe.task}",
        "rules": [r.to_dict() for r in results],
        "drift": {"drift_share": drift.drift_share, "n_drifted": drift.n_drifted,
                  "n_columns": drift.n_columns,
                  "method": ", ".join(sorted({str(c.method) for c in drift.columns})) or None,
                  "columns": columns},
    })


# -- helpers ---------------------------------------------------------------------------
def _read(source: str, role: str) -> Any:
    from mlflow_monitor.gate.data import CurrentDataError, read_frame

    try:
        if _looks_like_run_id(source) and not Path(source).exists():
            from mlflow_monitor.reference import load_reference

            return load_reference(source).frame
        frame = read_frame(source)
    except (CurrentDataError, LookupError) as exc:
        raise click.ClickException(f"{role}: {exc}") from exc
    except Exception as exc:  # e.g. an unknown run id
        raise click.ClickException(f"{role}: cannot load '{source}': {type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise click.ClickException(f"{role} data '{source}' is empty ({len(frame.columns)} columns, 0 rows)")
    return frame


def _looks_like_run_id(text: str) -> bool:
    return len(text) == _RUN_ID_LEN and all(c in "0123456789abcdef" for c in text)


def _recipe(source: Optional[str], task: Optional[str], target: Optional[str],
            prediction: Optional[str], current: Any) -> Any:
    from mlflow_monitor.recipes import RecipeError, load_recipe

    try:
        if source is not None:
            recipe = load_recipe(Path(source) if Path(source).is_file() else source)
            update = {k: v for k, v in (("target", target), ("prediction", prediction)) if v}
            if update:
                recipe = recipe.model_copy(update={"columns": recipe.columns.model_copy(update=update)})
            return recipe
        task = task or _infer_task(current, target)
        columns = {"target": target, "prediction": prediction} if task != "drift" else {}
        if task == "drift" and target:
            columns = {"exclude": [c for c in (target, prediction) if c]}
        return load_recipe({"name": f"ad-hoc {task}", "task": task,
                            "columns": {k: v for k, v in columns.items() if v},
                            "current": {"path": "cli"}})
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from exc


def _infer_task(current: Any, target: Optional[str]) -> str:
    import pandas as pd

    if not target or target not in current.columns:
        return "drift"
    col = current[target]
    if pd.api.types.is_float_dtype(col) and col.nunique() > 20:
        return "regression"
    return "classification"


def _check_roles(recipe: Any, reference: Any, current: Any) -> None:
    for role in ("target", "prediction"):
        col = getattr(recipe.columns, role)
        if col is None:
            continue
        for name, frame in (("reference", reference), ("current", current)):
            if col not in frame.columns and not (role == "prediction" and name == "reference"):
                raise click.ClickException(
                    f"{role} column {col!r} is not in the {name} data; columns: {list(frame.columns)}"
                )


def _verdict(recipe: Any, reference: Any, current: Any) -> tuple[Any, dict[str, float]]:
    from mlflow_monitor.gate.data import split_columns
    from mlflow_monitor.gate.drift import compute_drift
    from mlflow_monitor.gate.performance import compute_performance

    numerical, categorical = split_columns(current, recipe.columns)
    features = [*numerical, *categorical]
    missing = [c for c in features if c not in reference.columns]
    if missing:
        raise click.ClickException(f"columns {missing} are in the current data but not in the reference")
    try:
        drift = compute_drift(reference[features], current[features],
                              numerical=numerical, categorical=categorical,
                              settings=recipe.effective_drift, key_columns=recipe.columns.key_columns)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    perf: dict[str, float] = {}
    cols = recipe.columns
    if recipe.task != "drift" and cols.target and cols.prediction and cols.prediction in current.columns:
        try:
            perf = compute_performance(current, task=recipe.task, target=cols.target,
                                       prediction=cols.prediction, proba=cols.prediction_proba)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    return drift, perf


def _print_summary(drift: Any, perf: dict[str, float], results: list[Any], artifacts: Any) -> None:
    click.echo(f"Drift: {drift.n_drifted} of {drift.n_columns} columns drifted "
               f"(share {drift.drift_share:.3f})")
    for col in drift.top(10):
        flag = "DRIFT" if col.drifted else "ok"
        click.echo(f"  {flag:5}  {_printable(col.column)}: {col.method} {format_number(col.score)} "
                   f"(threshold {format_number(col.threshold)})")
    for name, value in perf.items():
        click.echo(f"{name}: {value:.4f}")
    for res in results:
        status = "SKIP" if res.skipped else ("PASS" if res.passed else "FAIL")
        click.echo(f"  [{status}] {_printable(res.rule)}: {_printable(res.message)}")
    if artifacts.sample_rows is not None:
        click.echo(f"The HTML report uses a seeded sample of {artifacts.sample_rows:,} rows per frame "
                   f"(seed {artifacts.seed}); the numbers above use all rows.")


def _printable(text: str) -> str:
    """Column names are user data: show control characters escaped, not raw."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))

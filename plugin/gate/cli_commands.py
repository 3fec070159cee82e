"""``mlflow-monitor check | recipe set/show/remove | override``: the gate from the command line.

``check`` runs the same evaluation as a gated promotion without promoting: exit 0 on
pass, 1 on fail (for CI), 2 on usage errors. Progress goes to stderr.

``recipe set/remove`` and ``override`` go through the ``monitor:`` store, which checks the
caller's role and audits the change: against a database URI the CLI is the operator (its OS
user); against an ``http(s)`` server, the server checks the authenticated user.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import click

from mlflow_monitor.gate import tags as T


def _registry_store_and_uris() -> tuple[Any, str, Optional[str]]:
    """The *inner* registry store of the current URIs (the gate never gates itself)."""
    import mlflow

    from mlflow_monitor.gate.registry_store import SCHEME, inner_uri_of
    from mlflow_monitor.mlflow_compat import registry_store

    registry_uri = mlflow.get_registry_uri()
    tracking_uri = mlflow.get_tracking_uri()
    if registry_uri.startswith(SCHEME + ":"):
        registry_uri = inner_uri_of(registry_uri)
    store = registry_store(registry_uri, tracking_uri)
    return store, registry_uri, tracking_uri


def _policy_client() -> Any:
    """An ``MlflowClient`` whose registry writes pass the ``monitor:`` checks: a database URI
    is wrapped in ``monitor:`` here; a server URI is left alone (the server's store checks)."""
    import mlflow

    from mlflow_monitor.gate.registry_store import SCHEME

    uri = mlflow.get_registry_uri()
    if not uri.startswith((SCHEME + ":", "http://", "https://", "databricks")):
        uri = f"{SCHEME}:{uri}"
    return mlflow.MlflowClient(registry_uri=uri)


def _fail(exc: Exception) -> "click.ClickException":
    from mlflow_monitor.gate.escaping import safe_text

    return click.ClickException(safe_text(getattr(exc, "message", str(exc))))


def _target(alias: Optional[str], stage: Optional[str]):
    from mlflow_monitor.gate.decision import Target

    if alias and stage:
        raise click.UsageError("give --alias or --stage, not both")
    if stage:
        from mlflow_monitor.mlflow_compat import canonical_stage

        return Target("stage", canonical_stage(stage))
    return Target("alias", alias or "champion")


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--recipe", "recipe_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Recipe YAML to use instead of the model's recipe tag.")
@click.option("--alias", default=None, help="Target alias (champion comparison); default champion.")
@click.option("--stage", default=None, help="Target stage instead of an alias (e.g. Production).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--no-log", is_flag=True, help="Do not log the report artifacts to the run.")
def check(model: str, version: str, recipe_file: Optional[Path], alias: Optional[str],
          stage: Optional[str], as_json: bool, no_log: bool) -> None:
    """Evaluate MODEL VERSION against its recipe without promoting it.

    Exits 0 when every rule passes and 1 when a rule fails or the data cannot be
    evaluated. The report is logged to the version's run under mlflow_monitor/gate/
    unless --no-log.
    """
    from mlflow.exceptions import MlflowException

    from mlflow_monitor.gate.decision import report_summary
    from mlflow_monitor.gate.escaping import safe_text
    from mlflow_monitor.gate.promotion import PromotionGate

    target = _target(alias, stage)
    recipe = None
    if recipe_file is not None:
        from mlflow_monitor.recipes import RecipeError, load_recipe

        try:
            recipe = load_recipe(recipe_file)
        except RecipeError as exc:
            raise click.BadParameter(str(exc), param_hint="--recipe") from None
    store, registry_uri, tracking_uri = _registry_store_and_uris()
    gate = PromotionGate(store, inner_uri=registry_uri, tracking_uri=tracking_uri)

    def progress(msg: str) -> None:
        click.echo(f"[mlflow-monitor] {msg}...", err=True)

    try:
        decision = gate.check(model, version, target, recipe=recipe, progress=progress)
    except MlflowException as exc:
        raise click.ClickException(safe_text(exc.message)) from None
    if not no_log and decision.evaluation is not None:
        gate.record(decision, version_tags=False, artifacts=True, publish=False)
    else:
        gate.record(decision, version_tags=False, artifacts=False, publish=False)
    passed = decision.evaluation is not None and decision.evaluation.passed and not decision.error
    if decision.report_status is not None:  # the verdict is recorded; the report follows
        progress("verdict recorded; building the Evidently report")
        decision.report_status = _await_report(decision, tracking_uri)
    if as_json:
        click.echo(json.dumps(report_summary(decision), indent=2))
    else:
        click.echo(_render(decision, passed))
    sys.exit(0 if passed else 1)


def _await_report(decision: Any, tracking_uri: Optional[str]) -> str:
    """Wait (bounded) for ``decision``'s report; its state from the run's report tags."""
    import os

    from mlflow import MlflowClient

    from mlflow_monitor.gate.decision import REPORT_FAILED, REPORT_PENDING, REPORT_READY
    from mlflow_monitor.gate.report_job import RUN_REPORT_STATUS, RUN_REPORT_TAG
    from mlflow_monitor.gate.report_worker import ENV_EXIT_WAIT, wait_for_reports

    try:
        limit = float(os.environ.get(ENV_EXIT_WAIT) or 300)
    except ValueError:
        limit = 300.0
    if not wait_for_reports(limit):
        return REPORT_PENDING
    tags = MlflowClient(tracking_uri=tracking_uri).get_run(decision.run_id).data.tags
    if not str(tags.get(RUN_REPORT_TAG, "")).startswith(decision.report_uri or "\0"):
        return REPORT_PENDING
    status = str(tags.get(RUN_REPORT_STATUS, ""))
    if status.startswith(REPORT_FAILED):
        decision.evaluation.report_error = status.split(":", 1)[-1].strip()
        return REPORT_FAILED
    return REPORT_READY if status == REPORT_READY else REPORT_PENDING


def _render(decision: Any, passed: bool) -> str:
    from mlflow_monitor.gate.escaping import safe_text

    lines = [f"{'PASS' if passed else 'FAIL'}: model '{safe_text(decision.model_name)}' version "
             f"{safe_text(decision.version)} for {safe_text(decision.target.label)}"]
    if decision.error:
        lines.append(f"  evaluation error: {decision.error}")
    ev = decision.evaluation
    if ev is not None:
        for r in ev.rule_results:
            mark = "skip" if r.skipped else ("ok  " if r.passed else "FAIL")
            lines.append(f"  [{mark}] {safe_text(r.rule)}: {safe_text(r.message)}")
        if ev.report_error:
            lines.append(f"  report not built: {ev.report_error}")
    if decision.report_uri and decision.report_status == "pending":
        lines.append(f"  report: {decision.report_uri}/report.html (still being built; "
                     "`mlflow-monitor report --pending` completes it)")
    elif decision.report_uri and decision.report_status != "failed":
        lines.append(f"  report: {decision.report_uri}/report.html")
    elif decision.report_uri:
        lines.append(f"  summary: {decision.report_uri}/summary.json")
    return "\n".join(lines)


@click.group()
def recipe() -> None:
    """Attach and inspect a registered model's monitoring recipe."""


@recipe.command("set")
@click.argument("model")
@click.argument("source")
def recipe_set(model: str, source: str) -> None:
    """Validate SOURCE (a YAML file or a built-in name) and attach it to MODEL.

    Stored in the registered-model tag mlflow_monitor.recipe: built-in names as the
    name, files as their validated canonical YAML. Needs the policy owner role (MANAGE
    on the model or an admin; the OS user against a database URI); audited.
    """
    from mlflow.exceptions import MlflowException

    from mlflow_monitor.recipes import BUILTIN_RECIPES, RecipeError, load_recipe

    path = Path(source)
    try:
        if source in BUILTIN_RECIPES and not path.is_file():
            value, loaded = source, load_recipe(source)
        elif path.is_file():
            loaded = load_recipe(path)
            value = loaded.to_yaml()
        else:
            raise click.BadParameter(
                f"expected a recipe YAML file or one of {', '.join(BUILTIN_RECIPES)}, got '{source}'",
                param_hint="SOURCE")
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from None
    client = _policy_client()
    try:
        client.get_registered_model(model)  # clear MLflow error when it does not exist
        client.set_registered_model_tag(model, T.RECIPE, value)
    except MlflowException as exc:
        raise _fail(exc) from None
    click.echo(f"recipe '{loaded.name or source}' (sha256 {loaded.sha256[:12]}) set on model "
               f"'{model}'; gated: aliases {loaded.triggers.aliases}, stages "
               f"{loaded.triggers.stages}, new versions {loaded.triggers.new_versions}")


@recipe.command("remove")
@click.argument("model")
def recipe_remove(model: str) -> None:
    """Detach MODEL's recipe: its promotions are no longer gated (or fall under the
    server's default policy). Policy owner only; audited."""
    from mlflow.exceptions import MlflowException

    try:
        _policy_client().delete_registered_model_tag(model, T.RECIPE)
    except MlflowException as exc:
        raise _fail(exc) from None
    click.echo(f"recipe removed from model '{model}'")


@recipe.command("show")
@click.argument("model")
def recipe_show(model: str) -> None:
    """Print MODEL's recipe (canonical YAML) and its hash; exit 1 when it has none."""
    import mlflow

    from mlflow_monitor.gate.recipe_tag import load_recipe_tag

    tags = mlflow.MlflowClient().get_registered_model(model).tags or {}
    value = tags.get(T.RECIPE)
    if value is None:
        click.echo(f"model '{model}' has no recipe (tag '{T.RECIPE}'); "
                   "set one with: mlflow-monitor recipe set MODEL FILE", err=True)
        sys.exit(1)
    loaded = load_recipe_tag(value)
    click.echo(f"# sha256: {loaded.sha256}")
    click.echo(loaded.to_yaml(), nl=False)


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--reason", default=None, help="Request: why this version may skip the gate once (recorded).")
@click.option("--approve", is_flag=True, help="Approve the pending request (a different person, MANAGE).")
def override(model: str, version: str, reason: Optional[str], approve: bool) -> None:
    """Break glass, four eyes: request (--reason) or approve (--approve) an override that
    lets the next gated promotion of MODEL VERSION through once; each step is audited."""
    from mlflow.exceptions import MlflowException

    if (reason is None) == (not approve):
        raise click.UsageError("give --reason REASON (request) or --approve, one of them")
    client = _policy_client()
    try:
        if approve:
            client.set_model_version_tag(model, version, T.OVERRIDE_APPROVE, "approved")
        else:
            client.set_model_version_tag(model, version, T.OVERRIDE, reason)
    except MlflowException as exc:
        raise _fail(exc) from None
    if approve:
        click.echo(f"override approved on model '{model}' version {version}: the next gated "
                   f"promotion goes through without evaluation and is recorded (tag {T.OVERRIDE_USED}, "
                   "audit log)")
    else:
        click.echo(f"override requested on model '{model}' version {version}; a different person "
                   f"with MANAGE approves it: mlflow-monitor override '{model}' {version} --approve")

"""The gate-approved link from a model version to its monitoring run.

The version tag ``mlflow_monitor.prod.run_id`` names the run whose captured traffic the
gate trusts as production evidence (:mod:`.production_evidence`). It is under the gate's
``mlflow_monitor.`` prefix, so the ``monitor:`` store refuses it from clients, except
through :func:`link_monitoring_run`, which writes it when the caller proves the link:

1. **who**: a policy owner of the model (MANAGE or admin; a client outside ``mlflow
   server``), or a user the model's recipe names in ``current.production.serving_users``
   who also has EDIT on the model. A promoter with EDIT alone may not link: the link
   decides whose captured windows the gate takes as evidence, and a promoter could
   otherwise point the champion at a run it wrote itself. An editor of the monitoring
   experiment alone never may;
2. **what**: the run exists, is active and is tagged ``mlflow_monitor.prod`` =
   ``<name>/<version>``;
3. **unique**: it is the only active run so tagged in its experiment (two such runs are
   a race in progress or a forgery: the gate refuses to pick);
4. **first link stands**: a version already linked to another active run so tagged is
   not re-pointed (setting the same run again is a no-op).

A link is audited ``prod_run_linked``; a refusal ``refused_write`` (HTTP 403, or 400 for
a run that is not a monitoring run of that version). Nothing is written on refusal.
"""

from __future__ import annotations

from typing import Any, NoReturn, Optional

from mlflow_monitor.gate.authority import Identity, audit_event, current_identity, refusal, roles_for, who
from mlflow_monitor.gate.errors import invalid_input
from mlflow_monitor.gate.escaping import safe_text
from mlflow_monitor.windows.stored import PROD_RUN_TAG, PROD_TAG, monitors, tagged_runs

__all__ = ["link_monitoring_run"]


def _linked_run_is_live(client: Any, run_id: str, value: str) -> bool:
    try:
        return monitors(client.get_run(run_id), value)
    except Exception:
        return False


def _serving_users(inner: Any, name: str) -> list[str]:
    """``current.production.serving_users`` of ``name``'s recipe (none when it has no
    recipe, the recipe takes no production evidence, or it does not load)."""
    from mlflow_monitor.gate.recipe_tag import load_recipe_tag, own_recipe_tag_of

    try:
        tag = own_recipe_tag_of(inner, name)
        production = load_recipe_tag(tag).current.production if tag is not None else None
    except Exception:
        return []
    return list(production.serving_users) if production is not None else []


def link_monitoring_run(inner: Any, name: str, version: str, run_id: str, *, tracking_uri: Optional[str],
                        identity: Optional[Identity] = None, store_uri: Optional[str] = None) -> None:
    """Set ``mlflow_monitor.prod.run_id`` = ``run_id`` on ``name`` version ``version``
    when the checks of the module docstring pass; raise ``MlflowException`` otherwise."""
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersionTag

    identity = identity or current_identity()
    version = str(version)
    run_id = (run_id or "").strip()
    where = f"model '{safe_text(name)}' version {safe_text(version)}"

    def refuse(why: str, *, bad_input: bool = False) -> NoReturn:
        audit_event("refused_write", identity, model_name=name, version=version, target=PROD_RUN_TAG,
                    reason=f"setting {PROD_RUN_TAG}: {why}", store_uri=store_uri)
        if bad_input:
            raise invalid_input(f"cannot link {where} to monitoring run '{safe_text(run_id)}': {why}. "
                                "Nothing was changed.")
        raise refusal(f"linking {where} to a monitoring run is not allowed",
                      f"{why}. Asked by {who(identity)}. Nothing was changed.")

    mv = inner.get_model_version(name, version)  # MLflow's own error when it does not exist
    roles = roles_for(identity, name)
    serving = _serving_users(inner, name)
    named = identity.user is not None and identity.user in serving and roles.promote
    if not (roles.own_policy or named):
        listed = (f"the recipe's current.production.serving_users are {', '.join(map(safe_text, serving))}"
                  if serving else "the model's recipe names no current.production.serving_users")
        refuse(f"linking a monitoring run needs the policy owner role (MANAGE on the model, or an admin) or "
               f"a serving user named in the model's recipe with EDIT on the model; {who(identity)} has "
               f"{roles.permission} and {listed}")
    if not run_id:
        refuse("the run id is empty", bad_input=True)
    client = MlflowClient(tracking_uri=tracking_uri)
    value = f"{name}/{version}"
    try:
        run = client.get_run(run_id)
    except Exception:
        refuse("no such run", bad_input=True)
    if run.info.lifecycle_stage != "active":
        refuse("the run is deleted", bad_input=True)
    if run.data.tags.get(PROD_TAG) != value:
        refuse(f"the run is not tagged {PROD_TAG}='{safe_text(value)}'", bad_input=True)
    current = (mv.tags or {}).get(PROD_RUN_TAG)
    if current == run_id:
        return
    if current and _linked_run_is_live(client, current, value):
        refuse(f"the version is already linked to monitoring run '{safe_text(current)}', which is active; "
               "the first link stands (delete that run to re-link)")
    others = [r.info.run_id for r in tagged_runs(client, run.info.experiment_id, value) if r.info.run_id != run_id]
    if others:
        refuse(f"{len(others) + 1} active runs of experiment {safe_text(run.info.experiment_id)} are tagged "
               f"{PROD_TAG}='{safe_text(value)}' (also {', '.join(map(safe_text, others[:3]))}); the gate "
               "links only a unique monitoring run")
    inner.set_model_version_tag(name, version, ModelVersionTag(PROD_RUN_TAG, run_id))
    audit_event("prod_run_linked", identity, model_name=name, version=version, target=PROD_RUN_TAG,
                reason=f"monitoring run {run_id} (experiment {run.info.experiment_id})", store_uri=store_uri,
                run_id=run_id)

"""The monitoring run of a model version: one per version, found or created once.

Tagged ``mlflow_monitor.prod`` = ``<name>/<version>``, in the experiment of the
version's source run (or a configured one); the version gets the tag
``mlflow_monitor.prod.run_id``. Two processes that create it at the same time both
search again afterwards and keep the oldest run (earliest start, then smallest id); the
other is deleted. So every worker and replica converges on one run.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from mlflow_monitor.redaction import redact
from mlflow_monitor.windows.stored import PROD_RUN_TAG, PROD_TAG, monitors, tagged_runs  # one definition, read back by core

__all__ = ["PROD_RUN_TAG", "PROD_TAG", "monitoring_run_id", "prod_tag_value"]

_logger = logging.getLogger(__name__)



def prod_tag_value(model_name: str, version: str) -> str:
    return f"{model_name}/{version}"


def monitoring_run_id(client: Any, model_name: str, version: str, experiment_id: Optional[str] = None) -> str:
    """The id of the version's monitoring run, created when there is none."""
    mv = client.get_model_version(model_name, str(version))
    value = prod_tag_value(model_name, str(version))
    tagged = (mv.tags or {}).get(PROD_RUN_TAG)
    if tagged:
        try:
            if monitors(client.get_run(tagged), value):
                return tagged
        except Exception:  # deleted or not ours: find or create again
            pass
    if experiment_id is None:
        experiment_id = client.get_run(mv.run_id).info.experiment_id if mv.run_id else "0"
    runs = tagged_runs(client, experiment_id, value)
    if not runs:
        created = client.create_run(experiment_id, run_name=f"prod-{model_name}-v{version}",
                                    tags={PROD_TAG: value, "mlflow.note.content":
                                          f"Production monitoring of model '{model_name}' version {version} "
                                          "(mlflow-monitor): prod/* metrics per window, at the window end."})
        runs = tagged_runs(client, experiment_id, value) or [created]
        chosen = runs[0]
        if chosen.info.run_id != created.info.run_id:
            client.delete_run(created.info.run_id)  # another process won the race
    chosen_id = runs[0].info.run_id
    try:
        client.set_model_version_tag(model_name, str(version), PROD_RUN_TAG, chosen_id)
    except Exception as exc:  # e.g. the gate refuses mlflow_monitor.* tags from anyone but itself
        _logger.warning("mlflow-monitor: could not tag model '%s' version %s with its monitoring run %s: %s",
                        model_name, version, chosen_id, redact(str(exc)))
    return chosen_id

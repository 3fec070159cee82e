"""One deferred Evidently report of a gate decision: build it, write it beside the
decision's ``summary.json``, and link it, or record why it failed.

A gated promotion returns once its verdict, tags and ``summary.json`` are written; the
Evidently HTML comes after (5-8 s at 100k rows). :class:`ReportJob` is that pending
work. :func:`run_report_job` runs one (on :mod:`.report_worker`'s thread, or inline with
``MLFLOW_MONITOR_GATE_REPORT=sync``):

- ``report.html`` and ``snapshot.json`` go into the decision's artifact folder;
- the run gets tags ``mlflow_monitor.gate.last_report`` (the HTML's URI) and
  ``mlflow_monitor.gate.last_report_status`` (``ready`` or ``failed: <error>``);
- the version (when the decision tagged it, and its ``mlflow_monitor.gate.report`` is
  still this decision's) gets ``report_status`` ``ready`` + ``report_html``, or
  ``failed`` + ``report_error``;
- a failure also writes ``report_error.txt`` into the folder. Error texts go through the
  redactor and are escaped.

A job resumed in another process (its frames are gone) loads the reference and the
current data again and scores the candidate again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.decision import REPORT_FAILED, REPORT_READY, Decision, report_summary
from mlflow_monitor.gate.escaping import json_safe, safe_text
from mlflow_monitor.redaction import redact

__all__ = ["RUN_REPORT_STATUS", "RUN_REPORT_TAG", "ReportJob", "run_report_job"]

_logger = logging.getLogger(__name__)

#: Run tags: the candidate run's latest gate report and its state.
RUN_REPORT_TAG = "mlflow_monitor.gate.last_report"
RUN_REPORT_STATUS = "mlflow_monitor.gate.last_report_status"

TrackingUri = Union[Optional[str], Callable[[], Optional[str]]]


@dataclasses.dataclass
class ReportJob:
    """The report still to build for one recorded decision.

    ``verdict`` is the decision's ``summary.json`` (the report opens with it); ``recipe``
    the recipe as its tag holds it (a built-in name or canonical YAML); ``folder`` the
    artifact folder in ``run_id``. ``inputs`` holds the frames in memory
    (:class:`~mlflow_monitor.gate.evaluation.ReportInputs`); ``None`` after a restart.
    """

    job_id: str
    model_name: str
    version: str
    run_id: str
    folder: str
    recipe: str
    verdict: dict[str, Any]
    version_tags: bool
    created: str
    registry_uri: Optional[str] = None  # redacted in a pending record
    tracking_uri: Optional[str] = None
    inputs: Optional[Any] = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def report_uri(self) -> str:
        """``runs:/<run>/<folder>``: the decision's report folder (the version tag's value)."""
        return f"runs:/{self.run_id}/{self.folder}"

    @classmethod
    def of(cls, decision: Decision, recipe_text: str, *, version_tags: bool,
           registry_uri: Optional[str], tracking_uri: Optional[str]) -> "ReportJob":
        """The job of ``decision`` (recorded, so its folder is set); takes its frames."""
        ev = decision.evaluation
        if ev is None or not decision.run_id or not decision.report_folder:
            raise ValueError("a report job needs a recorded decision with an evaluation and a run")
        job = cls(job_id=f"{decision.report_folder.rsplit('/', 1)[-1]}-{decision.run_id[:12]}",
                  model_name=decision.model_name, version=str(decision.version), run_id=decision.run_id,
                  folder=decision.report_folder, recipe=recipe_text, verdict=report_summary(decision),
                  version_tags=version_tags, created=decision.timestamp,
                  registry_uri=registry_uri, tracking_uri=tracking_uri, inputs=ev.report_inputs)
        ev.report_inputs = None  # the job owns the frames now; the decision can be dropped
        return job

    def to_record(self) -> dict[str, Any]:
        """The job as a JSON-safe pending record (no frames; URIs redacted)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "inputs"}
        out["recipe"] = redact(self.recipe)  # a URI in it may hold credentials (see _recipe_of)
        out["registry_uri"] = redact(self.registry_uri) if self.registry_uri else None
        out["tracking_uri"] = redact(self.tracking_uri) if self.tracking_uri else None
        return json_safe(out)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ReportJob":
        """A job read back from :meth:`to_record`; raises ``ValueError`` naming a missing field."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "inputs"]
        missing = [n for n in ("job_id", "model_name", "version", "run_id", "folder", "recipe")
                   if not record.get(n)]
        if missing:
            raise ValueError(f"pending report record lacks {', '.join(missing)}")
        values: dict[str, Any] = {n: record.get(n) for n in names}
        values["verdict"] = dict(record.get("verdict") or {})
        values["version_tags"] = bool(record.get("version_tags"))
        values["created"] = str(record.get("created") or "")
        return cls(**values)


def run_report_job(job: ReportJob, *, store: Any, tracking_uri: TrackingUri) -> Optional[str]:
    """Build, write and link ``job``'s report; ``None`` when it is ready, else the error
    text (already recorded on the run and version as far as they can be written)."""
    from mlflow import MlflowClient

    uri = tracking_uri() if callable(tracking_uri) else tracking_uri
    client = MlflowClient(tracking_uri=uri)
    try:
        artifacts = _build(job, store, uri)
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_report_") as tmp:
            folder = Path(tmp)
            (folder / "report.html").write_text(str(artifacts.html), encoding="utf-8")
            (folder / "snapshot.json").write_text(json.dumps(json_safe(artifacts.snapshot), indent=1),
                                                  encoding="utf-8")
            client.log_artifacts(job.run_id, str(folder), job.folder)
    except Exception as exc:
        error = f"{type(exc).__name__}: {safe_text(redact(str(exc)))}"[:4000]
        _logger.warning("mlflow-monitor: the Evidently report of model '%s' version %s (%s) was not "
                        "built: %s", safe_text(job.model_name), safe_text(job.version), job.folder, error)
        _record_failure(job, client, store, error)
        return error
    finally:
        job.inputs = None  # free the frames whatever happened
    _link(job, client, store)
    return None


def _build(job: ReportJob, store: Any, tracking_uri: Optional[str]) -> Any:
    from mlflow_monitor.gate.evaluation import CandidateEvaluator

    evaluator = CandidateEvaluator(store, tracking_uri, _recipe_of(job, store))
    inputs = job.inputs
    if inputs is None:  # resumed after a restart: load the frames again
        inputs = evaluator.reload_report_inputs(job.model_name, store.get_model_version(job.model_name,
                                                                                        job.version))
    return evaluator.build_report(inputs, verdict=job.verdict)


def _recipe_of(job: ReportJob, store: Any) -> Any:
    """The decision's recipe. A resumed job's record holds it redacted, so the model's
    recipe tag is used instead when it is still the same recipe (same sha256)."""
    from mlflow_monitor.gate.recipe_tag import load_recipe_tag, recipe_tag_of

    if job.inputs is None and store is not None:
        try:
            text = recipe_tag_of(store, job.model_name)
            current = load_recipe_tag(text) if text is not None else None
        except Exception:
            current = None
        if current is not None and current.sha256 == job.verdict.get("recipe_hash"):
            return current
    return load_recipe_tag(job.recipe)


def _link(job: ReportJob, client: Any, store: Any) -> None:
    html = f"{job.report_uri}/report.html"
    _best_effort("tag the run with its report", lambda: (
        client.set_tag(job.run_id, RUN_REPORT_TAG, html),
        client.set_tag(job.run_id, RUN_REPORT_STATUS, REPORT_READY)))
    _tag_version(job, store, {T.REPORT_STATUS: REPORT_READY, T.REPORT_HTML: html})


def _record_failure(job: ReportJob, client: Any, store: Any, error: str) -> None:
    def write_error() -> None:
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_report_") as tmp:
            path = Path(tmp) / "report_error.txt"
            path.write_text(error + "\n", encoding="utf-8")
            client.log_artifact(job.run_id, str(path), job.folder)

    _best_effort("log report_error.txt", write_error)
    _best_effort("tag the run with the report error", lambda: (
        client.set_tag(job.run_id, RUN_REPORT_TAG, job.report_uri),
        client.set_tag(job.run_id, RUN_REPORT_STATUS, f"{REPORT_FAILED}: {error}"[:5000])))
    _tag_version(job, store, {T.REPORT_STATUS: REPORT_FAILED, T.REPORT_ERROR: error})


def _tag_version(job: ReportJob, store: Any, values: dict[str, str]) -> None:
    """Tag the version, if the decision tagged it and it still shows this decision's report
    (a later decision owns the tags otherwise)."""
    if not job.version_tags or store is None:
        return

    def tag() -> None:
        from mlflow.entities.model_registry import ModelVersionTag

        mv = store.get_model_version(job.model_name, job.version)
        if (mv.tags or {}).get(T.REPORT) != job.report_uri:
            return
        for key, value in values.items():
            store.set_model_version_tag(job.model_name, job.version, ModelVersionTag(key, value))

    _best_effort("tag the model version with its report", tag)


def _best_effort(what: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as exc:
        _logger.warning("mlflow-monitor: could not %s: %s: %s", what, type(exc).__name__,
                        redact(str(exc))[:300])

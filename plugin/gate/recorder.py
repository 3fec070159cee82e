"""Recording gate decisions: where each decision is written.

Every decision goes to

- the audit log (:mod:`mlflow_monitor.gate.audit`);
- a ``Verdict`` event (the Slack notifier subscribes).

Decisions with registry writes allowed also go to

- the candidate run's artifacts, ``mlflow_monitor/gate/<UTC timestamp>-<target>/`` (a new
  folder per decision, never reused): ``summary.json`` now, then ``report.html``
  (Evidently) and ``snapshot.json`` once the deferred report is built
  (:mod:`.report_worker`);
- run metrics ``monitor/drift_share``, ``monitor/<metric>``, ... at the next step of the
  run's ``monitor/check`` counter (each check one point later: a time series);
- model-version tags ``mlflow_monitor.gate.*`` and a block in the version description.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from mlflow_monitor.formatting import format_number
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import append_audit
from mlflow_monitor.gate.decision import REPORT_PENDING, Decision, report_summary, summary_of
from mlflow_monitor.gate.escaping import is_finite, markdown_text, safe_number, safe_text
from mlflow_monitor.gate.evidence import EVIDENCE_TAG
from mlflow_monitor.redaction import redact

__all__ = ["CHECK_METRIC", "VERDICT_LINE_MARK", "DecisionRecorder", "describe", "replace_description_block",
           "verdict_line"]

#: Run metric counting the gate checks of a run: its value is the step of the check's points.
CHECK_METRIC = T.METRIC_PREFIX + "check"

_logger = logging.getLogger(__name__)


class DecisionRecorder:
    """Writes a decision to the audit log, the run, the version and the event bus."""

    def __init__(self, inner_store: Any, tracking_uri: Callable[[], Optional[str]],
                 registry_uri: Optional[str] = None) -> None:
        self._inner = inner_store
        self._tracking_uri = tracking_uri
        self._registry_uri = registry_uri

    def record(self, decision: Decision, *, version_tags: bool, artifacts: Optional[bool] = None,
               publish: bool = True) -> None:
        """Record ``decision``. ``artifacts`` defaults to ``version_tags``; ``publish`` sends
        the ``Verdict`` event. Registry and run writes are best effort (a failure is
        logged, never hides the verdict).

        The Evidently report is built afterwards (:func:`.report_worker.submit_report`):
        ``summary.json`` and the tags say ``report_status: pending`` until it is linked.
        Without artifacts, no report is built."""
        artifacts = version_tags if artifacts is None else artifacts
        ev = decision.evaluation
        deferred = bool(artifacts and decision.run_id and ev is not None and ev.report_inputs is not None)
        if deferred:
            decision.report_status = REPORT_PENDING
        if artifacts and decision.run_id:
            self._try("log the report artifacts", lambda: self._log_run(decision))
        if deferred and not decision.report_folder:  # no folder to build the report into
            deferred, decision.report_status = False, None
        if version_tags:
            self._try("tag the model version", lambda: self._tag_version(decision))
        self._try("append to the audit log", lambda: append_audit(summary_of(decision)))
        if publish:
            _publish(decision)
        if deferred:
            self._try("queue the Evidently report", lambda: self._submit_report(decision, version_tags))
        elif ev is not None:
            ev.report_inputs = None  # no report: free the frames

    def _submit_report(self, decision: Decision, version_tags: bool) -> None:
        from mlflow_monitor.gate.report_job import ReportJob
        from mlflow_monitor.gate.report_worker import submit_report

        inputs = decision.evaluation.report_inputs if decision.evaluation is not None else None
        recipe = getattr(inputs, "recipe", None)
        job = ReportJob.of(decision, recipe.to_yaml() if recipe is not None else "",
                           version_tags=version_tags, registry_uri=self._registry_uri,
                           tracking_uri=self._tracking_uri())
        submit_report(job, store=self._inner, tracking_uri=job.tracking_uri)  # resolved now, not later

    def _try(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:
            _logger.warning("mlflow-monitor gate: could not %s: %s: %s", what,
                            type(exc).__name__, redact(str(exc))[:300])

    # -- run artifacts and metrics ----------------------------------------------------
    def _log_run(self, decision: Decision) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = MlflowClient(tracking_uri=self._tracking_uri())
        run = client.get_run(str(decision.run_id))
        decision.report_folder = _new_folder(client, decision)
        ev = decision.evaluation
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_gate_") as tmp:
            folder = Path(tmp)
            (folder / "summary.json").write_text(
                json.dumps(report_summary(decision), indent=2), encoding="utf-8")
            client.log_artifacts(str(decision.run_id), str(folder), decision.report_folder)
        if ev is not None:
            ts = int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)
            step = int(run.data.metrics.get(CHECK_METRIC, 0)) + 1  # this run's next check
            values = dict(ev.metrics)
            for k, v in (ev.champion_metrics or {}).items():
                values[f"champion_{k}"] = v
            metrics = [Metric(T.METRIC_PREFIX + k, float(v), ts, step)
                       for k, v in values.items() if is_finite(v)]
            metrics.append(Metric(CHECK_METRIC, float(step), ts, step))
            client.log_batch(str(decision.run_id), metrics=metrics)

    # -- version tags and description -------------------------------------------------
    def _tag_version(self, decision: Decision) -> None:
        from mlflow.entities.model_registry import ModelVersionTag

        name, version = decision.model_name, decision.version
        values = {
            T.VERDICT: decision.verdict,
            T.TARGET: decision.target.label,
            T.TIMESTAMP: decision.timestamp,
            T.AUDIT: safe_text(f"{decision.user} {decision.timestamp} {decision.target.label} "
                               f"{decision.verdict}"),
            T.REASON: _reason(decision)[:4000],
        }
        if decision.recipe_hash:
            values[T.RECIPE_HASH] = decision.recipe_hash
        if decision.report_uri:
            values[T.REPORT] = decision.report_uri
        if decision.report_status:
            values[T.REPORT_STATUS] = decision.report_status
        ev = decision.evaluation
        if ev is not None and "drift_share" in ev.metrics:
            values[T.DRIFT_SHARE] = format_number(ev.metrics["drift_share"])
        if ev is not None and ev.champion_version:
            values[T.CHAMPION] = ev.champion_version
        if ev is not None and ev.evidence is not None:
            values[EVIDENCE_TAG] = ev.evidence.level
        if decision.override_reason is not None:
            values[T.OVERRIDE_USED] = safe_text(
                f"{decision.override_reason} (by {decision.user} at {decision.timestamp}, "
                f"{decision.target.label})")[:4000]
        for key, value in values.items():
            self._inner.set_model_version_tag(name, version, ModelVersionTag(key, str(value)))
        mv = self._inner.get_model_version(name, version)
        for stale in (T.REPORT_HTML, T.REPORT_ERROR, T.REPORT_STATUS):  # an earlier decision's report
            if stale in (mv.tags or {}) and stale not in values:
                self._inner.delete_model_version_tag(name, version, stale)
        text = replace_description_block(mv.description or "", describe(decision),
                                         headline=verdict_line(decision))
        self._inner.update_model_version(name, version, description=text)


def _new_folder(client: Any, decision: Decision) -> str:
    """``mlflow_monitor/gate/<UTC stamp>-<target>``: the decision's own artifact folder. One
    that exists already (two checks in the same microsecond) gets a random suffix: a
    check never overwrites another's files."""
    import uuid

    stamp = decision.timestamp.replace("-", "").replace(":", "")
    folder = f"{T.ARTIFACT_ROOT}/{stamp}-{decision.target.slug}"
    if client.list_artifacts(decision.run_id, folder):
        folder = f"{folder}-{uuid.uuid4().hex[:8]}"
    return folder


#: Follows the verdict at the start of the readable line written before our description
#: block: ``BLOCKED (mlflow-monitor gate) for alias:champion · ...`` (the verdict first:
#: MLflow's versions table shows only the first few characters).
VERDICT_LINE_MARK = " (mlflow-monitor gate) "


def verdict_line(decision: Decision) -> str:
    """One readable line for the version description, before the block's marker (MLflow's
    versions table previews the description's start): verdict, target, what failed, and
    the evidence. Markdown-escaped."""
    md = markdown_text
    ev = decision.evaluation
    parts = [f"{decision.verdict}{VERDICT_LINE_MARK}for {md(decision.target.label)}"]
    if decision.error:
        parts.append(f"evaluation error ({md(decision.error.split(':', 1)[0][:40])})")
    elif ev is not None and ev.failed_rules:
        more = f" (+{len(ev.failed_rules) - 1} more)" if len(ev.failed_rules) > 1 else ""
        rule = _plain_rule(ev.failed_rules[0].rule)
        parts.append(f"{rule} failed{more}" if rule else f"{len(ev.failed_rules)} failed rule(s)")
    elif decision.override_reason is not None:
        parts.append(f"override by {md(decision.user)}")
    elif ev is not None:
        parts.append("all rules passed")
    if ev is not None and ev.evidence is not None:
        parts.append(f"evidence {ev.evidence.level}")
    return " \u00b7 ".join(parts)


def describe(decision: Decision) -> str:
    """The short markdown summary we keep in the version description (escaped)."""
    md = markdown_text
    lines = [f"**mlflow-monitor gate: {decision.verdict}** for {md(decision.target.label)} "
             f"at {decision.timestamp} by {md(decision.user)}"]
    ev = decision.evaluation
    if decision.error:
        lines.append(f"- evaluation error: {md(decision.error)}")
    if decision.override_reason is not None:
        lines.append(f"- override: {md(decision.override_reason)}")
    if ev is not None:
        for r in ev.rule_results:
            mark = "FAILED" if not r.passed else ("skipped" if r.skipped else "ok")
            lines.append(f"- {mark}: {md(r.rule)} (actual {safe_number(r.actual)}, "
                         f"threshold {safe_number(r.threshold)})")
        if ev.champion_version:
            lines.append(f"- compared with champion version {md(ev.champion_version)}")
        if ev.evidence is not None:
            lines.append(f"- evidence: {md(ev.evidence.summary())}")
    if decision.report_uri:
        lines.append(f"- report: run {md(decision.run_id)}, artifacts {md(decision.report_folder)}/report.html")
    return "\n".join(lines)


def replace_description_block(description: str, block: str, headline: Optional[str] = None) -> str:
    """``description`` with our block (and the verdict line before it) replaced, or
    appended; the user's text is kept. ``headline`` is the readable line written just
    before the block's begin marker, so a description holding only our block starts
    with it, not with the marker."""
    begin, end = T.DESCRIPTION_BEGIN, T.DESCRIPTION_END
    ours = f"{begin}\n{block}\n{end}"
    if headline:
        ours = f"{headline}\n\n{ours}"
    start = description.find(begin)
    if start >= 0:
        stop = description.find(end, start)
        stop = len(description) if stop < 0 else stop + len(end)
        start = _verdict_line_start(description, start)
        return description[:start] + ours + description[stop:]
    if description.strip():
        return description.rstrip() + "\n\n" + ours
    return ours


_PLAIN_RULE = re.compile(r"[A-Za-z0-9_ .<>=!+-]{1,60}")


def _plain_rule(rule: str) -> Optional[str]:
    """``rule`` when it reads the same as raw text and as markdown (the versions table shows
    the description raw, the version page renders it), else None."""
    if _PLAIN_RULE.fullmatch(rule) and not re.search(r"<[A-Za-z/!?]|^[>\s]|__", rule):
        return rule
    return None


def _verdict_line_start(description: str, begin_at: int) -> int:
    """Where our verdict line before the marker at ``begin_at`` starts (``begin_at`` if none)."""
    before = description[:begin_at].rstrip("\n")
    line_start = before.rfind("\n") + 1
    first, _, rest = before[line_start:].partition(" ")
    if first.isupper() and (" " + rest).startswith(VERDICT_LINE_MARK):
        return line_start
    return begin_at


def _reason(decision: Decision) -> str:
    if decision.error:
        return decision.error
    if decision.override_reason is not None:
        return f"override: {safe_text(decision.override_reason)}"
    ev = decision.evaluation
    if ev is None:
        return ""
    failed = ev.failed_rules
    if not failed:
        return "all rules passed"
    return "; ".join(f"{safe_text(r.rule)}: actual {safe_number(r.actual)}, threshold {safe_number(r.threshold)}"
                     for r in failed)


def _publish(decision: Decision) -> None:
    from mlflow_monitor.events import Verdict, publish

    ev = decision.evaluation
    failed, drifted, metrics, delta = [], [], {}, {}
    if ev is not None:
        failed = [{"rule": r.rule, "actual": r.actual, "threshold": r.threshold, "message": r.message}
                  for r in ev.failed_rules]
        if ev.drift is not None:
            drifted = [{"column": c.column, "score": c.score, "method": c.method,
                        "threshold": c.threshold} for c in ev.drift.columns if c.drifted]
        metrics = {k: float(v) for k, v in ev.metrics.items()}
        for k, v in (ev.champion_metrics or {}).items():
            if k in ev.metrics:
                delta[k] = float(ev.metrics[k]) - float(v)
    elif decision.error:
        failed = [{"rule": "evaluation", "actual": None, "threshold": None, "message": decision.error}]
    publish(Verdict(
        model_name=decision.model_name, version=decision.version, target=decision.target.label,
        passed=decision.verdict == T.PASSED, failed_rules=failed, drifted_columns=drifted,
        metrics=metrics, champion_version=ev.champion_version if ev else None,
        champion_delta=delta, run_id=decision.run_id, report_path=decision.report_folder,
        overridden=decision.override_reason is not None, override_reason=decision.override_reason,
        user=decision.user, notify=decision.notify,
        evidence=ev.evidence.summary() if ev is not None and ev.evidence is not None else None,
    ))

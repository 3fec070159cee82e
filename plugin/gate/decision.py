"""The gate's values: what a promotion moves (:class:`Target`), the numbers behind a
verdict (:class:`Evaluation`) and the verdict itself (:class:`Decision`).

Verdict values are the constants of :mod:`mlflow_monitor.gate.tags` (``PASSED``,
``BLOCKED``, ...) plus :data:`NOT_GATED`, which is never recorded.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING, Any, Optional

from mlflow_monitor.gate.escaping import json_safe, safe_number, safe_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.gate.drift import DriftResult
    from mlflow_monitor.gate.evidence import Evidence
    from mlflow_monitor.gate.rules import RuleResult
    from mlflow_monitor.recipes import Recipe

__all__ = ["HEADLINE_CHARS", "NOT_GATED", "REPORT_FAILED", "REPORT_PENDING", "REPORT_READY", "Decision",
           "Evaluation", "Target", "report_summary", "summary_of"]

#: The recipe's triggers do not cover this target: the promotion is not gated (never recorded).
NOT_GATED = "NOT_GATED"

#: States of a decision's Evidently report (``summary.json`` ``report.status``, version tag
#: ``mlflow_monitor.gate.report_status``): built after the decision, off the caller's thread.
REPORT_PENDING, REPORT_READY, REPORT_FAILED = "pending", "ready", "failed"

#: Longest first line of a block message (what a UI toast shows).
HEADLINE_CHARS = 120


@dataclasses.dataclass(frozen=True)
class Target:
    """What a promotion moves: ``Target("alias", "champion")``, ``Target("stage", "Production")``
    or ``Target("new_version")``."""

    kind: str  # "alias" | "stage" | "new_version"
    name: str = ""

    @property
    def label(self) -> str:
        return self.kind if self.kind == "new_version" else f"{self.kind}:{self.name}"

    @property
    def slug(self) -> str:
        """Path-safe form for artifact folder names."""
        raw = self.label.replace(":", "-")
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)[:80]

    def triggered_by(self, recipe: "Recipe") -> bool:
        """Whether ``recipe``'s triggers gate this target."""
        trig = recipe.triggers
        if self.kind == "alias":
            return trig.matches_alias(self.name)
        if self.kind == "stage":
            return trig.matches_stage(self.name)
        return bool(trig.new_versions)


@dataclasses.dataclass
class Evaluation:
    """The numbers behind a verdict."""

    rule_results: list["RuleResult"]
    metrics: dict[str, float]
    drift: Optional["DriftResult"] = None
    champion_version: Optional[str] = None
    champion_metrics: Optional[dict[str, float]] = None
    report_error: Optional[str] = None  # why the deferred report failed, when known
    reference_rows: int = 0
    current_rows: int = 0
    evidence: Optional["Evidence"] = None  # where each input came from
    # the frames the deferred Evidently report is built from (never serialised; dropped
    # once the report is built): a ``mlflow_monitor.gate.evaluation.ReportInputs``
    report_inputs: Optional[Any] = dataclasses.field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rule_results)

    @property
    def failed_rules(self) -> list["RuleResult"]:
        return [r for r in self.rule_results if not r.passed]


@dataclasses.dataclass
class Decision:
    """One gate decision on one version and target."""

    model_name: str
    version: str
    target: Target
    verdict: str  # a tags.* verdict value, or NOT_GATED
    allowed: bool  # whether the promotion goes through
    user: str
    timestamp: str
    recipe_hash: Optional[str] = None
    run_id: Optional[str] = None
    evaluation: Optional[Evaluation] = None
    error: Optional[str] = None  # evaluation error, already redacted
    override_reason: Optional[str] = None
    report_folder: Optional[str] = None  # artifact path in run_id
    notify: Optional[dict[str, Any]] = None
    report_status: Optional[str] = None  # REPORT_PENDING / READY / FAILED once recorded

    @property
    def report_uri(self) -> Optional[str]:
        if self.run_id and self.report_folder:
            return f"runs:/{self.run_id}/{self.report_folder}"
        return None

    def headline(self, limit: int = HEADLINE_CHARS) -> str:
        """The first line of :meth:`message`: verdict, target, the (first) failed rule or
        error, and where to read more, in at most ``limit`` characters (a UI toast shows
        about one line, for a few seconds). Escaped like the rest of the message."""
        head = f"mlflow-monitor gate {self.verdict} v{safe_text(self.version)} -> {safe_text(self.target.label)}"
        where = "details below" if self.evaluation is None else "details on the version page"
        why = ""
        if self.error:
            kind = self.error.split(":", 1)[0].strip() or "error"
            why = f"evaluation error ({safe_text(kind[:40])})"
        elif self.evaluation is not None and self.evaluation.failed_rules:
            failed = self.evaluation.failed_rules
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            budget = max(12, limit - len(head) - len(where) - len(more) - len(" failed") - 4)
            rule = safe_text(failed[0].rule)
            if len(rule) > budget:
                rule = rule[: budget - 3].rstrip() + "..."
            why = f"{rule} failed{more}"
        line = f"{head}: {why}; {where}" if why else f"{head}; {where}"
        return line if len(line) <= limit else line[: limit - 3] + "..."

    def message(self) -> str:
        """Plain-text, escaped explanation (the exception text on a block): :meth:`headline`
        first, then one detail per line."""
        lines = [self.headline(),
                 f"  model '{safe_text(self.model_name)}' version {safe_text(self.version)} -> "
                 f"{safe_text(self.target.label)}"]
        if self.error:
            lines.append(f"  evaluation error: {self.error}")
        if self.evaluation is not None:
            for r in self.evaluation.failed_rules:
                lines.append(f"  - FAILED {safe_text(r.rule)}: actual {safe_number(r.actual)}, "
                             f"threshold {safe_number(r.threshold)} ({safe_text(r.message)})")
            if self.evaluation.champion_version:
                lines.append(f"  compared with champion version {self.evaluation.champion_version}")
            if self.evaluation.evidence is not None:
                lines.append(f"  evidence: {safe_text(self.evaluation.evidence.summary())}")
        if self.override_reason:
            lines.append(f"  override: {safe_text(self.override_reason)}")
        if self.report_uri:
            lines.append(f"  report: {self.report_uri}/report.html (summary.json alongside)")
        if not self.allowed:
            lines.append(f"  break glass (four eyes): mlflow-monitor override '{safe_text(self.model_name)}' "
                         f"{safe_text(self.version)} --reason '...', then a second person with MANAGE "
                         f"runs it with --approve")
        return "\n".join(lines)


def summary_of(decision: Decision) -> dict[str, Any]:
    """The JSON-safe record of a decision (``summary.json`` and the audit line)."""
    ev = decision.evaluation
    out: dict[str, Any] = {
        "model_name": decision.model_name,
        "version": decision.version,
        "target": decision.target.label,
        "verdict": decision.verdict,
        "allowed": decision.allowed,
        "user": decision.user,
        "timestamp": decision.timestamp,
        "recipe_hash": decision.recipe_hash,
        "run_id": decision.run_id,
        "report": decision.report_uri,
        "error": decision.error,
        "override_reason": decision.override_reason,
    }
    if ev is not None:
        out["rules"] = [json_safe(r.to_dict()) for r in ev.rule_results]
        out["metrics"] = json_safe(ev.metrics)
        out["champion_version"] = ev.champion_version
        out["champion_metrics"] = json_safe(ev.champion_metrics)
        out["reference_rows"] = ev.reference_rows
        out["current_rows"] = ev.current_rows
        out["report_error"] = ev.report_error
        out["evidence"] = ev.evidence.to_dict() if ev.evidence is not None else None
        if ev.drift is not None:
            out["drifted_columns"] = [json_safe(_column(c)) for c in ev.drift.columns if c.drifted]
    return out


def report_summary(decision: Decision) -> dict[str, Any]:
    """``summary.json``, and the verdict header of the HTML report: it opens with the
    verdict, the rules (actual values and thresholds) and the drift method with every
    column's applied threshold, then the rest of :func:`summary_of`, then the report's
    state. Keys stay in this order (the file is written unsorted)."""
    base = summary_of(decision)
    ev = decision.evaluation
    out: dict[str, Any] = {k: base.pop(k) for k in
                           ("verdict", "allowed", "model_name", "version", "target", "timestamp")}
    out["reason"] = decision.error or (
        "; ".join(f"{r['rule']}: actual {safe_number(r['actual'])}, threshold {safe_number(r['threshold'])}"
                  for r in base.get("rules", []) if not r.get("passed")) or None)
    if "rules" in base:
        out["rules"] = base.pop("rules")
    if ev is not None and ev.drift is not None:
        out["drift"] = _drift_header(ev.drift)
    out.update(base)
    out["report_status"] = decision.report_status
    return out


def _drift_header(drift: Any) -> dict[str, Any]:
    """The drift verdict's scalar fields (whatever the engine reports: share, counts, its
    method, alpha...), the methods its columns used, and one row per column."""
    fields = drift.to_dict() if hasattr(drift, "to_dict") else {}
    head: dict[str, Any] = {k: v for k, v in fields.items()
                            if k != "columns" and (v is None or isinstance(v, (str, numbers.Number)))}
    methods = sorted({str(c.method) for c in drift.columns})
    head.setdefault("method", ", ".join(methods) if methods else None)
    head["column_methods"] = methods
    head["skipped"] = list(getattr(drift, "skipped", ()) or ())
    head["columns"] = [json_safe(_column(c)) for c in drift.columns]
    return json_safe(head)


def _column(c: Any) -> dict[str, Any]:
    """One column of the drift verdict: ``threshold`` is the threshold applied; calibrated
    detection adds the calibrated threshold, the effect floor, the per-test alpha and the
    data-quality findings."""
    out = {"column": c.column, "column_type": c.column_type, "method": c.method,
           "threshold": c.threshold, "score": c.score, "drifted": c.drifted,
           "detection": getattr(c, "detection", "evidently"),
           "calibrated_threshold": getattr(c, "calibrated_threshold", None),
           "effect_floor": getattr(c, "effect_floor", None), "alpha": getattr(c, "alpha", None)}
    findings = getattr(c, "findings", None)
    out["findings"] = findings.to_dict() if findings is not None else None
    return out

"""The promotion gate: evaluate a model version against its recipe, then allow or block.

:class:`PromotionGate` is what the ``monitor:`` registry store calls. On a triggering
promotion it

1. resolves the registered model's recipe (tag ``mlflow_monitor.recipe``); none: pass-through;
2. takes the per-(registry, model, target) lock (:mod:`.promotion_lock`: the registry
   database's own lock, so replicas of ``mlflow server`` queue too) and, under it,
3. re-reads the recipe and the version holding the target (the champion of this moment,
   recorded in the audit as ``champion_before``);
4. consumes a break-glass override if one is set on the version (:mod:`.override`);
5. evaluates (:mod:`.evaluation`): reference + current data, validation, drift verdict,
   performance (with the candidate's predictions), the champion on the same data, rules;
6. promotes (pass) or raises ``MlflowException(BAD_REQUEST)`` (HTTP 400) listing every
   failed rule, its actual value, its threshold and the report location;
7. records the decision (:mod:`.recorder`: ``summary.json``, metrics, tags, the audit
   chain in the registry's database) and publishes a ``Verdict`` -- still under the lock;
   then queues the Evidently report (:mod:`.report_worker`).

Time budget: the verdict (drift on all rows, metrics, rules) runs in the caller's
request; the HTML report is built after the call returns, on a background thread, from a
bounded seeded sample (``report.sample_size``), and linked when ready. A report failure
never changes the verdict. See ``docs/gate.md``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, TypeVar

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import audit_scope
from mlflow_monitor.gate.decision import NOT_GATED, Decision, Target
from mlflow_monitor.gate.errors import invalid_input, promotion_blocked
from mlflow_monitor.gate.escaping import safe_text
from mlflow_monitor.gate.evaluation import CandidateEvaluator, champion_of
from mlflow_monitor.gate.override import consume_override
from mlflow_monitor.gate.promotion_lock import promotion_lock
from mlflow_monitor.gate.provenance import current_user, utc_now
from mlflow_monitor.gate.recipe_tag import load_recipe_tag, recipe_tag_of
from mlflow_monitor.gate.recorder import DecisionRecorder
from mlflow_monitor.redaction import redact

__all__ = ["PromotionGate"]

_logger = logging.getLogger(__name__)
R = TypeVar("R")


class PromotionGate:
    """Evaluates promotions of versions in ``inner`` (a registry store) against their recipe."""

    def __init__(self, inner: Any, *, inner_uri: str, tracking_uri: Optional[str]) -> None:
        self._inner = inner
        self._inner_uri = inner_uri  # the registry database: its audit table and its locks
        self._tracking_uri = tracking_uri
        self._recorder = DecisionRecorder(inner, self.tracking_uri, inner_uri)

    # -- entry points -----------------------------------------------------------------
    def enforce(self, name: str, version: str, target: Target, promote: Callable[[], R]) -> R:
        """Run ``promote`` only if the gate allows promoting ``version`` of ``name`` to ``target``."""
        if recipe_tag_of(self._inner, name) is None:
            return promote()  # not gated: no recipe on this model
        with promotion_lock(self._inner_uri, name, target.label), \
                audit_scope(self._inner_uri) as audit_extra:
            recipe_text = recipe_tag_of(self._inner, name)  # the policy of this moment
            if recipe_text is None:
                return promote()
            audit_extra["champion_before"] = self._holder(name, target)
            decision = self._decide(name, version, target, recipe_text)
            if decision.verdict == NOT_GATED:
                return promote()
            if not decision.allowed:
                self._recorder.record(decision, version_tags=decision.evaluation is not None)
                raise promotion_blocked(decision)
            result = promote()
            self._recorder.record(decision, version_tags=True)
        return result

    def _holder(self, name: str, target: Target) -> Optional[str]:
        """The version holding ``target`` now (read under the lock), else None."""
        holder = champion_of(self._inner, name, target, candidate="")
        return None if holder is None else str(holder.version)

    def on_new_version(self, mv: Any) -> Optional[Decision]:
        """Advisory check of a just-created version (recipe ``triggers.new_versions``).

        Records the verdict on the version; never raises and never deletes the version:
        the version cannot reach users until an alias or stage promotion, which is gated.
        """
        try:
            return self._on_new_version(mv)
        except Exception as exc:  # a new version must never fail because of the gate
            _logger.warning("mlflow-monitor: new-version check of '%s' failed: %s",
                            safe_text(getattr(mv, "name", "?")), redact(str(exc)))
            return None

    def _on_new_version(self, mv: Any) -> Optional[Decision]:
        with audit_scope(self._inner_uri):
            recipe_text = recipe_tag_of(self._inner, mv.name)
            if recipe_text is None:
                return None
            recipe = load_recipe_tag(recipe_text)
            if not Target("new_version").triggered_by(recipe):
                return None
            decision = self.check(mv.name, str(mv.version), Target("new_version"), recipe=recipe)
            if not decision.allowed:
                decision.verdict = T.ADVISORY_FAILED
            decision.allowed = True
            self._recorder.record(decision, version_tags=decision.evaluation is not None)
            return decision

    def check(
        self,
        name: str,
        version: str,
        target: Target,
        *,
        recipe: Any = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> Decision:
        """Evaluate without promoting or recording (``mlflow-monitor check``).

        ``recipe`` overrides the model's recipe tag. Bad input gives a BLOCKED decision with
        ``error`` set (``allowed`` follows the recipe's ``on_error``).
        """
        if recipe is None:
            text = recipe_tag_of(self._inner, name)
            if text is None:
                raise invalid_input(f"registered model '{safe_text(name)}' has no recipe: set tag "
                                    f"'{T.RECIPE}' (mlflow-monitor recipe set MODEL FILE) or pass --recipe")
            recipe = text
        return self._evaluate_decision(name, version, target, recipe, progress=progress)

    def record(self, decision: Decision, *, version_tags: bool, artifacts: Optional[bool] = None,
               publish: bool = True) -> None:
        """Log artifacts/metrics, tag the version (optional), audit and publish ``decision``."""
        with audit_scope(self._inner_uri):
            self._recorder.record(decision, version_tags=version_tags, artifacts=artifacts,
                                  publish=publish)

    def tracking_uri(self) -> Optional[str]:
        """Inside ``mlflow server`` the backend store; else the URI given or current."""
        from mlflow_monitor.mlflow_compat import server_backend_store_uri

        server_backend = server_backend_store_uri()
        if server_backend:
            return server_backend
        if self._tracking_uri:
            return self._tracking_uri
        import mlflow

        return mlflow.get_tracking_uri()

    # -- decision -----------------------------------------------------------------------
    def _decide(self, name: str, version: str, target: Target, recipe_text: str) -> Decision:
        try:
            recipe, recipe_error = load_recipe_tag(recipe_text), None
        except Exception as exc:  # unreadable: every target is gated (fail closed)
            recipe, recipe_error = None, exc
        if recipe is not None and not target.triggered_by(recipe):
            return Decision(name, version, target, NOT_GATED, True, current_user(), utc_now())
        override = consume_override(self._inner, name, version)
        if override is not None:
            reason, who = override
            mv = self._inner.get_model_version(name, version)
            return Decision(name, version, target, T.OVERRIDDEN, True, who, utc_now(),
                            recipe_hash=getattr(recipe, "sha256", None), run_id=mv.run_id,
                            override_reason=reason,
                            notify=(dict(recipe.notify) or None) if recipe else None)
        if recipe_error is not None:
            return self._error_decision(name, version, target, None, recipe_error, allow=False)
        return self._evaluate_decision(name, version, target, recipe)

    def _evaluate_decision(
        self, name: str, version: str, target: Target, recipe: Any,
        progress: Optional[Callable[[str], None]] = None,
    ) -> Decision:
        try:
            recipe = load_recipe_tag(recipe)
        except Exception as exc:
            return self._error_decision(name, version, target, None, exc, allow=False)
        mv = self._inner.get_model_version(name, version)  # MLflow's own error if missing
        try:
            evaluation = CandidateEvaluator(self._inner, self.tracking_uri(), recipe, progress).run(
                name, mv, target)
        except Exception as exc:
            return self._error_decision(name, version, target, recipe, exc,
                                        allow=recipe.on_error == "allow", run_id=mv.run_id)
        passed = evaluation.passed
        return Decision(
            name, version, target, T.PASSED if passed else T.BLOCKED, passed, current_user(),
            utc_now(), recipe_hash=recipe.sha256, run_id=mv.run_id, evaluation=evaluation,
            notify=dict(recipe.notify) or None,
        )

    def _error_decision(self, name: str, version: str, target: Target, recipe: Any, exc: BaseException,
                        *, allow: bool, run_id: Optional[str] = None) -> Decision:
        error = f"{type(exc).__name__}: {safe_text(redact(str(exc)))}"
        return Decision(
            name, version, target, T.ERROR_ALLOWED if allow else T.BLOCKED, allow,
            current_user(), utc_now(), recipe_hash=getattr(recipe, "sha256", None),
            run_id=run_id, error=error, notify=(dict(recipe.notify) or None) if recipe else None,
        )

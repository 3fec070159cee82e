"""The promotion gate: evaluate a model version against its recipe, then allow or block.

:class:`PromotionGate` is what the ``monitor:`` registry store calls. On a triggering
promotion it

1. resolves the registered model's recipe (tag ``mlflow_monitor.recipe``); none: pass-through;
2. takes a per-(registry, model, target) lock, so the verdict and the alias/stage change
   happen together and a failing version can never end up holding the target;
3. consumes a break-glass override if one is set on the version;
4. evaluates: reference + current data, validation, drift verdict, performance (with the
   candidate's predictions), the champion on the same data, rules, the Evidently report;
5. promotes (pass) or raises ``MlflowException(BAD_REQUEST)`` (HTTP 400) listing every
   failed rule, its actual value, its threshold and the report location;
6. records the decision (:mod:`mlflow_monitor.gate.audit`) and publishes a ``Verdict``.

Time budget: the verdict (drift on all rows, metrics, rules) runs in the caller's
request; the HTML report is built from a bounded seeded sample (``report.sample_size``)
and a report failure never changes the verdict. See ``docs/gate.md``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import (
    DecisionRecorder,
    current_user,
    redact,
    safe_text,
    utc_now,
)

_logger = logging.getLogger(__name__)
R = TypeVar("R")

_PREDICTION = "prediction"  # column the candidate's predictions go to when the recipe names none

#: Longest a promotion waits for another promotion of the same model and target.
LOCK_TIMEOUT_S = 600.0


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

    def triggered_by(self, recipe: Any) -> bool:
        trig = recipe.triggers
        if self.kind == "alias":
            return trig.matches_alias(self.name)
        if self.kind == "stage":
            return trig.matches_stage(self.name)
        return bool(trig.new_versions)


@dataclasses.dataclass
class Evaluation:
    """The numbers behind a verdict."""

    rule_results: list[Any]  # mlflow_monitor.gate.rules.RuleResult
    metrics: dict[str, float]
    drift: Any = None  # mlflow_monitor.gate.drift.DriftResult
    champion_version: Optional[str] = None
    champion_metrics: Optional[dict[str, float]] = None
    report: Any = None  # mlflow_monitor.gate.reports.ReportArtifacts
    report_error: Optional[str] = None
    reference_rows: int = 0
    current_rows: int = 0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rule_results)

    @property
    def failed_rules(self) -> list[Any]:
        return [r for r in self.rule_results if not r.passed]


@dataclasses.dataclass
class Decision:
    """One gate decision on one version and target."""

    model_name: str
    version: str
    target: Target
    verdict: str  # a tags.* verdict value
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

    @property
    def report_uri(self) -> Optional[str]:
        if self.run_id and self.report_folder:
            return f"runs:/{self.run_id}/{self.report_folder}"
        return None

    def message(self) -> str:
        """Plain-text, escaped explanation (the exception text on a block)."""
        head = (f"mlflow-monitor gate {self.verdict}: model '{safe_text(self.model_name)}' "
                f"version {safe_text(self.version)} -> {safe_text(self.target.label)}")
        lines = [head]
        if self.error:
            lines.append(f"  evaluation error: {self.error}")
        if self.evaluation is not None:
            for r in self.evaluation.failed_rules:
                lines.append(f"  - FAILED {safe_text(r.rule)}: actual {_fmt(r.actual)}, "
                             f"threshold {_fmt(r.threshold)} ({safe_text(r.message)})")
            if self.evaluation.champion_version:
                lines.append(f"  compared with champion version {self.evaluation.champion_version}")
        if self.override_reason:
            lines.append(f"  override: {safe_text(self.override_reason)}")
        if self.report_uri:
            lines.append(f"  report: {self.report_uri}/report.html (summary.json alongside)")
        if not self.allowed:
            lines.append(f"  break glass: mlflow-monitor override '{safe_text(self.model_name)}' "
                         f"{safe_text(self.version)} --reason '...'")
        return "\n".join(lines)


class PromotionGate:
    """Evaluates promotions of versions in ``inner`` (a registry store) against their recipe."""

    def __init__(self, inner: Any, *, inner_uri: str, tracking_uri: Optional[str]) -> None:
        self._inner = inner
        self._lock_key = hashlib.sha256(inner_uri.encode()).hexdigest()[:16]
        self._tracking_uri = tracking_uri
        self._recorder = DecisionRecorder(inner, self.tracking_uri)

    # -- entry points -----------------------------------------------------------------
    def enforce(self, name: str, version: str, target: Target, promote: Callable[[], R]) -> R:
        """Run ``promote`` only if the gate allows promoting ``version`` of ``name`` to ``target``."""
        recipe_text = self._recipe_text(name)
        if recipe_text is None:
            return promote()  # not gated: no recipe on this model
        with _promotion_lock(self._lock_key, name, target.label):
            decision = self._decide(name, version, target, recipe_text)
            if decision.verdict == _NOT_GATED:
                return promote()
            if not decision.allowed:
                self._recorder.record(decision, version_tags=decision.evaluation is not None)
                raise _blocked(decision)
            result = promote()
            self._recorder.record(decision, version_tags=True)
        return result

    def on_new_version(self, mv: Any) -> Optional[Decision]:
        """Advisory check of a just-created version (recipe ``triggers.new_versions``).

        Records the verdict on the version; never raises and never deletes the version:
        the version cannot reach users until an alias or stage promotion, which is gated.
        """
        try:
            recipe_text = self._recipe_text(mv.name)
            if recipe_text is None:
                return None
            recipe = _load_recipe(recipe_text)
            if not Target("new_version").triggered_by(recipe):
                return None
            decision = self.check(mv.name, str(mv.version), Target("new_version"), recipe=recipe)
            if not decision.allowed:
                decision.verdict = T.ADVISORY_FAILED
            decision.allowed = True
            self._recorder.record(decision, version_tags=decision.evaluation is not None)
            return decision
        except Exception as exc:  # a new version must never fail because of the gate
            _logger.warning("mlflow-monitor: new-version check of '%s' failed: %s",
                            safe_text(getattr(mv, "name", "?")), redact(str(exc)))
            return None

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
            text = self._recipe_text(name)
            if text is None:
                raise _invalid(f"registered model '{safe_text(name)}' has no recipe: set tag "
                               f"'{T.RECIPE}' (mlflow-monitor recipe set MODEL FILE) or pass --recipe")
            recipe = text
        return self._evaluate_decision(name, version, target, recipe, progress=progress)

    def record(self, decision: Decision, *, version_tags: bool, artifacts: Optional[bool] = None,
               publish: bool = True) -> None:
        """Log artifacts/metrics, tag the version (optional), audit and publish ``decision``."""
        self._recorder.record(decision, version_tags=version_tags, artifacts=artifacts,
                              publish=publish)

    def tracking_uri(self) -> Optional[str]:
        """Inside ``mlflow server`` the backend store; else the URI given or current."""
        from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

        server_backend = os.environ.get(BACKEND_STORE_URI_ENV_VAR)
        if server_backend:
            return server_backend
        if self._tracking_uri:
            return self._tracking_uri
        import mlflow

        return mlflow.get_tracking_uri()

    # -- decision -----------------------------------------------------------------------
    def _decide(self, name: str, version: str, target: Target, recipe_text: str) -> Decision:
        try:
            recipe, recipe_error = _load_recipe(recipe_text), None
        except Exception as exc:  # unreadable: every target is gated (fail closed)
            recipe, recipe_error = None, exc
        if recipe is not None and not target.triggered_by(recipe):
            return _not_triggered(name, version, target)
        override = self._consume_override(name, version)
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
            recipe = _load_recipe(recipe)
        except Exception as exc:
            return self._error_decision(name, version, target, None, exc, allow=False)
        mv = self._inner.get_model_version(name, version)  # MLflow's own error if missing
        try:
            evaluation = _Evaluator(self, recipe, progress).run(name, mv, target)
        except Exception as exc:
            return self._error_decision(name, version, target, recipe, exc,
                                        allow=recipe.on_error == "allow", run_id=mv.run_id)
        passed = evaluation.passed
        return Decision(
            name, version, target, T.PASSED if passed else T.BLOCKED, passed, current_user(),
            utc_now(), recipe_hash=recipe.sha256, run_id=mv.run_id, evaluation=evaluation,
            notify=dict(recipe.notify) or None,
        )

    def _error_decision(self, name, version, target, recipe, exc, *, allow, run_id=None) -> Decision:
        error = f"{type(exc).__name__}: {safe_text(redact(str(exc)))}"
        return Decision(
            name, version, target, T.ERROR_ALLOWED if allow else T.BLOCKED, allow,
            current_user(), utc_now(), recipe_hash=getattr(recipe, "sha256", None),
            run_id=run_id, error=error, notify=(dict(recipe.notify) or None) if recipe else None,
        )

    def _recipe_text(self, name: str) -> Optional[str]:
        model = self._inner.get_registered_model(name)
        return (model.tags or {}).get(T.RECIPE)

    def _consume_override(self, name: str, version: str) -> Optional[tuple[str, str]]:
        """The version's override reason and who set it, deleting the tag (one use)."""
        mv = self._inner.get_model_version(name, version)
        tags = mv.tags or {}
        reason = tags.get(T.OVERRIDE)
        if reason is None:
            return None
        who = tags.get(T.OVERRIDE_USER) or current_user()
        self._inner.delete_model_version_tag(name, version, T.OVERRIDE)
        if T.OVERRIDE_USER in tags:
            self._inner.delete_model_version_tag(name, version, T.OVERRIDE_USER)
        return reason, who

    def champion_of(self, name: str, target: Target, candidate: str) -> Optional[Any]:
        """The version holding ``target`` today, if it is not the candidate."""
        from mlflow.exceptions import MlflowException

        holder = None
        if target.kind == "alias":
            try:
                holder = self._inner.get_model_version_by_alias(name, target.name)
            except MlflowException:
                holder = None
        elif target.kind == "stage":
            latest = self._inner.get_latest_versions(name, [target.name]) or []
            holder = max(latest, key=lambda v: int(v.version), default=None)
        if holder is None or str(holder.version) == str(candidate):
            return None
        return holder

    def model_uri(self, name: str, version: str) -> str:
        return self._inner.get_model_version_download_uri(name, version)


def request_override(name: str, version: str, reason: str, *, client: Any = None,
                     user: Optional[str] = None) -> None:
    """Break glass: let the next gated promotion of ``version`` through, once.

    Sets the version tags ``mlflow_monitor.gate.override`` (the reason) and
    ``...override_user``; the gate records and deletes them when it uses them. The
    request itself goes to the audit log.
    """
    import mlflow

    from mlflow_monitor.gate.audit import append_audit

    reason = (reason or "").strip()
    if not reason:
        raise _invalid("an override needs a non-empty reason, got ''")
    client = client or mlflow.MlflowClient()
    client.get_model_version(name, version)  # MLflow's own error when it does not exist
    who = user or current_user()
    client.set_model_version_tag(name, version, T.OVERRIDE_USER, who)
    client.set_model_version_tag(name, version, T.OVERRIDE, reason)
    append_audit({"model_name": name, "version": str(version), "verdict": "OVERRIDE_REQUESTED",
                  "override_reason": reason, "user": who, "timestamp": utc_now()})


class _Evaluator:
    """Runs the recipe's checks for one candidate (the slow part of a decision)."""

    def __init__(self, gate: PromotionGate, recipe: Any, progress: Optional[Callable[[str], None]]):
        self._gate = gate
        self._recipe = recipe
        self._progress = progress or (lambda _msg: None)

    def run(self, name: str, mv: Any, target: Target) -> Evaluation:
        from mlflow_monitor.gate.drift import compute_drift
        from mlflow_monitor.gate.rules import evaluate_rules
        from mlflow_monitor.gate.validation import validate_frames

        recipe, cols = self._recipe, self._recipe.columns
        if not mv.run_id:
            raise _invalid(f"model '{safe_text(name)}' version {mv.version} has no source run, "
                           "so it has no reference data (log_reference in the training run)")
        self._progress("loading reference data")
        reference = _load_reference(mv.run_id, self._gate.tracking_uri())
        ref_frame = reference.frame
        target_col = cols.target or getattr(reference, "target", None)
        pred_col = cols.prediction or getattr(reference, "prediction", None)
        self._progress("loading current data")
        current = _load_current(recipe, mv.run_id, self._gate.tracking_uri())
        features = self._features(ref_frame, target_col, pred_col)
        need_perf = recipe.needs_performance
        validate_frames(ref_frame, current, columns=features, target=target_col,
                        prediction=pred_col if pred_col in current.columns else None,
                        need_target=need_perf)

        self._progress(f"drift on {len(current)} current vs {len(ref_frame)} reference rows")
        drift = compute_drift(
            ref_frame[features], current[features],
            numerical=cols.numerical, categorical=cols.categorical,
            profile=getattr(reference, "profile", None),
        )
        metrics: dict[str, float] = {"drift_share": float(drift.drift_share),
                                     "n_drifted": float(drift.n_drifted)}
        champion_version, champion_metrics = None, None
        scored = current
        if need_perf:
            pred_col = pred_col or _PREDICTION
            if pred_col not in current.columns:
                self._progress("scoring the candidate on current data")
                scored = current.assign(**{pred_col: _predict(
                    self._gate.model_uri(name, str(mv.version)), current, features,
                    who=f"candidate version {mv.version}")})
            metrics.update(_performance(recipe, scored, target_col, pred_col))
            holder = self._gate.champion_of(name, target, str(mv.version))
            if holder is not None and recipe.needs_champion:
                self._progress(f"scoring champion version {holder.version} on the same data")
                champ = current.assign(**{_PREDICTION: _predict(
                    self._gate.model_uri(name, str(holder.version)), current, features,
                    who=f"champion version {holder.version}")})
                champion_version = str(holder.version)
                champion_metrics = _performance(recipe, champ, target_col, _PREDICTION,
                                                proba=False)
        rule_results = evaluate_rules(recipe.rules, metrics=metrics, drift=drift,
                                      champion_metrics=champion_metrics)
        evaluation = Evaluation(rule_results, metrics, drift, champion_version, champion_metrics,
                                reference_rows=len(ref_frame), current_rows=len(current))
        self._progress(f"building the Evidently report (sample of at most "
                       f"{recipe.report.sample_size} rows)")
        try:
            report_ref, report_cur = reference, current
            if scored is not current and _has_performance_preset(recipe):
                # the performance presets compare both sides: score the reference too
                ref_pred = _predict(self._gate.model_uri(name, str(mv.version)), ref_frame,
                                    features, who=f"candidate version {mv.version}")
                report_ref = dataclasses.replace(
                    reference, frame=ref_frame.assign(**{pred_col: ref_pred}), prediction=pred_col)
                report_cur = scored
            evaluation.report = _build_report(report_ref, report_cur, recipe,
                                              title=f"{name} version {mv.version}")
        except Exception as exc:  # the report is evidence, not the verdict
            evaluation.report_error = f"{type(exc).__name__}: {safe_text(redact(str(exc)))}"
            _logger.warning("mlflow-monitor: report not built: %s", evaluation.report_error)
        return evaluation

    def _features(self, ref_frame: Any, target_col: Optional[str], pred_col: Optional[str]) -> list[str]:
        cols = self._recipe.columns
        if cols.features is not None:
            return list(cols.features)
        skip = {target_col, pred_col, *(cols.prediction_proba or []), *cols.exclude}
        return [c for c in ref_frame.columns if c not in skip]


# -- adapters to the sibling modules (one place to follow their signatures) ----------------
def _load_recipe(source: Any) -> Any:
    """A recipe from a tag value (built-in name or YAML text; never a file path, so a tag
    cannot make the server read its files), or an already loaded Recipe."""
    import yaml

    from mlflow_monitor.recipes import BUILTIN_RECIPES, RecipeError, load_recipe

    if isinstance(source, str):
        text = source.strip()
        if text in BUILTIN_RECIPES or "\n" in text:
            return load_recipe(text)
        try:  # one line: only flow-style YAML, e.g. {task: drift, current: ...}
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict):
            raise RecipeError(f"tag {T.RECIPE}", [
                f"expected a built-in name ({', '.join(BUILTIN_RECIPES)}) or recipe YAML text, "
                f"got a single line that is neither: '{safe_text(text[:80])}'"])
        return load_recipe(data)
    return load_recipe(source)


def _load_reference(run_id: str, tracking_uri: Optional[str]) -> Any:
    from mlflow import MlflowClient

    from mlflow_monitor.reference import load_reference

    return load_reference(run_id, client=MlflowClient(tracking_uri=tracking_uri))


def _load_current(recipe: Any, run_id: str, tracking_uri: Optional[str]) -> Any:
    from mlflow import MlflowClient

    from mlflow_monitor.gate.data import load_current

    return load_current(recipe, run_id=run_id, client=MlflowClient(tracking_uri=tracking_uri))


def _predict(model_uri: str, frame: Any, features: list[str], *, who: str) -> Any:
    from mlflow_monitor.gate.performance import predict_frame

    try:
        return predict_frame(model_uri, frame, features)
    except Exception as exc:
        raise RuntimeError(f"{who} failed to load or predict: {redact(str(exc))[:500]}") from exc


def _performance(recipe: Any, frame: Any, target: str, prediction: str, *, proba: bool = True
                 ) -> dict[str, float]:
    from mlflow_monitor.gate.performance import compute_performance

    cols = [c for c in (recipe.columns.prediction_proba or []) if c in frame.columns]
    use_proba = proba and recipe.task == "classification" and cols and \
        len(cols) == len(recipe.columns.prediction_proba or [])
    out = compute_performance(frame, task=recipe.task, target=target, prediction=prediction,
                              proba=cols if use_proba else None)
    return {k: float(v) for k, v in out.items()}


def _has_performance_preset(recipe: Any) -> bool:
    return any(p in ("ClassificationPreset", "RegressionPreset") for p in recipe.effective_presets)


def _build_report(reference: Any, current: Any, recipe: Any, *, title: str) -> Any:
    from mlflow_monitor.gate.reports import build_report

    return build_report(reference, current, recipe=recipe,
                        sample_size=recipe.report.sample_size, title=title)


# -- helpers ----------------------------------------------------------------------------------
_NOT_GATED = "NOT_GATED"  # the recipe's triggers do not cover this target; never recorded


def _not_triggered(name: str, version: str, target: Target) -> Decision:
    return Decision(name, version, target, _NOT_GATED, True, current_user(), utc_now())


def _invalid(message: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _blocked(decision: Decision):
    # BAD_REQUEST, not INVALID_STATE: MLflow 3.17 maps INVALID_STATE to HTTP 500, and a
    # blocked promotion is the caller's to fix (HTTP 400, shown as such in the UI).
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    return MlflowException(decision.message(), error_code=BAD_REQUEST)


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    try:
        return f"{float(x):.4g}"
    except (TypeError, ValueError):
        return safe_text(str(x))


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def _promotion_lock(store_key: str, name: str, target: str) -> Iterator[None]:
    """Serialise promotions of one model to one target: threads in this process, and
    processes on this host (``mlflow server --workers N``) through a lock file under
    ``MLFLOW_MONITOR_HOME``. Bounded by :data:`LOCK_TIMEOUT_S`."""
    from mlflow_monitor.paths import monitor_home

    key = hashlib.sha256(f"{store_key}\0{name}\0{target}".encode()).hexdigest()[:32]
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(key, threading.Lock())
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    if not tlock.acquire(timeout=LOCK_TIMEOUT_S):
        raise _busy(name, target)
    try:
        lock_dir = monitor_home() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{key}.lock", "a+") as fh:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _busy(name, target) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        tlock.release()


def _busy(name: str, target: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_CONFLICT

    return MlflowException(
        f"another promotion of model '{safe_text(name)}' to {safe_text(target)} is still being "
        f"evaluated after {LOCK_TIMEOUT_S:.0f}s; try again later", error_code=RESOURCE_CONFLICT)

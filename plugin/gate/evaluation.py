"""Evaluating one candidate version against its recipe (the slow part of a decision).

:class:`CandidateEvaluator` loads the reference (from the candidate's source run) and the
current data, validates both, computes the drift verdict, scores the candidate (and the
champion, when a rule compares them) and evaluates the rules. The Evidently report is not
part of the verdict: :meth:`CandidateEvaluator.build_report` builds it afterwards, from a
bounded sample of the frames kept in :class:`ReportInputs` (off the caller's thread, see
:mod:`mlflow_monitor.gate.report_worker`). A report failure never changes the verdict.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from mlflow_monitor.gate.decision import Evaluation, Target
from mlflow_monitor.gate.errors import invalid_input
from mlflow_monitor.gate.escaping import safe_text
from mlflow_monitor.gate.evidence import OWNED, Evidence, evidence_of
from mlflow_monitor.redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.recipes import Recipe

__all__ = ["PREDICTION", "CandidateEvaluator", "ReportInputs", "champion_of"]

_logger = logging.getLogger(__name__)

PREDICTION = "prediction"  # column the candidate's predictions go to when the recipe names none


@dataclasses.dataclass
class ReportInputs:
    """What the deferred Evidently report of one evaluation is built from (in memory).

    ``scored`` is ``current`` with the candidate's predictions in column ``prediction``
    (``current`` itself when none were computed); ``model_uri`` is the candidate's model
    when the recipe scores performance (the report may score the reference with it).
    """

    reference: Any  # mlflow_monitor.reference.ReferenceData
    current: Any  # DataFrame
    scored: Any  # DataFrame
    prediction: Optional[str]
    features: list[str]
    model_uri: Optional[str]
    title: str
    evidence: str
    recipe: Any = None  # the Recipe evaluated (its canonical YAML goes into a pending record)


class CandidateEvaluator:
    """Runs ``recipe``'s checks for one candidate version in registry ``store``.

    ``tracking_uri`` is where the candidate's run (reference data, dataset inputs) lives;
    ``progress`` receives one line per step (the CLI prints them). With ``concurrent``
    (the default) the drift verdict runs on one extra thread while the caller's thread
    scores the models (numpy's sorts release the GIL, so the two overlap); ``False`` runs
    them one after the other. The results are the same either way, and so is the error
    raised when both fail (the drift verdict's, as when it ran first).
    """

    def __init__(self, store: Any, tracking_uri: Optional[str], recipe: "Recipe",
                 progress: Optional[Callable[[str], None]] = None, *, concurrent: bool = True) -> None:
        self._store = store
        self._tracking_uri = tracking_uri
        self._recipe = recipe
        self._progress = progress or (lambda _msg: None)
        self._concurrent = concurrent

    def run(self, name: str, mv: Any, target: Target) -> Evaluation:
        """The evaluation of version ``mv`` of ``name`` for a promotion to ``target``.

        Raises on bad input (no source run, no reference, unreadable or invalid data, a
        model that fails to predict); the caller turns that into an error decision.
        """
        from mlflow_monitor.gate.drift import compute_drift
        from mlflow_monitor.gate.rules import evaluate_rules
        from mlflow_monitor.gate.validation import validate_frames

        recipe, cols = self._recipe, self._recipe.columns
        if not mv.run_id:
            raise invalid_input(f"model '{safe_text(name)}' version {mv.version} has no source run, "
                                "so it has no reference data (log_reference in the training run)")
        need_perf = recipe.needs_performance
        evidence = evidence_of(recipe, mv.run_id, labels=(cols.target or "target") if need_perf else None)
        if recipe.requires_owned_evidence and evidence.level != OWNED:
            self._progress(f"evidence is {evidence.summary()}: not evaluated")
            return _evidence_refused(evidence)
        self._progress("loading reference data")
        reference = _load_reference(_reference_run(recipe, mv.run_id), self._tracking_uri)
        ref_frame = reference.frame
        target_col = cols.target or getattr(reference, "target", None)
        pred_col = cols.prediction or getattr(reference, "prediction", None)
        self._progress("loading current data")
        if recipe.current.production is None:
            current = _load_current(recipe, mv.run_id, self._tracking_uri)
        else:
            from mlflow_monitor.gate.production_evidence import UnsignedEvidenceError

            try:
                current = self._production_current(name, mv, target, target_col)  # production_evidence.py
            except UnsignedEvidenceError as exc:
                self._progress(f"production evidence refused: {exc}")
                return _signature_refused(evidence, str(exc))
        features = self._features(ref_frame, target_col, pred_col)
        if need_perf:
            evidence = evidence_of(
                recipe, mv.run_id, labels=target_col,
                predictions=pred_col if pred_col and pred_col in current.columns else None)
            if not (pred_col and pred_col in current.columns):
                evidence = evidence.with_predictions(
                    f"computed by the gate from version {mv.version}'s model", OWNED)
        validate_frames(ref_frame, current, columns=features, target=target_col,
                        prediction=pred_col if pred_col in current.columns else None,
                        need_target=need_perf)

        self._progress(f"drift on {len(current)} current vs {len(ref_frame)} reference rows")

        # the drift thread gets frames of its own (pandas objects are not thread-safe;
        # the column arrays are shared, and only read)
        drift_ref, drift_cur = ref_frame[features], current[features]

        def drift_verdict() -> Any:
            return compute_drift(
                drift_ref, drift_cur,
                numerical=cols.numerical, categorical=cols.categorical,
                profile=getattr(reference, "profile", None),
                settings=recipe.effective_drift, key_columns=cols.key_columns,
            )

        champion_version, champion_metrics = None, None
        scored = current
        with _Overlapped(drift_verdict, self._concurrent) as pending_drift:
            if need_perf:
                pred_col = pred_col or PREDICTION
                model_input: Any = None  # the features as the models get them: built once
                if pred_col not in current.columns:
                    self._progress("scoring the candidate on current data")
                    model_input = _model_input(current, features)
                    scored = current.assign(**{pred_col: _predict(
                        self._model_uri(name, str(mv.version)), model_input, features,
                        who=f"candidate version {mv.version}")})
                perf = _performance(recipe, scored, target_col, pred_col)
                holder = champion_of(self._store, name, target, str(mv.version))
                if holder is not None and recipe.needs_champion:
                    self._progress(f"scoring champion version {holder.version} on the same data")
                    if model_input is None:
                        model_input = _model_input(current, features)
                    champ = current.assign(**{PREDICTION: _predict(
                        self._model_uri(name, str(holder.version)), model_input, features,
                        who=f"champion version {holder.version}")})
                    champion_version = str(holder.version)
                    champion_metrics = _performance(recipe, champ, target_col, PREDICTION,
                                                    proba=False)
        drift = pending_drift.result()
        metrics: dict[str, float] = drift.rule_values()
        if need_perf:
            metrics.update(perf)
        rule_results = evaluate_rules(recipe.rules, metrics=metrics, drift=drift,
                                      champion_metrics=champion_metrics)
        evaluation = Evaluation(rule_results, metrics, drift, champion_version, champion_metrics,
                                reference_rows=len(ref_frame), current_rows=len(current),
                                evidence=evidence)
        evaluation.report_inputs = ReportInputs(
            reference=reference, current=current, scored=scored, prediction=pred_col,
            features=features, model_uri=self._model_uri(name, str(mv.version)) if need_perf else None,
            title=f"{name} version {mv.version}", evidence=evidence.summary(), recipe=recipe)
        return evaluation

    def reload_report_inputs(self, name: str, mv: Any) -> "ReportInputs":
        """The report's frames loaded again (a report resumed in another process): the
        reference, the current data, and the candidate's predictions when the recipe
        scores performance and the data has none."""
        recipe, cols = self._recipe, self._recipe.columns
        reference = _load_reference(_reference_run(recipe, mv.run_id), self._tracking_uri)
        target_col = cols.target or getattr(reference, "target", None)
        pred_col = cols.prediction or getattr(reference, "prediction", None)
        current = _load_current(recipe, mv.run_id, self._tracking_uri)
        features = self._features(reference.frame, target_col, pred_col)
        scored, model_uri = current, None
        if recipe.needs_performance:
            pred_col = pred_col or PREDICTION
            model_uri = self._model_uri(name, str(mv.version))
            if pred_col not in current.columns:
                scored = current.assign(**{pred_col: _predict(model_uri, current, features,
                                                              who=f"candidate version {mv.version}")})
        evidence = evidence_of(recipe, mv.run_id, labels=target_col if recipe.needs_performance else None)
        return ReportInputs(reference=reference, current=current, scored=scored, prediction=pred_col,
                            features=features, model_uri=model_uri,
                            title=f"{name} version {mv.version}", evidence=evidence.summary(),
                            recipe=recipe)

    def build_report(self, inputs: "ReportInputs", *, verdict: Optional[dict[str, Any]] = None) -> Any:
        """The Evidently report of ``inputs`` (built after the decision; ``verdict`` is its
        ``summary.json``, shown first). Scores the reference too when a performance preset
        compares both sides. Raises on failure."""
        recipe = self._recipe
        report_ref, report_cur = inputs.reference, inputs.current
        if inputs.scored is not inputs.current and _has_performance_preset(recipe) and inputs.model_uri \
                and inputs.prediction:
            # the performance presets compare both sides: score the reference too
            ref_frame = inputs.reference.frame
            ref_pred = _predict(inputs.model_uri, ref_frame, inputs.features, who="the candidate")
            report_ref = dataclasses.replace(
                inputs.reference, frame=ref_frame.assign(**{inputs.prediction: ref_pred}),
                prediction=inputs.prediction)
            report_cur = inputs.scored
        return _build_report(report_ref, report_cur, recipe, title=inputs.title,
                             evidence=inputs.evidence, verdict=verdict)

    def _features(self, ref_frame: Any, target_col: Optional[str], pred_col: Optional[str]) -> list[str]:
        cols = self._recipe.columns
        if cols.features is not None:
            return list(cols.features)
        skip = {target_col, pred_col, *(cols.prediction_proba or []), *cols.exclude}
        return [c for c in ref_frame.columns if c not in skip]

    def _production_current(self, name: str, mv: Any, target: Target, target_col: Optional[str]) -> Any:
        from mlflow import MlflowClient

        from mlflow_monitor.gate.production_evidence import load_production_current

        return load_production_current(
            self._recipe, name=name, holder=champion_of(self._store, name, target, str(mv.version)),
            candidate_run_id=mv.run_id, client=MlflowClient(tracking_uri=self._tracking_uri),
            registry=self._store, target=target_col, progress=self._progress)

    def _model_uri(self, name: str, version: str) -> str:
        return self._store.get_model_version_download_uri(name, version)


def champion_of(store: Any, name: str, target: Target, candidate: str) -> Optional[Any]:
    """The version holding ``target`` today in ``store``, if it is not the candidate."""
    from mlflow.exceptions import MlflowException

    holder = None
    if target.kind == "alias":
        try:
            holder = store.get_model_version_by_alias(name, target.name)
        except MlflowException:
            holder = None
    elif target.kind == "stage":
        latest = store.get_latest_versions(name, [target.name]) or []
        holder = max(latest, key=lambda v: int(v.version), default=None)
    if holder is None or str(holder.version) == str(candidate):
        return None
    return holder


def _reference_run(recipe: "Recipe", run_id: str) -> str:
    """The run whose logged reference is used: pinned in the recipe, else the candidate's."""
    pinned = recipe.reference.run_id if recipe.reference is not None else None
    return pinned or run_id


def _evidence_refused(evidence: Evidence) -> Evaluation:
    """The evaluation of a recipe requiring owned evidence on self-reported inputs: one
    failed rule, nothing loaded (a block, not an error: ``on_error: allow`` does not apply)."""
    from mlflow_monitor.gate.rules import RuleResult

    inputs = ", ".join(s.input for s in evidence.self_reported)
    rule = RuleResult(
        rule="evidence == owned", passed=False, actual=None, threshold=None,
        message=f"the recipe requires owned evidence, but {inputs} "
                f"{'is' if len(evidence.self_reported) == 1 else 'are'} self-reported: "
                + "; ".join(f"{s.input} {s.origin}" for s in evidence.self_reported)
                + " (pin them in the recipe: reference.run_id, current.path)")
    return Evaluation([rule], {}, evidence=evidence)


def _signature_refused(evidence: Evidence, message: str) -> Evaluation:
    """A recipe's production evidence that cannot be trusted (unsigned where signatures
    are required, or failed signatures and too few signed rows): one failed rule, a block
    (``on_error: allow`` does not apply: an editor could otherwise force the error)."""
    from mlflow_monitor.gate.rules import RuleResult

    rule = RuleResult(rule="evidence == signed", passed=False, actual=None, threshold=None, message=message)
    return Evaluation([rule], {}, evidence=evidence)


class _Overlapped:
    """``fn`` run on one extra thread while the ``with`` body runs (or before it, when not
    ``concurrent``). Leaving the block waits for ``fn``; :meth:`result` returns its value
    or raises its error. When both fail, ``fn``'s error is raised, as if it had run first."""

    def __init__(self, fn: Callable[[], Any], concurrent: bool) -> None:
        self._fn, self._concurrent = fn, concurrent
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller's thread by result()
            self._error = exc

    def __enter__(self) -> "_Overlapped":
        if self._concurrent:
            self._thread = threading.Thread(target=self._run, name="mlflow-monitor-drift-verdict", daemon=True)
            self._thread.start()
        else:
            self._run()
            if self._error is not None:
                self.result()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._thread is not None:
            self._thread.join()
        if exc is not None and self._error is not None:
            raise self._error from None  # the drift verdict's error comes first, as before

    def result(self) -> Any:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._value


# -- adapters to the sibling modules (one place to follow their signatures) ----------------
def _load_reference(run_id: str, tracking_uri: Optional[str]) -> Any:
    from mlflow import MlflowClient

    from mlflow_monitor.gate.data_access import check_location
    from mlflow_monitor.reference import load_reference

    client = MlflowClient(tracking_uri=tracking_uri)
    # on a server: the run's artifact location must be one the server may read
    check_location(f"runs:/{run_id}/", what="reference run", client=client)
    reference = load_reference(run_id, client=client)
    from mlflow_monitor.gate.drift.calibration import adopt_logged_calibration

    adopt_logged_calibration(reference)  # precomputed when the reference was logged
    return reference


def _load_current(recipe: "Recipe", run_id: str, tracking_uri: Optional[str]) -> Any:
    from mlflow import MlflowClient

    from mlflow_monitor.gate.data import load_current

    return load_current(recipe, run_id=run_id, client=MlflowClient(tracking_uri=tracking_uri))


def _model_input(frame: Any, features: list[str]) -> Any:
    from mlflow_monitor.gate.performance import model_input

    return model_input(frame, features)


def _predict(model_uri: str, frame: Any, features: list[str], *, who: str) -> Any:
    from mlflow_monitor.gate.performance import predict_frame

    try:
        return predict_frame(model_uri, frame, features)
    except Exception as exc:
        from mlflow_monitor.gate.data_access import in_server

        if in_server():  # schema errors quote data values: the operator's log gets them, not the caller
            _logger.warning("mlflow-monitor: %s failed to load or predict: %s", who, redact(str(exc))[:2000])
            raise RuntimeError(f"{who} failed to load or predict ({type(exc).__name__}; "
                               "details in the server log)") from None
        raise RuntimeError(f"{who} failed to load or predict: {redact(str(exc))[:500]}") from exc


def _performance(recipe: "Recipe", frame: Any, target: str, prediction: str, *, proba: bool = True
                 ) -> dict[str, float]:
    from mlflow_monitor.gate.performance import compute_performance

    cols = [c for c in (recipe.columns.prediction_proba or []) if c in frame.columns]
    use_proba = proba and recipe.task == "classification" and cols and \
        len(cols) == len(recipe.columns.prediction_proba or [])
    out = compute_performance(frame, task=recipe.task, target=target, prediction=prediction,
                              proba=cols if use_proba else None)
    return {k: float(v) for k, v in out.items()}


def _has_performance_preset(recipe: "Recipe") -> bool:
    return any(p in ("ClassificationPreset", "RegressionPreset") for p in recipe.effective_presets)


def _build_report(reference: Any, current: Any, recipe: "Recipe", *, title: str, evidence: str,
                  verdict: Optional[dict[str, Any]]) -> Any:
    from mlflow_monitor.gate.reports import build_report

    return build_report(reference, current, recipe=recipe, sample_size=recipe.report.sample_size,
                        title=title, evidence=evidence, verdict=verdict)

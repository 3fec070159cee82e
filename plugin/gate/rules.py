"""Gate rules: the declarative checks a recipe states, and their evaluation.

A recipe lists rules in one of these forms (YAML)::

    rules:
      - drift_share < 0.3                               # metric threshold, text form
      - accuracy >= 0.85
      - {metric: f1, op: ">=", threshold: 0.8}          # the same, mapping form
      - {metric: accuracy, max_drop_vs_champion: 0.01}  # challenger vs the alias holder
      - {metric: rmse, max_rise_vs_champion: 0.5}       # for lower-is-better metrics
      - {no_drift_in: [age, income]}                    # key columns must not drift

:class:`RuleSpec` is the validated YAML form; :func:`evaluate_rules` turns each into a
:class:`RuleResult` given the candidate's metrics, the drift result and the champion's
metrics. A rule whose inputs are missing fails (the gate fails closed); only a champion
comparison without a champion is *skipped*.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.gate.drift import DriftResult

__all__ = [
    "METRICS",
    "MetricInfo",
    "RuleResult",
    "RuleSpec",
    "evaluate_rules",
    "parse_rule",
]


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """A metric a rule may name: which tasks produce it and which direction is better."""

    name: str
    tasks: tuple[str, ...]  # tasks whose gate computes it
    higher_is_better: bool
    needs_target: bool


_ALL = ("classification", "regression", "drift")
_CLS = ("classification",)
_REG = ("regression",)

#: Every metric name a rule may use. Drift metrics come from the drift verdict; the
#: others from :func:`mlflow_monitor.gate.performance.compute_performance`.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("drift_share", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("n_drifted", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("accuracy", _CLS, higher_is_better=True, needs_target=True),
        MetricInfo("precision", _CLS, higher_is_better=True, needs_target=True),
        MetricInfo("recall", _CLS, higher_is_better=True, needs_target=True),
        MetricInfo("f1", _CLS, higher_is_better=True, needs_target=True),
        MetricInfo("roc_auc", _CLS, higher_is_better=True, needs_target=True),
        MetricInfo("rmse", _REG, higher_is_better=False, needs_target=True),
        MetricInfo("mae", _REG, higher_is_better=False, needs_target=True),
        MetricInfo("r2", _REG, higher_is_better=True, needs_target=True),
        MetricInfo("mean_error", _REG, higher_is_better=False, needs_target=True),
    )
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_TEXT_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")

class RuleSpec(BaseModel):
    """One validated rule. Exactly one form is set:

    - threshold: ``metric``, ``op``, ``threshold`` (from ``"accuracy >= 0.85"``);
    - champion: ``metric`` and ``max_drop_vs_champion`` (higher-is-better metrics) or
      ``max_rise_vs_champion`` (lower-is-better metrics);
    - key-column drift: ``no_drift_in`` (column names).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Optional[str] = None
    op: Optional[str] = None
    threshold: Optional[float] = None
    max_drop_vs_champion: Optional[float] = Field(default=None, ge=0)
    max_rise_vs_champion: Optional[float] = Field(default=None, ge=0)
    no_drift_in: Optional[list[str]] = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return _parse_text(raw)
        return raw

    @model_validator(mode="after")
    def _one_form(self) -> "RuleSpec":
        forms = [
            name
            for name, present in (
                ("threshold", self.op is not None or self.threshold is not None),
                ("max_drop_vs_champion", self.max_drop_vs_champion is not None),
                ("max_rise_vs_champion", self.max_rise_vs_champion is not None),
                ("no_drift_in", self.no_drift_in is not None),
            )
            if present
        ]
        if len(forms) != 1:
            raise ValueError(
                "expected exactly one rule form (a 'metric op threshold' text, "
                "{metric, op, threshold}, {metric, max_drop_vs_champion}, "
                f"{{metric, max_rise_vs_champion}} or {{no_drift_in}}), got {forms or 'none'}"
            )
        form = forms[0]
        if form == "no_drift_in":
            if self.metric is not None:
                raise ValueError("'no_drift_in' takes no 'metric'")
            return self
        if self.metric is None:
            raise ValueError(f"a {form} rule needs 'metric'")
        if form == "threshold":
            if self.op not in _OPS:
                raise ValueError(f"'op' must be one of {' '.join(_OPS)}, got {self.op!r}")
            if self.threshold is None:
                raise ValueError("a threshold rule needs 'threshold' (a number)")
        return self

    @property
    def kind(self) -> str:
        """``"threshold"``, ``"champion"`` or ``"no_drift_in"``."""
        if self.no_drift_in is not None:
            return "no_drift_in"
        if self.max_drop_vs_champion is not None or self.max_rise_vs_champion is not None:
            return "champion"
        return "threshold"

    @property
    def text(self) -> str:
        """Human-readable form, e.g. ``accuracy >= 0.85`` or ``accuracy >= champion - 0.01``."""
        if self.kind == "no_drift_in":
            return f"no drift in {', '.join(self.no_drift_in or [])}"
        if self.kind == "champion":
            if self.max_drop_vs_champion is not None:
                return f"{self.metric} >= champion - {_fmt(self.max_drop_vs_champion)}"
            return f"{self.metric} <= champion + {_fmt(self.max_rise_vs_champion)}"
        return f"{self.metric} {self.op} {_fmt(self.threshold)}"

    def to_yaml_value(self) -> Union[str, dict[str, Any]]:
        """The canonical YAML form: text for thresholds, a mapping for the others."""
        if self.kind == "threshold":
            return self.text
        return self.model_dump(exclude_none=True)

    def problems(self, task: str, target: Optional[str]) -> list[tuple[str, str]]:
        """Semantic problems for a recipe of ``task``: ``(relative_path, message)`` pairs."""
        if self.metric is None:
            return []
        info = METRICS.get(self.metric)
        if info is None:
            return [("metric", f"unknown metric {self.metric!r}; expected one of {', '.join(METRICS)}")]
        out: list[tuple[str, str]] = []
        if task not in info.tasks:
            usable = ", ".join(m.name for m in METRICS.values() if task in m.tasks)
            out.append(("metric", f"metric {self.metric!r} is not computed for task {task!r}; "
                                  f"expected one of {usable}"))
        elif info.needs_target and not target:
            out.append(("metric", f"metric {self.metric!r} needs a target column; "
                                  "set columns.target"))
        if self.max_drop_vs_champion is not None and not info.higher_is_better:
            out.append(("max_drop_vs_champion", f"{self.metric!r} is lower-is-better; "
                                                "use max_rise_vs_champion"))
        if self.max_rise_vs_champion is not None and info.higher_is_better:
            out.append(("max_rise_vs_champion", f"{self.metric!r} is higher-is-better; "
                                                "use max_drop_vs_champion"))
        return out


@dataclasses.dataclass
class RuleResult:
    """The outcome of one rule.

    ``rule`` is the text form; ``actual`` the measured value (challenger's metric, or the
    number of drifted key columns); ``threshold`` the bound it was compared to (for a
    champion rule: the champion's value minus/plus the allowed margin). ``skipped`` rules
    (champion comparison without a champion) count as passed.
    """

    rule: str
    passed: bool
    actual: Optional[float]
    threshold: Optional[float]
    message: str
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_rule(raw: Union[str, Mapping[str, Any], RuleSpec]) -> RuleSpec:
    """Validate one rule in any accepted form; raises ``pydantic.ValidationError``."""
    if isinstance(raw, RuleSpec):
        return raw
    return RuleSpec.model_validate(raw)


def evaluate_rules(
    rules: Iterable[Union[str, Mapping[str, Any], RuleSpec]],
    *,
    metrics: Mapping[str, float],
    drift: Optional["DriftResult"],
    champion_metrics: Optional[Mapping[str, float]],
) -> list[RuleResult]:
    """Evaluate ``rules`` in order.

    ``metrics`` are the candidate's numbers on the current data; ``drift_share`` and
    ``n_drifted`` are taken from ``drift`` when given (else from ``metrics``).
    ``champion_metrics`` is ``None`` when no version holds the target alias/stage.
    """
    values: dict[str, float] = dict(metrics)
    if drift is not None:
        values["drift_share"] = float(drift.drift_share)
        values["n_drifted"] = float(drift.n_drifted)
    out = []
    for raw in rules:
        spec = parse_rule(raw)
        if spec.kind == "no_drift_in":
            out.append(_eval_key_columns(spec, drift))
        elif spec.kind == "champion":
            out.append(_eval_champion(spec, values, champion_metrics))
        else:
            out.append(_eval_threshold(spec, values))
    return out


def _eval_threshold(spec: RuleSpec, values: Mapping[str, float]) -> RuleResult:
    assert spec.metric is not None and spec.op is not None and spec.threshold is not None
    threshold = float(spec.threshold)
    actual = _value(values, spec.metric)
    if actual is None:
        return RuleResult(spec.text, False, None, threshold,
                          f"{spec.metric} was not computed, so '{spec.text}' cannot hold")
    passed = _OPS[spec.op](actual, threshold)
    verb = "holds" if passed else "fails"
    return RuleResult(spec.text, passed, actual, threshold,
                      f"{spec.metric} = {_fmt(actual)}: '{spec.text}' {verb}")


def _eval_champion(
    spec: RuleSpec, values: Mapping[str, float], champion: Optional[Mapping[str, float]]
) -> RuleResult:
    assert spec.metric is not None
    actual = _value(values, spec.metric)
    if champion is None:
        return RuleResult(spec.text, True, actual, None,
                          "no current champion to compare with; skipped", skipped=True)
    ref = _value(champion, spec.metric)
    if actual is None or ref is None:
        who = "challenger" if actual is None else "champion"
        return RuleResult(spec.text, False, actual, None,
                          f"{spec.metric} was not computed for the {who}, so '{spec.text}' cannot hold")
    if spec.max_drop_vs_champion is not None:
        bound = ref - float(spec.max_drop_vs_champion)
        passed = actual >= bound
    else:
        bound = ref + float(spec.max_rise_vs_champion or 0.0)
        passed = actual <= bound
    delta = actual - ref
    verb = "holds" if passed else "fails"
    return RuleResult(spec.text, passed, actual, bound,
                      f"{spec.metric} = {_fmt(actual)} vs champion {_fmt(ref)} "
                      f"(delta {delta:+.4g}): '{spec.text}' {verb}")


def _eval_key_columns(spec: RuleSpec, drift: Optional["DriftResult"]) -> RuleResult:
    wanted: Sequence[str] = spec.no_drift_in or []
    if drift is None:
        return RuleResult(spec.text, False, None, 0.0,
                          "no drift result was computed, so key-column drift cannot be checked")
    by_name = {c.column: c for c in drift.columns}
    missing = [c for c in wanted if c not in by_name]
    drifted = [c for c in wanted if c in by_name and by_name[c].drifted]
    if missing:
        return RuleResult(spec.text, False, float(len(drifted)), 0.0,
                          f"key columns not checked for drift (not in the data): {missing}")
    if drifted:
        detail = ", ".join(
            f"{c} ({by_name[c].method} {_fmt(by_name[c].score)}, threshold {_fmt(by_name[c].threshold)})"
            for c in drifted
        )
        return RuleResult(spec.text, False, float(len(drifted)), 0.0, f"key columns drifted: {detail}")
    return RuleResult(spec.text, True, 0.0, 0.0, f"none of {list(wanted)} drifted")


def _value(values: Mapping[str, float], name: str) -> Optional[float]:
    v = values.get(name)
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"{float(x):.4g}"


def _parse_text(text: str) -> dict[str, Any]:
    m = _TEXT_RULE.match(text)
    if not m:
        raise ValueError(
            f"expected 'metric op number' with op one of {' '.join(_OPS)} "
            f"(e.g. 'accuracy >= 0.85'), got {text!r}"
        )
    metric, op, num = m.groups()
    try:
        threshold = float(num)
    except ValueError:
        raise ValueError(f"expected a number after {op!r} in {text!r}, got {num!r}") from None
    return {"metric": metric, "op": op, "threshold": threshold}

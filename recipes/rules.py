"""Rule specs: the declarative checks a recipe states (their evaluation is the gate's).

A recipe lists rules in one of these forms (YAML)::

    rules:
      - drift_share < 0.3                               # metric threshold, text form
      - accuracy >= 0.85
      - {metric: f1, op: ">=", threshold: 0.8}          # the same, mapping form
      - {metric: accuracy, max_drop_vs_champion: 0.01}  # challenger vs the alias holder
      - {metric: rmse, max_rise_vs_champion: 0.5}       # for lower-is-better metrics
      - {no_drift_in: [age, income]}                    # these columns must not drift
      - {no_drift_in: key_columns}                      # ... or the recipe's columns.key_columns
      - {max_drifted_columns: 0}                        # at most N drifted columns
      - missing_share_increase <= 0.05                  # data-quality findings (docs/drift.md)

:class:`RuleSpec` is the validated YAML form and :data:`METRICS` the metric names a rule
may use; :func:`mlflow_monitor.gate.rules.evaluate_rules` turns specs into results.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from typing import Any, Callable, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlflow_monitor.formatting import format_number

__all__ = ["DRIFT_METRICS", "KEY_COLUMNS", "METRICS", "OPERATORS", "MetricInfo", "RuleSpec", "parse_rule"]

#: ``{no_drift_in: key_columns}`` names the recipe's ``columns.key_columns``.
KEY_COLUMNS = "key_columns"


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

#: Every metric name a rule may use. Drift metrics come from the gate's drift verdict;
#: the others from its performance metrics on the current data.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("drift_share", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("n_drifted", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("weighted_drift_share", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("missing_share_increase", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("new_category_share", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("out_of_range_share", _ALL, higher_is_better=False, needs_target=False),
        MetricInfo("type_changes", _ALL, higher_is_better=False, needs_target=False),
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

#: Metrics the drift verdict computes (no target or predictions needed).
DRIFT_METRICS = frozenset(("drift_share", "n_drifted", "weighted_drift_share", "missing_share_increase",
                           "new_category_share", "out_of_range_share", "type_changes"))

#: Comparison operators a threshold rule may use.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
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
    - key-column drift: ``no_drift_in`` (column names, or ``key_columns`` for the recipe's
      ``columns.key_columns``);
    - drifted-column count: ``max_drifted_columns`` (at most N columns drift).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Optional[str] = None
    op: Optional[str] = None
    threshold: Optional[float] = None
    max_drop_vs_champion: Optional[float] = Field(default=None, ge=0)
    max_rise_vs_champion: Optional[float] = Field(default=None, ge=0)
    no_drift_in: Optional[Union[str, list[str]]] = None
    max_drifted_columns: Optional[int] = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return _parse_text(raw)
        return raw

    @field_validator("no_drift_in", mode="before")
    @classmethod
    def _columns_or_key_columns(cls, v: Any) -> Any:
        if isinstance(v, str) and v != KEY_COLUMNS:
            raise ValueError(f"expected a list of column names or {KEY_COLUMNS!r}, got {v!r}")
        if isinstance(v, list) and not v:
            raise ValueError(f"expected at least one column name or {KEY_COLUMNS!r}, got []")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> "RuleSpec":
        forms = [
            name
            for name, present in (
                ("threshold", self.op is not None or self.threshold is not None),
                ("max_drop_vs_champion", self.max_drop_vs_champion is not None),
                ("max_rise_vs_champion", self.max_rise_vs_champion is not None),
                ("no_drift_in", self.no_drift_in is not None),
                ("max_drifted_columns", self.max_drifted_columns is not None),
            )
            if present
        ]
        if len(forms) != 1:
            raise ValueError(
                "expected exactly one rule form (a 'metric op threshold' text, "
                "{metric, op, threshold}, {metric, max_drop_vs_champion}, "
                f"{{metric, max_rise_vs_champion}}, {{no_drift_in}} or {{max_drifted_columns}}), "
                f"got {forms or 'none'}"
            )
        form = forms[0]
        if form in ("no_drift_in", "max_drifted_columns"):
            if self.metric is not None:
                raise ValueError(f"{form!r} takes no 'metric'")
            return self
        if self.metric is None:
            raise ValueError(f"a {form} rule needs 'metric'")
        if form == "threshold":
            if self.op not in OPERATORS:
                raise ValueError(f"'op' must be one of {' '.join(OPERATORS)}, got {self.op!r}")
            if self.threshold is None:
                raise ValueError("a threshold rule needs 'threshold' (a number)")
        return self

    @property
    def kind(self) -> str:
        """``"threshold"``, ``"champion"``, ``"no_drift_in"`` or ``"max_drifted_columns"``."""
        if self.no_drift_in is not None:
            return "no_drift_in"
        if self.max_drifted_columns is not None:
            return "max_drifted_columns"
        if self.max_drop_vs_champion is not None or self.max_rise_vs_champion is not None:
            return "champion"
        return "threshold"

    @property
    def text(self) -> str:
        """Human-readable form, e.g. ``accuracy >= 0.85`` or ``accuracy >= champion - 0.01``."""
        if self.kind == "no_drift_in":
            if self.no_drift_in == KEY_COLUMNS:
                return "no drift in key columns"
            return f"no drift in {', '.join(self.no_drift_in or [])}"
        if self.kind == "max_drifted_columns":
            return f"at most {self.max_drifted_columns} drifted columns"
        if self.kind == "champion":
            if self.max_drop_vs_champion is not None:
                return f"{self.metric} >= champion - {format_number(self.max_drop_vs_champion)}"
            return f"{self.metric} <= champion + {format_number(self.max_rise_vs_champion)}"
        return f"{self.metric} {self.op} {format_number(self.threshold)}"

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


def parse_rule(raw: Union[str, Mapping[str, Any], RuleSpec]) -> RuleSpec:
    """Validate one rule in any accepted form; raises ``pydantic.ValidationError``."""
    if isinstance(raw, RuleSpec):
        return raw
    return RuleSpec.model_validate(raw)


def _parse_text(text: str) -> dict[str, Any]:
    m = _TEXT_RULE.match(text)
    if not m:
        raise ValueError(
            f"expected 'metric op number' with op one of {' '.join(OPERATORS)} "
            f"(e.g. 'accuracy >= 0.85'), got {text!r}"
        )
    metric, op, num = m.groups()
    try:
        threshold = float(num)
    except ValueError:
        raise ValueError(f"expected a number after {op!r} in {text!r}, got {num!r}") from None
    return {"metric": metric, "op": op, "threshold": threshold}

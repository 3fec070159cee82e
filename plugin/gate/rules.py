"""Rule evaluation: each recipe rule spec against the candidate's numbers.

:func:`evaluate_rules` turns each :class:`~mlflow_monitor.recipes.rules.RuleSpec` into a
:class:`RuleResult` given the candidate's metrics, the drift result and the champion's
metrics. A rule whose inputs are missing fails (the gate fails closed); only a champion
comparison without a champion is *skipped*.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Union

from mlflow_monitor.formatting import format_number, format_signed
from mlflow_monitor.recipes.rules import KEY_COLUMNS, OPERATORS, RuleSpec, parse_rule

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.gate.drift import DriftResult

__all__ = ["RuleResult", "evaluate_rules"]


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


def evaluate_rules(
    rules: Iterable[Union[str, Mapping[str, Any], RuleSpec]],
    *,
    metrics: Mapping[str, float],
    drift: Optional["DriftResult"],
    champion_metrics: Optional[Mapping[str, float]],
) -> list[RuleResult]:
    """Evaluate ``rules`` in order.

    ``metrics`` are the candidate's numbers on the current data; the drift metrics
    (``drift_share``, ``n_drifted``, ``weighted_drift_share`` and the data-quality findings,
    :meth:`DriftResult.rule_values`) are taken from ``drift`` when given (else from
    ``metrics``). ``{no_drift_in: key_columns}`` checks ``drift.key_columns``.
    ``champion_metrics`` is ``None`` when no version holds the target alias/stage.
    """
    values: dict[str, float] = dict(metrics)
    if drift is not None:
        values.update(drift.rule_values())
    out = []
    for raw in rules:
        spec = parse_rule(raw)
        if spec.kind == "no_drift_in":
            out.append(_eval_key_columns(spec, drift))
        elif spec.kind == "max_drifted_columns":
            out.append(_eval_max_drifted(spec, drift))
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
    passed = OPERATORS[spec.op](actual, threshold)
    verb = "holds" if passed else "fails"
    return RuleResult(spec.text, passed, actual, threshold,
                      f"{spec.metric} = {format_number(actual)}: '{spec.text}' {verb}")


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
                      f"{spec.metric} = {format_number(actual)} vs champion {format_number(ref)} "
                      f"(delta {format_signed(delta)}): '{spec.text}' {verb}")


def _drift_detail(c: Any) -> str:
    return f"{c.column} ({c.method} {format_number(c.score)}, threshold {format_number(c.threshold)})"


def _eval_max_drifted(spec: RuleSpec, drift: Optional["DriftResult"]) -> RuleResult:
    limit = float(spec.max_drifted_columns or 0)
    if drift is None:
        return RuleResult(spec.text, False, None, limit,
                          "no drift result was computed, so drifted columns cannot be counted")
    drifted = [c for c in drift.columns if c.drifted]
    passed = len(drifted) <= limit
    detail = ", ".join(_drift_detail(c) for c in drift.top(min(len(drifted), 5)))
    more = f" (+{len(drifted) - 5} more)" if len(drifted) > 5 else ""
    msg = (f"{len(drifted)} of {drift.n_columns} columns drifted" + (f": {detail}{more}" if drifted else "")
           + f"; '{spec.text}' {'holds' if passed else 'fails'}")
    return RuleResult(spec.text, passed, float(len(drifted)), limit, msg)


def _eval_key_columns(spec: RuleSpec, drift: Optional["DriftResult"]) -> RuleResult:
    if drift is None:
        return RuleResult(spec.text, False, None, 0.0,
                          "no drift result was computed, so key-column drift cannot be checked")
    if spec.no_drift_in == KEY_COLUMNS:
        wanted: Sequence[str] = list(drift.key_columns)
        if not wanted:
            return RuleResult(spec.text, True, 0.0, 0.0,
                              "no key columns set (columns.key_columns), so none can drift")
    else:
        wanted = list(spec.no_drift_in or [])
    by_name = {c.column: c for c in drift.columns}
    missing = [c for c in wanted if c not in by_name]
    drifted = [c for c in wanted if c in by_name and by_name[c].drifted]
    if missing:
        return RuleResult(spec.text, False, float(len(drifted)), 0.0,
                          f"key columns not checked for drift (not in the data): {missing}")
    if drifted:
        detail = ", ".join(_drift_detail(by_name[c]) for c in drifted)
        return RuleResult(spec.text, False, float(len(drifted)), 0.0, f"key columns drifted: {detail}")
    return RuleResult(spec.text, True, 0.0, 0.0, f"none of {list(wanted)} drifted")


def _value(values: Mapping[str, float], name: str) -> Optional[float]:
    v = values.get(name)
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v

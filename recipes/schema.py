"""The recipe schema: a pydantic model of the YAML a registered model is gated with.

See ``docs/recipes.md`` for the format with a full example. Construct recipes with
:func:`mlflow_monitor.recipes.load_recipe`, which turns validation errors into a
:class:`~mlflow_monitor.recipes.RecipeError` listing the YAML path of each problem.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_serializer,
    field_validator,
    model_validator,
)

from mlflow_monitor.recipes.rules import DRIFT_METRICS, RuleSpec

Task = Literal["classification", "regression", "drift"]

#: Evidently 0.7 presets a recipe may name.
PRESETS = ("DataDriftPreset", "DataSummaryPreset", "ClassificationPreset", "RegressionPreset")
_PERFORMANCE_PRESETS = {"ClassificationPreset": "classification", "RegressionPreset": "regression"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Strict):
    """Column roles. ``numerical``/``categorical`` default to inference from the
    reference dtypes (numbers are numerical; strings, categories and bools categorical),
    leaving out the target, prediction, probability and ``exclude`` columns."""

    target: Optional[str] = None
    prediction: Optional[str] = None
    #: positive-class probability column (binary) or one column per class label
    prediction_proba: Optional[list[str]] = None
    numerical: Optional[list[str]] = None
    categorical: Optional[list[str]] = None
    #: columns rules like ``{no_drift_in: [...]}`` usually name; reported first
    key_columns: list[str] = Field(default_factory=list)
    #: ids, timestamps and other columns never checked for drift
    exclude: list[str] = Field(default_factory=list)

    @field_validator("prediction_proba", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def features(self) -> Optional[list[str]]:
        """Declared feature columns (numerical + categorical), or ``None`` to infer."""
        if self.numerical is None and self.categorical is None:
            return None
        return [*(self.numerical or []), *(self.categorical or [])]


class CurrentData(_Strict):
    """Where the current data comes from: exactly one of

    - ``path``: a local path or any URI MLflow can download (``runs:/``, ``models:/``,
      ``s3://``, ``mlflow-artifacts:/`` ...). ``{run_id}`` is replaced by the candidate's
      source run id. Format from the suffix (csv, parquet, json, jsonl) or ``format``.
    - ``dataset``: the context of a dataset input logged on the candidate's run, e.g.
      ``evaluation`` (``mlflow.log_input(ds, context="evaluation")``); its source must be
      loadable (a file or artifact URI).
    """

    path: Optional[str] = None
    dataset: Optional[str] = None
    format: Literal["auto", "csv", "parquet", "json", "jsonl"] = "auto"
    production: Optional["ProductionCurrent"] = None  # see ProductionCurrent below

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _exactly_one(self) -> "CurrentData":
        if sum(x is not None for x in (self.path, self.dataset, self.production)) != 1:
            raise ValueError("expected exactly one of 'path', 'dataset' or 'production'")
        return self


# -- production evidence (issue 10): current: {production: {window: 7d, min_rows: 1000}} -------
class ProductionCurrent(_Strict):
    """The captured production traffic of the model's current alias holder (the
    champion) as the current data: its monitoring run's window samples of the last
    ``window`` (``"<n>s|m|h|d"``, up to 366d), newest first, at most ``max_rows`` rows;
    fewer than ``min_rows`` is an error (the verdict says so and follows ``on_error``).
    ``serving_users``: who besides a policy owner may link a version to its monitoring run.
    Read by ``mlflow_monitor.gate.production_evidence``; evidence owned by the monitor."""

    window: str = "7d"
    min_rows: int = Field(default=1000, ge=1)
    max_rows: int = Field(default=50_000, ge=1)
    #: The MLflow users whose serving processes may link a version to its monitoring run
    #: (``mlflow_monitor.prod.run_id``), besides policy owners. A promoter with EDIT on the
    #: model is not one of them unless named here: the link decides whose windows are evidence.
    serving_users: list[str] = Field(default_factory=list)
    #: Refuse the evidence (the verdict follows ``on_error``) when the gate has no evidence
    #: key (``MLFLOW_MONITOR_EVIDENCE_KEY``): windows are then read unsigned, and an editor of
    #: the monitoring run's experiment could have written them. With a key, only signed
    #: rows and labels count, whatever this says.
    require_signed: StrictBool = False

    @field_validator("serving_users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not isinstance(u, str) or not u.strip()]
        if bad:
            raise ValueError(f"serving_users must be a list of non-empty MLflow user names; got {v!r}")
        return [u.strip() for u in v]

    @field_validator("window")
    @classmethod
    def _duration(cls, v: str) -> str:
        from mlflow_monitor.windows.granularity import parse_duration

        parse_duration(v, what="window")  # the monitor's one duration parser (1s to 366d)
        return str(v).strip().lower()

    @model_validator(mode="after")
    def _bounds(self) -> "ProductionCurrent":
        if self.max_rows < self.min_rows:
            raise ValueError(f"max_rows ({self.max_rows}) must be at least min_rows ({self.min_rows})")
        return self


CurrentData.model_rebuild()
# -- end of production evidence ---------------------------------------------------------


class ReferenceSource(_Strict):
    """Where the reference comes from. Default (no ``reference:``): the reference logged on
    the candidate's own run (``log_reference``), which its trainer wrote (self-reported).
    ``run_id``: the run whose logged reference every candidate is compared with, pinned by
    the policy owner (owned evidence)."""

    run_id: Optional[str] = Field(default=None, min_length=1)


class EvidencePolicy(_Strict):
    """What evidence a verdict may rest on: ``require: any`` (default) or ``owned``, which
    blocks a verdict when any input is self-reported (see ``docs/gate.md``)."""

    require: Literal["any", "owned"] = "any"


class Triggers(_Strict):
    """Which promotions run the gate."""

    aliases: list[str] = Field(default_factory=lambda: ["champion"])
    stages: list[str] = Field(default_factory=lambda: ["Production"])
    new_versions: bool = False

    def matches_alias(self, alias: str) -> bool:
        return alias in self.aliases or "*" in self.aliases

    def matches_stage(self, stage: str) -> bool:
        wanted = {s.lower() for s in self.stages}
        return stage.lower() in wanted or "*" in wanted


class EffectFloor(_Strict):
    """The smallest drift score that counts as drift, per column type, however much data
    there is (calibrated detection): normed Wasserstein for numerical columns,
    Jensen-Shannon distance for categorical ones and for numerical columns with at most 5
    distinct reference values (scored like categories)."""

    numerical: float = Field(default=0.1, ge=0)
    categorical: float = Field(default=0.03, ge=0)


class DriftSettings(_Strict):
    """How the drift verdict decides a column (``drift:`` in a recipe).

    - ``method``: ``calibrated`` (default): per column, a threshold from the reference's own
      null distribution at the current size, corrected for the number of tests so that the
      dataset-level false-alarm rate is at most ``alpha``, never below ``effect_floor``;
      ``evidently``: Evidently 0.7's ``DataDriftPreset`` defaults exactly.
    - ``alpha``: dataset-level false-alarm rate of calibrated detection (default 0.01).
    - ``effect_floor``: :class:`EffectFloor`.
    - ``key_weight``: weight of each ``columns.key_columns`` column in
      ``weighted_drift_share`` (other columns weigh 1).
    - ``new_category_alpha_share``: the share of ``alpha`` (strictly between 0 and 1) given
      to the new-category tests, spread equally over the categorical columns; the tests
      of the groups left unset share the rest by count (Bonferroni with unequal weights,
      still ``alpha`` in all); both shares unset (default): every test gets
      ``alpha / (3 x columns)``. The built-in recipes set 0.6,
      which calls an unseen category in 1% of rows at 1,000 / 1,000 rows (docs/drift.md).
      Calibrated detection only.
    - ``distribution_alpha_share``: the same for the distribution tests (each column's drift
      score), spread equally over the columns; the two shares must sum to less than 1, and
      the missing-share and out-of-range tests share what is left (unset: by test count).
      The built-in recipes set 0.3 (the quality tests keep 0.1), which calls a +5-point
      share change in a 3-level column at 5,000 / 5,000 rows.
    """

    method: Literal["calibrated", "evidently"] = "calibrated"
    alpha: float = Field(default=0.01, gt=0, le=0.2)
    effect_floor: EffectFloor = Field(default_factory=EffectFloor)
    key_weight: float = Field(default=3.0, ge=1)
    new_category_alpha_share: Optional[float] = Field(default=None, gt=0, lt=1)
    distribution_alpha_share: Optional[float] = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _shares_leave_alpha(self) -> "DriftSettings":
        given = (self.new_category_alpha_share or 0.0) + (self.distribution_alpha_share or 0.0)
        if given >= 1.0:
            raise ValueError(
                f"new_category_alpha_share + distribution_alpha_share must be below 1 (the missing-share and "
                f"out-of-range tests need some alpha), got {self.new_category_alpha_share!r} + "
                f"{self.distribution_alpha_share!r}")
        return self


class ReportSettings(_Strict):
    """The HTML report is built from at most ``sample_size`` rows of each frame,
    sampled with ``seed`` (the verdict always uses all rows)."""

    sample_size: int = Field(default=50_000, gt=0)
    seed: int = 0


class Recipe(_Strict):
    """A validated monitoring recipe. Fields:

    - ``name``: free text, shown in reports.
    - ``task``: ``classification`` | ``regression`` | ``drift`` (unlabeled).
    - ``columns``: :class:`Columns`.
    - ``current``: :class:`CurrentData` (required).
    - ``reference``: :class:`ReferenceSource` (default: the candidate's own run).
    - ``evidence``: :class:`EvidencePolicy` (default: any evidence).
    - ``presets``: Evidently 0.7 preset names for the report (default per task).
    - ``metrics``: extra Evidently metrics, each ``Name`` or ``{Name: {arg: value}}``.
    - ``rules``: :class:`~mlflow_monitor.recipes.rules.RuleSpec` list.
    - ``triggers``: :class:`Triggers`.
    - ``on_error``: ``block`` (default: an error in the gate blocks the promotion) or
      ``allow`` (let it through, recording the error).
    - ``notify``: free-form settings for notifications (``channel``, ``webhook_env``...).
    - ``report``: :class:`ReportSettings`.
    - ``drift``: :class:`DriftSettings` (default: calibrated detection, ``alpha`` 0.01).
    """

    name: Optional[str] = None
    task: Task
    columns: Columns = Field(default_factory=Columns)
    current: CurrentData
    reference: Optional[ReferenceSource] = None
    evidence: Optional[EvidencePolicy] = None
    presets: Optional[list[str]] = None
    metrics: list[Any] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    triggers: Triggers = Field(default_factory=Triggers)
    on_error: Literal["block", "allow"] = "block"
    notify: dict[str, Any] = Field(default_factory=dict)
    report: ReportSettings = Field(default_factory=ReportSettings)
    drift: Optional[DriftSettings] = None

    @field_validator("presets")
    @classmethod
    def _known_presets(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        for p in v or []:
            if p not in PRESETS:
                raise ValueError(f"unknown preset {p!r}; expected one of {', '.join(PRESETS)}")
        return v

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[Any]) -> list[Any]:
        for item in v:
            _evidently_metric_spec(item)  # raises ValueError naming the problem
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        problems: list[str] = []
        for i, rule in enumerate(self.rules):
            for sub, msg in rule.problems(self.task, self.columns.target):
                problems.append(f"rules[{i}].{sub}: {msg}")
        excluded = set(self.columns.exclude)
        for i, col in enumerate(self.columns.key_columns):
            if col in excluded:
                problems.append(f"columns.key_columns[{i}]: {col!r} is also in columns.exclude; "
                                "expected a column checked for drift")
        for i, preset in enumerate(self.presets or []):
            needs = _PERFORMANCE_PRESETS.get(preset)
            if needs and needs != self.task:
                problems.append(f"presets[{i}]: {preset} needs task {needs!r}, got {self.task!r}")
            elif needs and not self.columns.target:
                problems.append(f"presets[{i}]: {preset} needs columns.target")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @field_serializer("rules")
    def _rules_yaml(self, rules: list[RuleSpec]) -> list[Any]:
        return [r.to_yaml_value() for r in rules]

    # -- derived -----------------------------------------------------------------
    @property
    def effective_presets(self) -> list[str]:
        """``presets`` if given, else the task's default."""
        if self.presets is not None:
            return list(self.presets)
        if self.task == "classification" and self.columns.target:
            return ["DataDriftPreset", "ClassificationPreset"]
        if self.task == "regression" and self.columns.target:
            return ["DataDriftPreset", "RegressionPreset"]
        return ["DataDriftPreset"]

    @property
    def needs_performance(self) -> bool:
        """True when a rule or preset needs target/prediction metrics."""
        if any(p in _PERFORMANCE_PRESETS for p in self.effective_presets):
            return True
        return any(r.metric is not None and r.metric not in DRIFT_METRICS for r in self.rules)

    @property
    def effective_drift(self) -> DriftSettings:
        """``drift`` if given, else the default (calibrated detection)."""
        return self.drift if self.drift is not None else DriftSettings()

    @property
    def requires_owned_evidence(self) -> bool:
        """True when ``evidence: {require: owned}``."""
        return self.evidence is not None and self.evidence.require == "owned"

    @property
    def needs_champion(self) -> bool:
        """True when a rule compares the candidate with the alias/stage holder."""
        return any(r.kind == "champion" for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (what :meth:`to_yaml` writes)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        """Canonical YAML; ``load_recipe(r.to_yaml()) == r``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def sha256(self) -> str:
        """Stable hash of the canonical form (key order and formatting do not matter)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _evidently_metric_spec(item: Any) -> tuple[str, dict[str, Any]]:
    """``"RowCount"`` or ``{"ValueDrift": {"column": "age"}}`` -> (name, kwargs)."""
    if isinstance(item, str):
        name, kwargs = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, kwargs = next(iter(item.items()))
        kwargs = kwargs or {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"arguments of metric {name!r} must be a mapping, got {kwargs!r}")
    else:
        raise ValueError(f"expected a metric name or {{Name: {{args}}}}, got {item!r}")
    import evidently.metrics as em

    cls = getattr(em, str(name), None)
    if not isinstance(name, str) or name.startswith("_") or not isinstance(cls, type):
        raise ValueError(f"unknown Evidently metric {name!r} (see evidently.metrics)")
    try:
        cls(**kwargs)
    except Exception as exc:  # evidently validates its own arguments (pydantic)
        first = str(exc).strip().splitlines()
        raise ValueError(f"invalid arguments for Evidently metric {name} {kwargs!r}: "
                         f"{' '.join(first[:3])}") from None
    return str(name), dict(kwargs)

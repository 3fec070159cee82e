"""Where each input of a verdict came from, and whether the promoter could have written it.

A verdict is only as good as its inputs. Each input -- the reference, the current data,
the labels and the predictions -- is

- :data:`OWNED` when the policy owner fixed it: a reference run pinned in the recipe
  (``reference: {run_id: ...}``), a current-data URI pinned in the recipe that does not
  point into the candidate's run, or predictions the gate computed itself from the
  registered model; only the policy owner may change the recipe;
- :data:`SELF_REPORTED` when whoever trained and registered the candidate wrote it: the
  reference logged on the candidate's run (``log_reference``), a dataset logged on the
  candidate's run (``current: {dataset: evaluation}``, what the built-in recipes read), a
  path into the candidate's run (``runs:/{run_id}/...``), and labels or predictions that
  come from such data. A promoter can log labels equal to the model's own predictions.

The verdict's evidence is owned only when every input it used is. A recipe with
``evidence: {require: owned}`` blocks a verdict on self-reported evidence (a failed rule,
never an error, so ``on_error: allow`` cannot let it through).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

from mlflow_monitor.gate import tags as T

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.recipes import Recipe

__all__ = ["EVIDENCE_TAG", "OWNED", "SELF_REPORTED", "Evidence", "EvidenceSource", "evidence_of"]

OWNED = "owned"
SELF_REPORTED = "self-reported"

#: Model-version tag: ``owned`` or ``self-reported``, the evidence of the last verdict.
EVIDENCE_TAG = T.PREFIX + "evidence"


@dataclasses.dataclass(frozen=True)
class EvidenceSource:
    """One input of a verdict: ``input`` (``reference``, ``current data``, ``labels``,
    ``predictions``), where it came from, and who could write it."""

    input: str
    origin: str
    owner: str  # OWNED | SELF_REPORTED

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The inputs of one verdict."""

    sources: tuple[EvidenceSource, ...]

    @property
    def level(self) -> str:
        """:data:`OWNED` when every input is owned, else :data:`SELF_REPORTED`."""
        return OWNED if all(s.owner == OWNED for s in self.sources) else SELF_REPORTED

    @property
    def self_reported(self) -> tuple[EvidenceSource, ...]:
        return tuple(s for s in self.sources if s.owner == SELF_REPORTED)

    def summary(self) -> str:
        """One line: ``owned`` or ``self-reported: current data (dataset 'evaluation' ...)``."""
        if self.level == OWNED:
            return OWNED
        return SELF_REPORTED + ": " + "; ".join(f"{s.input} ({s.origin})" for s in self.self_reported)

    def with_predictions(self, origin: str, owner: str) -> "Evidence":
        return Evidence((*[s for s in self.sources if s.input != "predictions"],
                         EvidenceSource("predictions", origin, owner)))

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "sources": [s.to_dict() for s in self.sources]}


def evidence_of(recipe: "Recipe", run_id: str, *, labels: Optional[str] = None,
                predictions: Optional[str] = None) -> Evidence:
    """The evidence ``recipe`` uses for a candidate whose source run is ``run_id``.

    ``labels`` is the target column when a rule or preset uses it; ``predictions`` the
    prediction column when it comes from the current data (``None``: the gate computes
    predictions from the model, or none are used).
    """
    sources = [_reference(recipe, run_id)]
    current = _current(recipe, run_id)
    sources.append(current)
    if labels:
        sources.append(EvidenceSource("labels", f"column '{labels}' of the current data", current.owner))
    if predictions:
        sources.append(EvidenceSource("predictions", f"column '{predictions}' of the current data",
                                      current.owner))
    return Evidence(tuple(sources))


def _reference(recipe: "Recipe", run_id: str) -> EvidenceSource:
    pinned = recipe.reference.run_id if recipe.reference is not None else None
    if pinned and pinned != run_id:
        return EvidenceSource("reference", f"run {pinned}, pinned in the recipe", OWNED)
    return EvidenceSource("reference", f"logged on the candidate's run {run_id}", SELF_REPORTED)


def _signing() -> str:
    """Whether the gate checks production evidence signatures (windows/signing.py)."""
    from mlflow_monitor.windows.signing import ENV_KEY, EvidenceKeyError, evidence_key

    try:
        key = evidence_key()
    except EvidenceKeyError:
        return "the gate's evidence key is unusable"
    if key is None:
        return f"unsigned (the gate has no {ENV_KEY})"
    return f"only what the monitor signed (evidence key {key.key_id})"


def _current(recipe: "Recipe", run_id: str) -> EvidenceSource:
    source = recipe.current
    if source.production is not None:  # captured by the monitor (gate/production_evidence.py)
        return EvidenceSource("current data", "production traffic of the current alias holder in the last "
                                              f"{source.production.window}, captured by the monitor, "
                                              f"{_signing()}", OWNED)
    if source.dataset is not None:
        return EvidenceSource("current data", f"dataset '{source.dataset}' logged on the candidate's "
                                              f"run {run_id}", SELF_REPORTED)
    template = str(source.path)
    location = template.replace("{run_id}", run_id)
    if "{run_id}" in template or (run_id and run_id in location):
        return EvidenceSource("current data", f"'{location}', in the candidate's run", SELF_REPORTED)
    return EvidenceSource("current data", f"'{location}', pinned in the recipe", OWNED)

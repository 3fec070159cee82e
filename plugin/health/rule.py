"""The shape of a training-health rule: one small class per thing watched (see nan_loss.py).

A rule sees every metric point of one run (``observe``) and returns a :class:`Finding`
when its condition *starts*. Rules are edge-triggered: a condition that stays true
(NaN on every step) fires once, and the rule re-arms only when it clears. So a rule
never floods the bus; the Slack notifier throttles flapping conditions on top.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from typing import Iterable, Optional


@dataclasses.dataclass(frozen=True)
class Finding:
    """What a rule saw; the monitor turns it into a HealthAlert and a run tag."""

    message: str
    metric: str
    value: float
    step: Optional[int] = None
    severity: str = "warning"  # "warning" | "critical"


class HealthRule:
    """Base class: ``name`` (the tag suffix), ``watches(key)`` and ``observe(...)``."""

    name: str = "rule"
    metrics: tuple[str, ...] = ()

    def watches(self, key: str) -> bool:
        return key in self.metrics

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything seen (state only; knobs stay)."""

    def fresh(self) -> "HealthRule":
        """A copy with the same knobs and fresh state (the monitor keeps one per run)."""
        clone = copy.deepcopy(self)
        clone.reset()
        return clone


class Latch:
    """Edge trigger: ``update(True)`` is True only when the condition goes false -> true."""

    def __init__(self) -> None:
        self.active = False

    def update(self, condition: bool) -> bool:
        fired = condition and not self.active
        self.active = condition
        return fired


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


MAD_TO_SIGMA = 1.4826  # MAD x this = the standard deviation, for normal noise


def robust_spread(values: list[float], center: float) -> float:
    """The noise of ``values`` around ``center`` as a standard deviation, from the median
    absolute deviation: a few outliers (a hard mini-batch, a stalled step) do not move it."""
    return MAD_TO_SIGMA * statistics.median(abs(v - center) for v in values)

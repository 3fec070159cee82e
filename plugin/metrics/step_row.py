"""One training step as the facts the training thread observed, and the metrics they give.

The training hooks run between the user's torch calls, where each Python bytecode costs
5-8x what it costs in a warm loop (``docs/performance.md``, "Session 10"). So the common
optimizer step is queued as a :data:`StepRow` -- a flat tuple of the numbers observed --
and :func:`step_row_metrics` derives its metrics on the flusher thread, in a batch
(:func:`~mlflow_monitor.metrics.materialize.materialize`). Every integration derives the
step time, throughput and idle time from the same facts with :func:`step_timing`, so the
rules live here once.

A :data:`StepRow` is ``(run_id, step, timestamp_ms, loss, lr, prev_end, start, end,
samples)``:

- ``loss``: the step's loss (a float, a 0-dim tensor, or None when no loss was seen);
- ``lr``: the learning rate of the optimizer's only param group (a float);
- ``prev_end``: when the previous step of the run ended (``time.perf_counter()``), or None
  at the run's first step (no step time then);
- ``start``: when the step's first training batch was fetched, or None when no batch was
  seen (the step then runs from ``prev_end``);
- ``end``: when the optimizer step ended;
- ``samples``: the training samples of the step's batches (0 when unknown).
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["IDLE_REPORT_FRACTION", "StepRow", "STEP_ROW_FIELDS", "step_row_metrics", "step_timing"]

IDLE_REPORT_FRACTION = 0.1  # train/idle_time_s is logged when the gap exceeds 10% of the step

#: ``(run_id, step, timestamp_ms, loss, lr, prev_end, start, end, samples)``: a plain tuple,
#: so the garbage collector untracks it while it waits in the buffer (see ``point``).
StepRow = tuple[str, int, int, Any, float, Optional[float], Optional[float], float, int]
STEP_ROW_FIELDS = 9  # the buffer tells a StepRow apart by its length (a PointRow has 5, a PointGroup 4)


def step_timing(prev_end: Optional[float], start: Optional[float], end: float, samples: int,
                prefix: str = "train/") -> list[tuple[str, float]]:
    """``step_time_s``, ``samples_per_s`` and ``idle_time_s`` of one step, as (key, value).

    The step runs from its first training batch's fetch (``start``), or from the previous
    step's end when no batch was seen; the gap before it is idle time (eval, checkpoints),
    reported when it exceeds :data:`IDLE_REPORT_FRACTION` of the step. Nothing at a run's
    first step (``prev_end`` None): there is no previous end to measure from.
    """
    if prev_end is None:
        return []
    begin = prev_end if start is None or start < prev_end else start
    step_time = end - begin
    out = [(prefix + "step_time_s", step_time)]
    if samples and step_time > 0:
        out.append((prefix + "samples_per_s", samples / step_time))
    idle = begin - prev_end
    if idle > IDLE_REPORT_FRACTION * step_time:
        out.append((prefix + "idle_time_s", idle))
    return out


def step_row_metrics(row: StepRow) -> list[tuple[str, Any]]:
    """The metrics of one :data:`StepRow`, as (key, value), in the order the torch hooks log them."""
    _, _, _, loss, lr, prev_end, start, end, samples = row
    out: list[tuple[str, Any]] = [] if loss is None else [("train/loss", loss)]
    out.append(("train/lr", lr))
    if prev_end is not None:
        out += step_timing(prev_end, start, end, samples)
    return out

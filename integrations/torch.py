"""Plain PyTorch loops: loss, learning rate, step time, throughput and grad norm,
with no change to the user's code.

What is hooked (each one installed through the autolog :class:`PatchRegistry`, so
``autolog(disable=True)`` undoes it):

- ``torch.Tensor.backward`` (wrapped): the 0-dim floating tensor
  ``.backward()`` is called on is the loss. It is detached and kept as a tensor; with
  gradient accumulation the losses of one optimizer step are summed as tensor ops and
  divided by their count when the step is logged. Nothing is read on this thread.
- ``torch.utils.data.dataloader._BaseDataLoaderIter.__next__``: the leading dimension
  of the first tensor of each batch fetched while grad is enabled counts the samples
  of the next optimizer step (``train/samples_per_s``). Loops that do not use a
  DataLoader get no throughput metric.
- ``torch.optim.optimizer.register_optimizer_step_pre_hook`` / ``..._post_hook`` (the
  official global hooks): the post hook counts the step and hands one dict of
  values to :meth:`MonitoredRuns.log_step` (the run lifecycle owns the way into the
  metrics pipeline); the pre hook computes the global grad L2 norm
  (``log_grad_norm=True``) as tensor ops.

One loss value, from ``loss.backward()`` to the pipeline buffer: ``backward`` (the
patch) -> :meth:`StepMetrics.add_loss` (kept as a tensor) ... at ``optimizer.step()``:
:meth:`TorchAutolog._post_step` -> :meth:`StepMetrics.collect` -> :meth:`MonitoredRuns.log_step`
-> ``MetricsPipeline.append_many``. Nothing calls back into this module.

MLflow ``step`` is the optimizer step count of the run (1 after the first step). With
several optimizers, the first one that steps defines the step.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any, Optional, Protocol

import torch

from mlflow_monitor import distributed
from mlflow_monitor.patching import PatchRegistry
from mlflow_monitor.runs import MonitoredRuns

_logger = logging.getLogger(__name__)

_active: Optional["TorchAutolog"] = None  # read by the patched functions below


class TorchKnobs(Protocol):
    """The autolog knobs the torch hooks read."""

    @property
    def log_every_n_steps(self) -> int: ...
    @property
    def log_grad_norm(self) -> bool: ...


class StepMetrics:
    """The values of one optimizer step, kept as tensors until the flusher reads them."""

    __slots__ = ("loss_sum", "loss_count", "samples", "grad_norm", "last_step_end")

    def __init__(self) -> None:
        self.loss_sum: Any = None
        self.loss_count = 0
        self.samples = 0
        self.grad_norm: Any = None
        self.last_step_end: Optional[float] = None

    def add_loss(self, loss: torch.Tensor) -> None:
        """Add one loss: a 0-dim floating tensor (anything else is not a loss); no device sync."""
        if loss.dim() != 0 or not loss.is_floating_point():
            return
        loss = loss.detach()
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.loss_count += 1

    def add_grad_norm(self, parameters: Any) -> None:
        """Global L2 norm of the gradients of ``parameters``, as a tensor (no sync)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            self.grad_norm = _total_norm(grads)

    def collect(self, param_groups: list[dict], now: float) -> dict[str, Any]:
        """This step's metrics; resets the accumulators for the next step."""
        metrics: dict[str, Any] = {}
        if self.loss_count:
            loss = self.loss_sum
            metrics["train/loss"] = loss if self.loss_count == 1 else loss / self.loss_count
        metrics.update(lr_metrics(param_groups))
        if self.last_step_end is not None:
            step_time = now - self.last_step_end
            metrics["train/step_time_s"] = step_time
            if self.samples and step_time > 0:
                metrics["train/samples_per_s"] = self.samples / step_time
        if self.grad_norm is not None:
            metrics["train/grad_norm"] = self.grad_norm
        self.loss_sum, self.loss_count, self.samples, self.grad_norm = None, 0, 0, None
        self.last_step_end = now
        return metrics


def lr_metrics(param_groups: list[dict]) -> dict[str, Any]:
    """``train/lr`` for one param group, ``train/lr/group_<i>`` for several."""
    if len(param_groups) == 1:
        return {"train/lr": _lr_value(param_groups[0].get("lr"))}
    return {f"train/lr/group_{i}": _lr_value(g.get("lr")) for i, g in enumerate(param_groups)}


def _lr_value(lr: Any) -> Any:
    # a tensor lr (capturable optimizers) is updated in place later: copy it (async)
    return lr.detach().clone() if isinstance(lr, torch.Tensor) else lr


def _total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:  # torch >= 2.6: groups by device, foreach kernels
        return get_total_norm(grads, 2.0, False, None)
    device = grads[0].device
    norms = [torch.linalg.vector_norm(g.detach()).to(device) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms))


def batch_size(batch: Any, _depth: int = 0) -> Optional[int]:
    """Leading dimension of the first tensor in ``batch`` (tensor, sequence or mapping)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else None
    if _depth > 3:
        return None
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size(batch[0], _depth + 1)
    if isinstance(batch, Mapping) and batch:
        return batch_size(next(iter(batch.values())), _depth + 1)
    return None


class TorchAutolog:
    """The plain-PyTorch hooks. One instance is installed at a time."""

    def __init__(self, runs: MonitoredRuns, knobs: TorchKnobs) -> None:
        self.runs = runs
        self.log_every_n_steps = 1
        self.log_grad_norm = False
        self.configure(knobs)
        self.suspended = 0  # > 0 while a Lightning fit runs (its callback logs instead)
        self.step_metrics = StepMetrics()
        self._primary: Optional[weakref.ref] = None
        self._run_id: Optional[str] = None
        self._step = 0
        self._dist_resolved = False
        self._run_id_dist: Optional[str] = None
        self._log_here = True  # False on non-zero DDP ranks
        self._warned: set[str] = set()

    def configure(self, knobs: TorchKnobs) -> None:
        """New knobs from a second ``autolog()`` call."""
        self.log_every_n_steps = max(1, int(knobs.log_every_n_steps))
        self.log_grad_norm = bool(knobs.log_grad_norm)

    # -- install (undone by patches.undo_all()) -----------------------------------------
    def install(self, patches: PatchRegistry) -> None:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )
        from torch.utils.data import dataloader

        patches.add_undo(self._deactivate)
        patches.patch(torch.Tensor, "backward", _make_backward(torch.Tensor.backward))
        iterator = dataloader._BaseDataLoaderIter  # torch-private, stable since torch 1.x
        patches.patch(iterator, "__next__", _make_next(iterator.__next__))
        patches.add_hook(register_optimizer_step_pre_hook(self._pre_step))
        patches.add_hook(register_optimizer_step_post_hook(self._post_step))
        global _active
        _active = self

    def _deactivate(self) -> None:
        global _active
        if _active is self:
            _active = None

    # -- hooks (training thread: never raise, never sync) -----------------------------
    def on_batch(self, batch: Any) -> None:
        if self.suspended or not torch.is_grad_enabled():
            return
        try:
            n = batch_size(batch)
            if n:
                self.step_metrics.samples += n
        except Exception:
            self._warn_once("dataloader")

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.suspended or not self.log_grad_norm or not self._is_primary(optimizer):
            return
        try:
            self.step_metrics.add_grad_norm(p for g in optimizer.param_groups for p in g["params"])
        except Exception:
            self._warn_once("grad_norm")

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.suspended or not self._is_primary(optimizer):
            return
        try:
            run_id = self._resolve_run()
            now = time.perf_counter()  # after the (one-off) run start, not charged to a step
            if run_id != self._run_id:  # a new run: steps count from 1 again
                self._run_id, self._step = run_id, 0
                self.step_metrics.last_step_end = None
            self._step += 1
            self.runs.set_current_step(self._step)
            metrics = self.step_metrics.collect(optimizer.param_groups, now)
            if run_id is None or not self._log_here or self._step % self.log_every_n_steps:
                return
            self.runs.log_step(run_id, metrics, self._step)
        except Exception:
            self._warn_once("optimizer_step")

    # -- helpers -----------------------------------------------------------------------
    def _is_primary(self, optimizer: torch.optim.Optimizer) -> bool:
        primary = self._primary() if self._primary is not None else None
        if primary is None:
            self._primary = weakref.ref(optimizer)
            return True
        return primary is optimizer

    def _resolve_run(self) -> Optional[str]:
        if not distributed.is_distributed():
            return self.runs.current_run_id()
        if not self._dist_resolved:
            self._run_id_dist = self.runs.shared_run_id()
            self._log_here = distributed.rank() == 0
            self._dist_resolved = True
        return self._run_id_dist

    def _warn_once(self, where: str) -> None:
        if where not in self._warned:
            self._warned.add(where)
            _logger.warning("mlflow-monitor: torch %s hook failed; training goes on", where, exc_info=True)


def active_hooks() -> Optional[TorchAutolog]:
    """The installed torch hooks, or None (Lightning suspends them while a fit runs)."""
    return _active


def _make_backward(original: Any) -> Any:
    @functools.wraps(original)
    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        hooks = _active
        if hooks is not None and not hooks.suspended:
            try:
                hooks.step_metrics.add_loss(self)
            except Exception:
                hooks._warn_once("backward")
        return original(self, *args, **kwargs)

    return backward


def _make_next(original: Any) -> Any:
    @functools.wraps(original)
    def __next__(self: Any) -> Any:
        batch = original(self)
        hooks = _active
        if hooks is not None:
            hooks.on_batch(batch)
        return batch

    return __next__

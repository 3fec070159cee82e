"""Plain PyTorch loops: loss, learning rate, step time, throughput and grad norm,
with no change to the user's code.

What is hooked (each one installed through the autolog :class:`PatchRegistry`, so
``autolog(disable=True)`` undoes it):

- ``torch.Tensor.backward`` (wrapped): the 0-dim floating tensor ``.backward()`` is
  called on is a loss. A CPU loss is read at once (``.item()``: no device to wait for,
  and cheaper than keeping a detached tensor and summing tensors); a loss on an
  accelerator is detached and kept as a tensor, read by the flusher thread (one transfer
  per flush, no sync on this thread). The losses backwarded since the previous optimizer step are *summed* and
  belong to the next optimizer that steps (the one whose step consumes their
  gradients). Under the standard gradient-accumulation idiom (``(loss / n).backward()``)
  that sum is the mean micro-batch loss -- what HF Trainer and Lightning report.
- ``torch.utils.data.dataloader._BaseDataLoaderIter.__next__``: the leading dimension
  of the first tensor of each batch fetched while grad is enabled. Each ``backward()``
  consumes the oldest batch fetched from the current iterator (loaders that prefetch,
  like accelerate's, stay aligned); only consumed batches count (``train/samples_per_s``),
  and batches of an iterator read in between without a backward (an eval) are dropped.
  The training step starts when its first consumed batch was fetched, so evaluation,
  checkpointing and other work between optimizer steps is not charged to the step
  (``train/idle_time_s`` reports that gap).
- ``torch.amp.GradScaler.scale`` / ``.step`` (wrapped): ``scaler.scale(loss).backward()``
  logs the unscaled ``loss``; a step the scaler skips for inf/nan gradients drops that
  step's losses, batches and time, and is counted in ``train/amp_skipped_steps``.
- ``torch.optim.optimizer.register_optimizer_step_pre_hook`` / ``..._post_hook`` (the
  official global hooks): the pre hook wraps a ``closure`` (LBFGS & co.) to keep the
  value of its first call -- the value ``step()`` returns -- and computes the grad L2
  norm (``log_grad_norm=True``) as tensor ops; the post hook counts the step and queues
  it (below).

One loss value, from ``loss.backward()`` to the pipeline buffer: ``backward`` (the
patch) -> :meth:`TorchAutolog.on_backward` (a float, or a tensor on an accelerator) ... at
``optimizer.step()``: :meth:`TorchAutolog._post_step`, then one of two ways:

- the common step (the first optimizer, the same run as its last step, one param group
  with a float lr, no closure, grad norm or AMP skip to report) is queued as the facts
  observed, a :data:`~mlflow_monitor.metrics.step_row.StepRow` (loss, lr, step start and
  end, samples), by :meth:`MonitoredRuns.log_step_row`; the flusher derives its metrics
  in a batch (:func:`~mlflow_monitor.metrics.step_row.step_row_metrics`). In a step of
  0.1-0.2 ms each Python bytecode between the user's torch calls costs 5-8x what it
  costs in a warm loop, so the training thread does only what must happen now;
- any other step: :meth:`StepMetrics.collect` builds the dict, queued by
  :meth:`MonitoredRuns.log_step`.

Both derive step time, throughput and idle time with the one rule,
:func:`~mlflow_monitor.metrics.step_row.step_timing`, and give the same points
(``tests/training/test_step_rows.py``). Nothing calls back into this module.

MLflow ``step`` is the optimizer's own step count in the run (1 after its first step).
The first optimizer that steps logs ``train/loss``, ``train/lr``, step time and
throughput; every other one logs ``train/<name>/loss`` and ``train/<name>/lr``, the name
from the ``optimizer_names`` knob (by order of first step) or ``<class>_<k>``
(``adam_1`` for the second optimizer, an Adam).
"""

from __future__ import annotations

import functools
import logging
import re
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Protocol

import torch

from mlflow_monitor import distributed
from mlflow_monitor.metrics.step_row import step_timing
from mlflow_monitor.patching import PatchRegistry
from mlflow_monitor.runs import MonitoredRuns

_logger = logging.getLogger(__name__)

_active: Optional["TorchAutolog"] = None  # read by the patched functions below

_MAX_UNCONSUMED_BATCHES = 64
_perf_counter = time.perf_counter  # a global lookup, not a module attribute, on the per-step path
_time_ns = time.time_ns


class TorchKnobs(Protocol):
    """The autolog knobs the torch hooks read."""

    @property
    def log_every_n_steps(self) -> int: ...
    @property
    def log_grad_norm(self) -> bool: ...
    @property
    def optimizer_names(self) -> Optional[Sequence[str]]: ...


class StepMetrics:
    """The values of one optimizer step, kept as tensors until the flusher reads them.

    ``loss_sum`` is the sum of the losses added since the last :meth:`collect`; the step
    time runs from ``step_start`` (the first training batch's fetch, else the previous
    step's end) to the step's end; the gap before it is idle time.
    """

    __slots__ = ("loss_sum", "samples", "grad_norm", "last_step_end", "step_start", "skipped", "skipped_dirty",
                 "floats_only")

    def __init__(self) -> None:
        self.loss_sum: Any = None
        self.samples = 0
        self.grad_norm: Any = None
        self.last_step_end: Optional[float] = None
        self.step_start: Optional[float] = None
        self.skipped = 0  # AMP steps skipped for inf/nan grads (cumulative, this run)
        self.skipped_dirty = False
        self.floats_only = False  # the last collect() gave only floats and ints (nothing to read)

    def add_loss(self, loss: Any) -> None:
        """Add one loss: a 0-dim floating tensor or a Python number (a closure's value);
        anything else is not a loss. No device sync."""
        if isinstance(loss, torch.Tensor):
            if loss.dim() != 0 or not loss.is_floating_point():
                return
            loss = loss.detach()
        elif isinstance(loss, bool) or not isinstance(loss, (int, float)):
            return
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss

    def mark_start(self, t: float) -> None:
        """The training step began at ``t`` (the first call wins until :meth:`collect`)."""
        if self.step_start is None:
            self.step_start = t

    def add_grad_norm(self, parameters: Any) -> None:
        """Global L2 norm of the gradients of ``parameters``, as a tensor (no sync)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            self.grad_norm = _total_norm(grads)

    def drop(self, now: float) -> None:
        """A step that did not happen (AMP skip): forget its losses, batches and time."""
        self.loss_sum, self.samples, self.grad_norm, self.step_start = None, 0, None, None
        self.last_step_end = now
        self.skipped += 1
        self.skipped_dirty = True

    def collect(self, param_groups: list[dict], now: float) -> dict[str, Any]:
        """This step's metrics; resets the accumulators for the next step."""
        loss = self.loss_sum
        metrics: dict[str, Any] = {} if loss is None else {"train/loss": loss}
        floats = loss is None or type(loss) is float
        if len(param_groups) == 1:  # the common case, without lr_metrics' dicts
            lr = param_groups[0].get("lr")
            if type(lr) is not float:
                lr = _lr_value(lr)
                floats = False
            metrics["train/lr"] = lr
        else:
            metrics.update(lr_metrics(param_groups))
            floats = False
        if self.last_step_end is not None:
            metrics.update(step_timing(self.last_step_end, self.step_start, now, self.samples))
        if self.grad_norm is not None:
            metrics["train/grad_norm"] = self.grad_norm
            floats = False
        self.floats_only = floats
        if self.skipped_dirty:
            metrics["train/amp_skipped_steps"] = self.skipped
            self.skipped_dirty = False
        self.loss_sum, self.samples, self.grad_norm, self.step_start = None, 0, None, None
        self.last_step_end = now
        return metrics


def lr_metrics(param_groups: list[dict], prefix: str = "train/") -> dict[str, Any]:
    """``train/lr`` for one param group, ``train/lr/group_<i>`` for several."""
    if len(param_groups) == 1:
        return {f"{prefix}lr": _lr_value(param_groups[0].get("lr"))}
    return {f"{prefix}lr/group_{i}": _lr_value(g.get("lr")) for i, g in enumerate(param_groups)}


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


_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


class _Secondary:
    """An optimizer other than the first: its name, own step count and grad norm."""

    __slots__ = ("prefix", "step", "grad_norm")

    def __init__(self, name: str) -> None:
        self.prefix = f"train/{name}/"
        self.step = 0
        self.grad_norm: Any = None


class TorchAutolog:
    """The plain-PyTorch hooks. One instance is installed at a time."""

    def __init__(self, runs: MonitoredRuns, knobs: TorchKnobs) -> None:
        self.runs = runs
        self.log_every_n_steps = 1
        self.log_grad_norm = False
        self.optimizer_names: tuple[str, ...] = ()
        self.configure(knobs)
        self.suspended = 0  # > 0 while a Lightning fit runs (its callback logs instead)
        self.step_metrics = StepMetrics()  # the first optimizer's step
        self._primary: Optional[weakref.ref] = None
        self._primary_ids: tuple[int, ...] = ()  # (id of the first optimizer,)
        self._secondary: "weakref.WeakKeyDictionary[Any, _Secondary]" = weakref.WeakKeyDictionary()
        self._n_optimizers = 0
        self._run_id: Optional[str] = None
        self._step = 0
        self._dist_resolved = False
        self._run_id_dist: Optional[str] = None
        self._log_here = True  # False on non-zero DDP ranks
        self._warned: set[str] = set()
        # losses since the last optimizer step: they belong to the next one that steps
        self._pending_loss: Any = None
        self._consumed_loss: Any = None  # the last step's losses, for optimizers stepping right after it
        self._consumed_by: tuple[int, ...] = ()  # ids of the optimizers that took it
        # training batches of the current loader, fetched and not yet trained on: (size, fetch start)
        self._fetch_iter = 0
        self._fetched: deque[tuple[int, float]] = deque(maxlen=_MAX_UNCONSUMED_BATCHES)
        # inside optimizer.step(closure): the closure's backward calls are the step's own
        self._closure_depth = 0  # > 0 while a wrapped closure runs
        self._closure_step = False  # the step in progress was given a closure
        self._closure_value: Any = None
        self.step_calls = 0  # every optimizer step seen (GradScaler.step compares it)
        self._scaled_out: Optional[weakref.ref] = None  # GradScaler.scale(loss) -> loss
        self._scaled_loss: Any = None

    def configure(self, knobs: TorchKnobs) -> None:
        """New knobs from a second ``autolog()`` call."""
        self.log_every_n_steps = max(1, int(knobs.log_every_n_steps))
        self.log_grad_norm = bool(knobs.log_grad_norm)
        # the first optimizer's common step is queued as a StepRow (_post_step); not with grad norms
        self._fast_allowed = not self.log_grad_norm
        self._fast_step = self._fast_allowed  # False for the one step after an AMP skip, too
        self.optimizer_names = tuple(getattr(knobs, "optimizer_names", None) or ())

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
        scaler = _grad_scaler_class()
        if scaler is not None:
            patches.patch(scaler, "scale", _make_scale(scaler.scale))
            patches.patch(scaler, "step", _make_scaler_step(scaler.step))
        patches.add_hook(register_optimizer_step_pre_hook(self._pre_step))
        patches.add_hook(register_optimizer_step_post_hook(self._post_step))
        global _active
        _active = self

    def _deactivate(self) -> None:
        global _active
        if _active is self:
            _active = None

    # -- hooks (training thread: never raise, never sync) -----------------------------
    def on_batch(self, iterator: Any, batch: Any, fetch_start: float) -> None:
        if self.suspended or not torch.is_grad_enabled():
            return
        try:
            first = batch[0] if (type(batch) is tuple or type(batch) is list) and batch else None
            if type(first) is torch.Tensor and first.dim() > 0:  # the usual (inputs, targets), batch_size inlined
                n = first.shape[0]
            else:
                n = batch_size(batch)
            if not n:
                return
            if id(iterator) != self._fetch_iter:  # another loader: its batches were not trained on
                self._fetch_iter = id(iterator)
                self._fetched.clear()
            self._fetched.append((n, fetch_start))
        except Exception:
            self._warn_once("dataloader")

    def on_backward(self, loss: torch.Tensor) -> None:
        if self._closure_depth:  # inside optimizer.step(closure): the closure's value is the loss
            return
        if loss.dim() != 0 or not loss.is_floating_point():
            return
        scaled = self._scaled_out() if self._scaled_out is not None else None
        if scaled is not None and scaled is loss:  # scaler.scale(loss).backward(): the unscaled loss
            loss = self._scaled_loss
            self._scaled_out, self._scaled_loss = None, None
        # a CPU loss is read now (``.item()``, no device to wait for; cheaper than detach and
        # tensor sums); an accelerator's stays a tensor, read by the flusher in one transfer
        loss = loss.item() if loss.is_cpu else loss.detach()
        pending = self._pending_loss
        self._pending_loss = loss if pending is None else pending + loss
        if self._fetched:  # this backward trained on the oldest batch fetched (loaders may prefetch)
            n, fetch_start = self._fetched.popleft()
            step = self.step_metrics
            step.samples += n
            step.mark_start(fetch_start)

    def on_scaled(self, loss: Any, scaled: Any) -> None:
        if isinstance(scaled, torch.Tensor) and scaled is not loss and isinstance(loss, torch.Tensor):
            self._scaled_out, self._scaled_loss = weakref.ref(scaled), loss

    def on_skipped_step(self, optimizer: torch.optim.Optimizer) -> None:
        """GradScaler skipped ``optimizer.step()`` (inf/nan grads): that step never happened."""
        self._pending_loss = None
        if self._is_primary(optimizer):
            self.step_metrics.drop(_perf_counter())
            self._fast_step = False  # the next step reports train/amp_skipped_steps

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> Any:
        if self.suspended or (not self.log_grad_norm and len(args) < 2 and not kwargs):
            return None  # the common step(): no closure, no grad norm
        try:
            if self.log_grad_norm:
                params = (p for g in optimizer.param_groups for p in g["params"])
                if self._is_primary(optimizer):
                    self.step_metrics.add_grad_norm(params)
                else:
                    grads = [p.grad for p in params if p.grad is not None]
                    if grads:
                        self._secondary_state(optimizer).grad_norm = _total_norm(grads)
            # args[0] is the optimizer itself (torch's step wrapper passes (self, *args))
            closure = kwargs.get("closure") if kwargs else (args[1] if len(args) > 1 else None)
            if callable(closure):
                self._closure_step = True
                return self._wrap_closure(closure, args, kwargs)
        except Exception:
            self._warn_once("optimizer_pre_step")
        return None

    def _wrap_closure(self, closure: Callable[[], Any], args: Any, kwargs: Any) -> Any:
        self._closure_value = None
        first = [True]

        def recording_closure() -> Any:
            self._closure_depth += 1
            try:
                value = closure()
            finally:
                self._closure_depth -= 1
            if first[0]:
                first[0] = False
                if isinstance(value, torch.Tensor):  # only a scalar loss is a loss
                    value = value.detach() if value.dim() == 0 and value.is_floating_point() else None
                self._closure_value = value
            return value

        if kwargs and "closure" in kwargs:
            return args, {**kwargs, "closure": recording_closure}
        return (args[0], recording_closure, *args[2:]), kwargs

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.step_calls += 1
        if self.suspended:
            return
        try:
            pending = self._pending_loss
            primary = self._primary
            if self._fast_step and primary is not None and primary() is optimizer and not self._closure_step:
                # The common step of the first optimizer -- the same run as the last step, one
                # param group with a float lr, no closure, grad norm or AMP skip to report --
                # is queued as its facts (a StepRow); the flusher derives the metrics.
                groups = optimizer.param_groups
                lr = groups[0].get("lr") if len(groups) == 1 else None
                run_id = self._run_id
                if type(lr) is float and run_id is not None and self._resolve_run() == run_id:
                    now = _perf_counter()
                    self._pending_loss = None
                    self._consumed_loss, self._consumed_by = pending, self._primary_ids
                    step = self._step = self._step + 1
                    self.runs.set_current_step(step)
                    acc = self.step_metrics
                    if self._log_here and not step % self.log_every_n_steps:
                        self.runs.log_step_row((run_id, step, _time_ns() // 1_000_000, pending, lr,
                                                acc.last_step_end, acc.step_start, now, acc.samples))
                    acc.samples, acc.step_start, acc.last_step_end = 0, None, now
                    return
            self._log_step(optimizer)
        except Exception:
            self._warn_once("optimizer_step")

    def _log_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Any other step: a new run, another optimizer, a closure, grad norms, AMP skips,
        several param groups or a tensor lr (the metrics built here, as a dict)."""
        loss = self._take_loss(optimizer)
        run_id = self._resolve_run()
        now = _perf_counter()  # after the (one-off) run start, not charged to a step
        if run_id != self._run_id:  # a new run: steps count from 1 again
            self._new_run(run_id)
        if self._is_primary(optimizer):
            self._log_primary(optimizer, run_id, loss, now)
        else:
            self._log_secondary(optimizer, run_id, loss)

    def _take_loss(self, optimizer: torch.optim.Optimizer) -> Any:
        """The loss ``optimizer``'s step consumed: its closure's value, or the losses
        backwarded since the last step (shared with optimizers stepping right after)."""
        if self._closure_step:
            self._closure_step = False
            value, self._closure_value = self._closure_value, None
            self._pending_loss = None
            self._consumed_loss, self._consumed_by = None, ()
            return value
        if self._pending_loss is not None:
            loss, self._pending_loss = self._pending_loss, None
            self._consumed_loss, self._consumed_by = loss, (id(optimizer),)
            return loss
        if self._consumed_loss is not None and id(optimizer) not in self._consumed_by:
            self._consumed_by += (id(optimizer),)
            return self._consumed_loss
        return None

    def _new_run(self, run_id: Optional[str]) -> None:
        self._run_id, self._step = run_id, 0
        self.step_metrics.last_step_end = None
        self.step_metrics.step_start = None
        self.step_metrics.skipped, self.step_metrics.skipped_dirty = 0, False
        for state in list(self._secondary.values()):
            state.step = 0

    def _log_primary(self, optimizer: torch.optim.Optimizer, run_id: Optional[str], loss: Any, now: float) -> None:
        self._step += 1
        self.runs.set_current_step(self._step)
        step = self.step_metrics
        if type(loss) is float or isinstance(loss, torch.Tensor):  # read or detached already (on_backward / the closure)
            step.loss_sum = loss if step.loss_sum is None else step.loss_sum + loss
        elif loss is not None:
            step.add_loss(loss)
        metrics = step.collect(optimizer.param_groups, now)
        self._fast_step = self._fast_allowed
        if run_id is None or not self._log_here or self._step % self.log_every_n_steps:
            return
        self.runs.log_step(run_id, metrics, self._step, read=step.floats_only)

    def _log_secondary(self, optimizer: torch.optim.Optimizer, run_id: Optional[str], loss: Any) -> None:
        state = self._secondary_state(optimizer)
        state.step += 1
        grad_norm, state.grad_norm = state.grad_norm, None
        if run_id is None or not self._log_here or state.step % self.log_every_n_steps:
            return
        metrics = lr_metrics(optimizer.param_groups, state.prefix)
        if isinstance(loss, (torch.Tensor, float, int)) and not isinstance(loss, bool):
            metrics[f"{state.prefix}loss"] = loss
        if grad_norm is not None:
            metrics[f"{state.prefix}grad_norm"] = grad_norm
        self.runs.log_step(run_id, metrics, state.step)

    # -- helpers -----------------------------------------------------------------------
    def _is_primary(self, optimizer: torch.optim.Optimizer) -> bool:
        primary = self._primary() if self._primary is not None else None
        if primary is None:
            self._primary = weakref.ref(optimizer)
            self._primary_ids = (id(optimizer),)
            self._n_optimizers = max(self._n_optimizers, 1)
            return True
        return primary is optimizer

    def _secondary_state(self, optimizer: torch.optim.Optimizer) -> _Secondary:
        state = self._secondary.get(optimizer)
        if state is None:
            index = self._n_optimizers
            self._n_optimizers += 1
            if index < len(self.optimizer_names):
                name = self.optimizer_names[index]
            else:
                name = f"{type(optimizer).__name__.lower()}_{index}"
            state = _Secondary(_NAME_CHARS.sub("_", name))
            self._secondary[optimizer] = state
        return state

    def _resolve_run(self) -> Optional[str]:
        if not distributed.maybe_distributed() or not distributed.is_distributed():
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


def _grad_scaler_class() -> Any:
    try:
        from torch.amp.grad_scaler import GradScaler
    except Exception:  # torch without torch.amp.GradScaler: no AMP handling
        return None
    return GradScaler


def _make_backward(original: Any) -> Any:
    @functools.wraps(original)
    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        hooks = _active
        if hooks is not None and not hooks.suspended:
            try:
                hooks.on_backward(self)
            except Exception:
                hooks._warn_once("backward")
        return original(self, *args, **kwargs)

    return backward


def _make_next(original: Any) -> Any:
    @functools.wraps(original)
    def __next__(self: Any) -> Any:
        start = _perf_counter()
        batch = original(self)
        hooks = _active
        if hooks is not None:
            hooks.on_batch(self, batch, start)
        return batch

    return __next__


def _make_scale(original: Any) -> Any:
    @functools.wraps(original)
    def scale(self: Any, outputs: Any) -> Any:
        scaled = original(self, outputs)
        hooks = _active
        if hooks is not None and not hooks.suspended:
            try:
                hooks.on_scaled(outputs, scaled)
            except Exception:
                hooks._warn_once("grad_scaler")
        return scaled

    return scale


def _make_scaler_step(original: Any) -> Any:
    @functools.wraps(original)
    def step(self: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        hooks = _active
        if hooks is None or hooks.suspended:
            return original(self, optimizer, *args, **kwargs)
        before = hooks.step_calls
        result = original(self, optimizer, *args, **kwargs)
        try:
            if hooks.step_calls == before and self.is_enabled():  # the scaler skipped optimizer.step()
                hooks.on_skipped_step(optimizer)
        except Exception:
            hooks._warn_once("grad_scaler")
        return result

    return step

"""Lightning: the same training metrics as plain PyTorch, through a callback that
autolog adds to every Trainer, with MLflow ``step`` = ``trainer.global_step``.

- One explicit patch per Lightning package (``lightning.pytorch`` and the older
  ``pytorch_lightning``): ``Trainer.__init__`` is wrapped to append
  :class:`MonitorCallback`, through the autolog :class:`PatchRegistry`, so
  ``autolog(disable=True)`` restores the original (and callbacks already added go quiet).
- While a fit runs, the plain-PyTorch hooks are suspended, so nothing is logged twice.
- The loss is ``outputs["loss"]`` of ``on_train_batch_end``, summed over the micro-batches
  of one optimizer step: Lightning divides it by ``accumulate_grad_batches``, so the sum is
  the mean micro-batch loss, the same scale as a plain loop's ``(loss / n).backward()``.
- The step time runs from ``on_train_batch_start`` of the step's first micro-batch to the
  step's end: validation and checkpointing between steps are not charged to it.
- The run: the active MLflow run (which is ``mlflow.pytorch.autolog``'s run when that
  is on), else the run of an ``MLFlowLogger`` on the same tracking URI, else one we
  start at fit start and end at fit end (FAILED when the fit raises).
- A key the module logs itself (``self.log`` / ``self.log_dict``, seen through a wrap of
  ``LightningModule.log``) is never written by autolog when MLflow receives the module's
  keys (``mlflow.pytorch.autolog`` or an ``MLFlowLogger``): the user's key keeps only the
  user's values, from the first step.
- DDP: rank 0 logs; the run id reaches every rank with ``trainer.strategy.broadcast``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Optional, Protocol

from mlflow_monitor.integrations.torch import StepMetrics, active_hooks, batch_size
from mlflow_monitor.mlflow_compat import autologging_is_disabled
from mlflow_monitor.patching import PatchRegistry
from mlflow_monitor.runs import MonitoredRuns

_logger = logging.getLogger(__name__)


class LightningKnobs(Protocol):
    """The autolog knobs the callback reads (live: a second ``autolog()`` changes them)."""

    @property
    def log_every_n_steps(self) -> int: ...
    @property
    def log_grad_norm(self) -> bool: ...


class LightningAutolog:
    """Wraps ``Trainer.__init__`` of one Lightning package to add the callback."""

    def __init__(self, runs: MonitoredRuns, knobs: LightningKnobs, package: str) -> None:
        self.runs = runs
        self.knobs = knobs
        self.package = package  # "lightning" or "pytorch_lightning"
        self.enabled = False  # True from install() to the undo; callbacks log only then
        self.callback_class: Optional[type] = None
        self.user_keys: set[str] = set()  # names passed to LightningModule.log in this process

    def configure(self, knobs: LightningKnobs) -> None:
        """New knobs from a second ``autolog()`` call."""
        self.knobs = knobs

    def install(self, patches: PatchRegistry) -> None:
        pl = importlib.import_module("lightning.pytorch" if self.package == "lightning" else self.package)
        callback_class = _callback_class(pl)
        original = pl.Trainer.__init__
        owner = self

        @functools.wraps(original)
        def __init__(trainer: Any, *args: Any, **kwargs: Any) -> None:
            original(trainer, *args, **kwargs)
            try:
                if not any(isinstance(cb, callback_class) for cb in trainer.callbacks):
                    trainer.callbacks.append(callback_class(owner))
            except Exception:
                _logger.warning("mlflow-monitor: could not add the monitor callback", exc_info=True)

        original_log = pl.LightningModule.log

        @functools.wraps(original_log)
        def log(module: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(name, str) and name not in owner.user_keys:
                owner.user_keys.add(name)
            return original_log(module, name, *args, **kwargs)

        patches.add_undo(self._deactivate)
        patches.patch(pl.Trainer, "__init__", __init__)
        patches.patch(pl.LightningModule, "log", log)
        self.callback_class = callback_class
        self.enabled = True

    def _deactivate(self) -> None:
        self.enabled = False


_CALLBACK_CLASSES: dict[str, type] = {}


def _callback_class(pl: Any) -> type:
    """The callback class for this Lightning package (each checks its own Callback type)."""
    cls = _CALLBACK_CLASSES.get(pl.__name__)
    if cls is None:
        cls = type("MonitorCallback", (_MonitorCallbackMixin, pl.Callback), {"__module__": __name__})
        _CALLBACK_CLASSES[pl.__name__] = cls
    return cls


class _MonitorCallbackMixin:
    """Logs ``train/*`` per optimizer step (Lightning's ``global_step``) on rank 0."""

    def __init__(self, owner: LightningAutolog) -> None:
        super().__init__()
        self._owner = owner
        self._active = False
        self._run_id: Optional[str] = None
        self._owned = False
        self._logger_run = False  # the run of an MLFlowLogger: we finish it at fit end
        self._acc = StepMetrics()
        self._last_step = 0
        self._skip_logged_keys = False
        self._suspended: Any = None

    # -- fit start / end ----------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._active = self._owner.enabled
        if not self._active:
            return
        try:
            torch_part = active_hooks()
            if torch_part is not None:
                torch_part.suspended += 1
                self._suspended = torch_part
            self._acc = StepMetrics()
            self._last_step = trainer.global_step
            run_id = self._resolve_run(trainer) if trainer.global_rank == 0 else None
            if trainer.world_size > 1:
                run_id = trainer.strategy.broadcast(run_id, src=0)
            self._run_id = run_id
            runs = self._owner.runs
            if run_id and not runs.is_monitored(run_id):
                runs.begin(
                    run_id,
                    owned=self._owned,
                    publish_summary=trainer.global_rank == 0,
                    sample_system=trainer.local_rank == 0,
                    node_id=f"node{trainer.node_rank}" if trainer.world_size > 1 else None,
                )
            self._skip_logged_keys = _mlflow_logs_callback_metrics(trainer)
        except Exception:
            _logger.warning("mlflow-monitor: Lightning fit start hook failed; not logging this fit", exc_info=True)
            self._run_id = None

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._end_fit(trainer, "FINISHED", None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._end_fit(trainer, "FAILED", exception)

    # -- per batch / step ------------------------------------------------------------------
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._run_id is not None:
            self._acc.mark_start(time.perf_counter())

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._run_id is None or trainer.global_rank != 0 or not self._owner.knobs.log_grad_norm:
            return
        try:
            self._acc.add_grad_norm(pl_module.parameters())
        except Exception:
            _logger.debug("mlflow-monitor: grad norm failed", exc_info=True)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._run_id is None or trainer.global_rank != 0:
            return
        try:
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            self._acc.add_loss(loss)  # already divided by accumulate_grad_batches: the sum is the mean
            n = batch_size(batch)
            if n:
                self._acc.samples += n
            step = trainer.global_step
            runs = self._owner.runs
            runs.set_current_step(step)
            if step <= self._last_step:  # still accumulating gradients
                return
            self._last_step = step
            groups = [g for opt in trainer.optimizers for g in opt.param_groups]
            metrics = self._acc.collect(groups, time.perf_counter())
            if step % self._owner.knobs.log_every_n_steps:
                return
            if self._skip_logged_keys:
                user = self._owner.user_keys
                logged = trainer.callback_metrics
                metrics = {k: v for k, v in metrics.items() if k not in user and k not in logged}
            runs.log_step(self._run_id, metrics, step)
        except Exception:
            _logger.debug("mlflow-monitor: Lightning batch hook failed", exc_info=True)

    # -- helpers ----------------------------------------------------------------------------
    def _resolve_run(self, trainer: Any) -> Optional[str]:
        import mlflow

        self._owned = self._logger_run = False
        active = mlflow.active_run()
        if active is not None:
            return active.info.run_id
        logger_run = _mlflow_logger_run(trainer)
        if logger_run is not None:
            self._logger_run = True
            return logger_run
        self._owned = True
        return self._owner.runs.start_owned_run()

    def _end_fit(self, trainer: Any, status: str, error: Optional[BaseException]) -> None:
        if not self._active:
            return
        self._active = False
        if self._suspended is not None:
            self._suspended.suspended = max(0, self._suspended.suspended - 1)
            self._suspended = None
        run_id, self._run_id = self._run_id, None
        if run_id is None or trainer.global_rank != 0:
            return
        try:
            import mlflow

            runs = self._owner.runs
            if error is not None:
                runs.mark_failed(run_id, error)
            if self._owned:
                active = mlflow.active_run()
                if active is not None and active.info.run_id == run_id:
                    mlflow.end_run(status)  # our end_run wrapper finishes the run
                else:
                    runs.finish(run_id, status)
            elif self._logger_run:
                runs.finish(run_id, status)
        except Exception:
            _logger.warning("mlflow-monitor: Lightning fit end hook failed", exc_info=True)


def _mlflow_logs_callback_metrics(trainer: Any) -> bool:
    """True when MLflow logs ``trainer.callback_metrics`` itself for this fit."""
    try:
        if not autologging_is_disabled("pytorch"):
            return True
    except Exception:
        pass
    return any(type(lg).__name__ == "MLFlowLogger" for lg in getattr(trainer, "loggers", []) or [])


def _mlflow_logger_run(trainer: Any) -> Optional[str]:
    """The run id of an ``MLFlowLogger`` that writes to our tracking URI, if any."""
    import mlflow

    for lg in getattr(trainer, "loggers", []) or []:
        if type(lg).__name__ != "MLFlowLogger":
            continue
        uri = getattr(lg, "_tracking_uri", None)  # Lightning's MLFlowLogger keeps it private; None: assume ours
        if uri is None or uri == mlflow.get_tracking_uri():
            try:
                return lg.run_id
            except Exception:
                return None
    return None

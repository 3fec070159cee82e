"""``mlflow_monitor.autolog()``: one call to monitor PyTorch, Lightning, DDP and
scikit-learn training, and its exact undo (``disable=True``).

This module is a composition root: it builds the run lifecycle
(:class:`~mlflow_monitor.runs.MonitoredRuns`) and one
:class:`~mlflow_monitor.patching.PatchRegistry`, hands both to each framework part when
its framework is imported, and turns the health rules and the notifiers on. Nothing
below it imports it. Every patch and hook goes through the registry, and
``disable=True`` undoes them all in one call (:meth:`PatchRegistry.undo_all`):

=============================  ===================================================
where                          what
=============================  ===================================================
``mlflow.end_run``             wrapped: finish the monitored run (runs.py)
``torch.Tensor.backward``      wrapped: the loss (integrations/torch.py)
DataLoader iterator            ``__next__`` wrapped: batch size (integrations/torch.py)
torch optimizer step hooks     official global pre/post hooks (integrations/torch.py)
``Trainer.__init__``           wrapped: add the monitor callback (integrations/lightning.py)
MLflow autologging events      official ``AutologgingEventLogger`` (integrations/sklearn.py)
``mlflow.sklearn.autolog``     enabled (unless ``sklearn=False`` or already on), then
                               disabled again on ``disable=True`` if we enabled it
=============================  ===================================================

The framework parts are installed when their module is imported (MLflow's post-import
hooks), so ``autolog()`` never imports torch, Lightning or scikit-learn itself. Those
import hooks cannot be removed from MLflow's table; they do nothing while autolog is off.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from mlflow_monitor import events
from mlflow_monitor.mlflow_compat import register_post_import_hook
from mlflow_monitor.patching import PatchRegistry
from mlflow_monitor.runs import MonitoredRuns, RunOptions

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AutologConfig:
    """The knobs of :func:`autolog` (see its docstring)."""

    log_every_n_steps: int = 1
    log_grad_norm: bool = False
    optimizer_names: Optional[tuple[str, ...]] = None
    system_metrics: bool = True
    system_metrics_interval_s: float = 1.0
    health: bool = True
    notify: Union[bool, dict, None] = True
    log_reference: bool = True
    sklearn: bool = True
    log_models: bool = True
    silent: bool = False


class _Autolog:
    """One enabled autolog: its knobs, its runs, its patches and the parts installed."""

    def __init__(self, config: AutologConfig) -> None:
        self.config = config
        self.patches = PatchRegistry()
        self.runs = MonitoredRuns(self._run_options(config))
        self.torch: Any = None
        self.lightning: dict[str, Any] = {}
        self.sklearn: Any = None
        self.health_enabled = False
        self.notify_enabled = False

    @staticmethod
    def _run_options(config: AutologConfig) -> RunOptions:
        return RunOptions(
            system_metrics=config.system_metrics,
            system_metrics_interval_s=config.system_metrics_interval_s,
            silent=config.silent,
        )

    def enable(self) -> None:
        self.runs.install(self.patches)
        for module_name, hook in _IMPORT_HOOKS.items():
            register_post_import_hook(hook, module_name)
        self._apply_services()

    def update(self, config: AutologConfig) -> None:
        """A second autolog() call: same patches, new knobs."""
        self.config = config
        self.runs.options = self._run_options(config)
        for part in (self.torch, self.sklearn, *self.lightning.values()):
            if part is not None:
                part.configure(config)
        self._apply_services()

    def disable(self) -> None:
        self.patches.undo_all()  # every patch and hook of every part, newest first
        self.torch, self.sklearn = None, None
        self.lightning.clear()
        if self.health_enabled:
            from mlflow_monitor import health

            _guarded(health.disable)
            self.health_enabled = False
        if self.notify_enabled:
            _guarded(events.disable_notifiers)
            self.notify_enabled = False

    # -- framework parts (called from the post-import hooks) ---------------------------
    def install_torch(self) -> None:
        if self.torch is None:
            from mlflow_monitor.integrations.torch import TorchAutolog

            self.torch = TorchAutolog(self.runs, self.config)
            self.torch.install(self.patches)

    def install_lightning(self, package: str) -> None:
        if package not in self.lightning:
            from mlflow_monitor.integrations.lightning import LightningAutolog

            self.lightning[package] = LightningAutolog(self.runs, self.config, package)
            self.lightning[package].install(self.patches)

    def install_sklearn(self) -> None:
        if self.sklearn is None and self.config.sklearn:
            from mlflow_monitor.integrations.sklearn import SklearnAutolog

            self.sklearn = SklearnAutolog(self.runs, self.config)
            self.sklearn.install(self.patches)

    # -- health rules and notifications --------------------------------------------------
    def _apply_services(self) -> None:
        from mlflow_monitor import health

        cfg = self.config
        if cfg.health and not self.health_enabled:
            self.health_enabled = _guarded(health.enable)
        elif not cfg.health and self.health_enabled:
            _guarded(health.disable)
            self.health_enabled = False
        if cfg.notify and not self.notify_enabled:
            # enable_notifiers never raises; a notifier without settings logs one line
            events.enable_notifiers(cfg.notify if isinstance(cfg.notify, dict) else None)
            self.notify_enabled = True
        elif not cfg.notify and self.notify_enabled:
            events.disable_notifiers()
            self.notify_enabled = False


_state: Optional[_Autolog] = None

# -- knob validation ----------------------------------------------------------------------
MIN_SYSTEM_METRICS_INTERVAL_S = 0.1  # faster sampling costs a visible share of a core
MAX_SYSTEM_METRICS_INTERVAL_S = 86_400.0

#: What each knob allows, as the error message says it.
KNOB_RULES: dict[str, str] = {
    "log_every_n_steps": "an int >= 1",
    "log_grad_norm": "True or False",
    "optimizer_names": "None or a list of distinct non-empty names without '/'",
    "system_metrics": "True or False",
    "system_metrics_interval_s": (f"a number of seconds from {MIN_SYSTEM_METRICS_INTERVAL_S:g} to "
                                  f"{MAX_SYSTEM_METRICS_INTERVAL_S:g}"),
    "health": "True or False",
    "notify": "True, False, None or a dict of notifier settings with str keys",
    "log_reference": "True or False",
    "sklearn": "True or False",
    "log_models": "True or False",
    "disable": "True or False",
    "silent": "True or False",
}


def _knob_error(kind: type, name: str, value: Any) -> Exception:
    return kind(f"autolog({name}=...): got {value!r:.80} ({type(value).__name__}); {name} must be {KNOB_RULES[name]}")


def _check_bool(name: str, value: Any) -> bool:
    if type(value) is not bool:  # 'no', 0, None and numpy bools are refused: say what you mean
        raise _knob_error(TypeError, name, value)
    return value


def validated_config(**knobs: Any) -> AutologConfig:
    """An :class:`AutologConfig` from ``autolog()``'s knobs, or TypeError/ValueError naming the bad one.

    Nothing is changed when a knob is refused: this runs before any state is touched.
    """
    unknown = set(knobs) - {f.name for f in dataclasses.fields(AutologConfig)}
    if unknown:
        raise TypeError(f"autolog(): unknown knob(s) {sorted(unknown)}; known: {sorted(KNOB_RULES)}")
    n = knobs.get("log_every_n_steps", 1)
    if type(n) is not int:
        raise _knob_error(TypeError, "log_every_n_steps", n)
    if n < 1:
        raise _knob_error(ValueError, "log_every_n_steps", n)
    interval = knobs.get("system_metrics_interval_s", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise _knob_error(TypeError, "system_metrics_interval_s", interval)
    if not MIN_SYSTEM_METRICS_INTERVAL_S <= interval <= MAX_SYSTEM_METRICS_INTERVAL_S:  # also refuses nan
        raise _knob_error(ValueError, "system_metrics_interval_s", interval)
    notify = knobs.get("notify", True)
    if not (notify is None or type(notify) is bool or isinstance(notify, dict)):
        raise _knob_error(TypeError, "notify", notify)
    if isinstance(notify, dict) and not all(isinstance(k, str) for k in notify):
        raise _knob_error(ValueError, "notify", notify)
    names = knobs.get("optimizer_names")
    if names is not None:
        if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
            raise _knob_error(TypeError, "optimizer_names", names)
        if not all(isinstance(n, str) and n and "/" not in n for n in names) or len(set(names)) != len(names):
            raise _knob_error(ValueError, "optimizer_names", names)
    values = dict(knobs)
    if names is not None:
        values["optimizer_names"] = tuple(names)
    for name, value in knobs.items():
        if KNOB_RULES.get(name) == "True or False":
            _check_bool(name, value)
    values["system_metrics_interval_s"] = float(interval)
    return AutologConfig(**values)



def autolog(
    *,
    log_every_n_steps: int = 1,
    log_grad_norm: bool = False,
    optimizer_names: Optional[Sequence[str]] = None,
    system_metrics: bool = True,
    system_metrics_interval_s: float = 1.0,
    health: bool = True,
    notify: Union[bool, dict, None] = True,
    log_reference: bool = True,
    sklearn: bool = True,
    log_models: bool = True,
    disable: bool = False,
    silent: bool = False,
) -> None:
    """Monitor every training run: PyTorch loops, Lightning, DDP and scikit-learn.

    Args:
        log_every_n_steps: log the training metrics of every n-th optimizer step.
        log_grad_norm: also log ``train/grad_norm``, the global L2 norm of the gradients.
        optimizer_names: names of the optimizers, in the order they first step; the first
            one logs ``train/loss``, ``train/lr``, ..., the others ``train/<name>/loss`` and
            ``train/<name>/lr`` (default name: ``<class>_<k>``, e.g. ``adam_1``).
        system_metrics: sample CPU, memory, disk, network and GPU into ``system/*``.
        system_metrics_interval_s: seconds between two system samples.
        health: run the training-health rules (NaN loss, divergence, ...).
        notify: send run summaries and health alerts to Slack: True uses the env vars
            (``SLACK_BOT_TOKEN``/``SLACK_WEBHOOK_URL``...), a dict is the Slack config,
            False/None turns it off.
        log_reference: on ``fit(X, y)`` with a pandas DataFrame ``X``, log the data as
            the run's reference for the promotion gate.
        sklearn: enable ``mlflow.sklearn.autolog`` (unless it is already on) and add
            system stats and the reference to its runs.
        log_models: passed to ``mlflow.sklearn.autolog``.
        disable: undo every patch and hook this function installed.
        silent: no info logs from autolog itself.

    Calling it again changes the knobs; it never installs anything twice. A knob of the
    wrong type or value raises ``TypeError``/``ValueError`` naming the knob, the value and
    what is allowed, and nothing changes (see :data:`KNOB_RULES`).
    """
    global _state
    _check_bool("disable", disable)
    if disable:
        if _state is not None:
            state, _state = _state, None
            state.disable()
        return
    config = validated_config(
        log_every_n_steps=log_every_n_steps,
        log_grad_norm=log_grad_norm,
        optimizer_names=optimizer_names,
        system_metrics=system_metrics,
        system_metrics_interval_s=system_metrics_interval_s,
        health=health,
        notify=notify,
        log_reference=log_reference,
        sklearn=sklearn,
        log_models=log_models,
        silent=silent,
    )
    if _state is not None:
        _state.update(config)
        return
    _state = _Autolog(config)
    _state.enable()
    if not silent:
        _logger.info("mlflow-monitor: autolog enabled")


def current() -> Optional[_Autolog]:
    """The enabled autolog state, or None (for tests)."""
    return _state


# -- post-import hooks: module-level functions so MLflow de-duplicates them by name --------
def _on_torch_import(module: Any) -> None:
    if _state is not None:
        _installing(_state.install_torch)


def _on_lightning_import(module: Any) -> None:
    if _state is not None:
        _installing(_state.install_lightning, "lightning")


def _on_pytorch_lightning_import(module: Any) -> None:
    if _state is not None:
        _installing(_state.install_lightning, "pytorch_lightning")


def _on_sklearn_import(module: Any) -> None:
    if _state is not None:
        _installing(_state.install_sklearn)


_IMPORT_HOOKS: dict[str, Callable[[Any], None]] = {
    "torch": _on_torch_import,
    "lightning": _on_lightning_import,
    "pytorch_lightning": _on_pytorch_lightning_import,
    "sklearn": _on_sklearn_import,
}


def _installing(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        _logger.warning("mlflow-monitor: autolog could not hook %s", getattr(fn, "__name__", fn), exc_info=True)


def _guarded(fn: Callable[[], Any]) -> bool:
    """Call a service switch; True when it ran. Autolog never fails over health or notifiers."""
    try:
        fn()
        return True
    except Exception:
        _logger.warning("mlflow-monitor: %s failed", getattr(fn, "__qualname__", fn), exc_info=True)
        return False

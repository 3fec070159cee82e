"""PatchRegistry: every patch and hook autolog installs is recorded, and undo_all removes them all."""

from __future__ import annotations

import atexit
import types

import pytest

from helpers.training import quiet_autolog, train_loop
from mlflow_monitor.patching import PatchRegistry


class _Base:
    def inherited(self):
        return "base"


class _Owner(_Base):
    def own(self):
        return "own"

    @staticmethod
    def static():
        return "static"


class _Handle:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def remove(self):
        self.log.append(self.name)


def test_undo_all_restores_own_attributes_and_removes_patched_inherited_ones():
    raw_static = vars(_Owner)["static"]
    patches = PatchRegistry()
    assert patches.patch(_Owner, "own", lambda self: "patched").__name__ == "own"
    patches.patch(_Owner, "inherited", lambda self: "patched")
    patches.patch(_Owner, "static", staticmethod(lambda: "patched"))
    assert (_Owner().own(), _Owner().inherited(), _Owner.static()) == ("patched",) * 3

    patches.undo_all()
    assert (_Owner().own(), _Owner().inherited(), _Owner.static()) == ("own", "base", "static")
    assert "inherited" not in vars(_Owner)  # inherited again, not a copy of the base's
    assert vars(_Owner)["static"] is raw_static
    assert len(patches) == 0


def test_undo_all_runs_newest_first_and_a_failing_undo_does_not_stop_the_others(caplog):
    log: list[str] = []
    module = types.SimpleNamespace(fn="original")
    patches = PatchRegistry()
    patches.add_hook(_Handle(log, "first"))
    patches.patch(module, "fn", "patched")
    patches.add_undo(lambda: 1 / 0)
    patches.add_hook(_Handle(log, "last"))

    patches.undo_all()
    assert log == ["last", "first"]
    assert module.fn == "original"
    assert "could not undo" in caplog.text


def test_patching_the_same_attribute_twice_in_one_registry_raises():
    module = types.SimpleNamespace(fn="original")
    patches = PatchRegistry()
    patches.patch(module, "fn", "patched")
    assert patches.is_patched(module, "fn") and patches.original(module, "fn") == "original"
    with pytest.raises(ValueError, match=r"fn is already patched"):
        patches.patch(module, "fn", "again")
    patches.undo_all()
    assert module.fn == "original" and not patches.is_patched(module, "fn")


# -- autolog: nothing it installs escapes the registry ------------------------------------
def _owners() -> dict[str, object]:
    """Every namespace autolog patches (and a few it must not touch)."""
    import lightning.pytorch as pl
    import mlflow
    import mlflow.sklearn
    import torch
    from mlflow.tracking import fluent
    from mlflow.utils.autologging_utils import AutologgingEventLogger
    from torch.utils.data import dataloader

    return {
        "torch.Tensor": torch.Tensor,
        "DataLoaderIter": dataloader._BaseDataLoaderIter,
        "mlflow": mlflow,
        "fluent": fluent,
        "Trainer": pl.Trainer,
        "AutologgingEventLogger": AutologgingEventLogger,
        "torch.optim.Optimizer": torch.optim.Optimizer,
        "mlflow.sklearn": mlflow.sklearn,
    }


def _snapshot() -> dict[tuple[str, str], object]:
    """Each owner's own attributes (submodules left out: importing one sets an attribute)."""
    return {(label, name): value for label, owner in _owners().items() for name, value in vars(owner).items()
            if not isinstance(value, types.ModuleType)}


def _hook_counts() -> dict[str, int]:
    from torch.optim import optimizer as optim_mod

    from mlflow_monitor.metrics import get_pipeline

    return {
        "optimizer pre hooks": len(optim_mod._global_optimizer_pre_hooks),
        "optimizer post hooks": len(optim_mod._global_optimizer_post_hooks),
        "pipeline observers": len(get_pipeline()._observers),
    }


class _AtexitCalls:
    """Records atexit.register/unregister (the interpreter gives no list of its callbacks)."""

    def __init__(self, monkeypatch):
        self.registered: list = []
        register, unregister = atexit.register, atexit.unregister

        def _register(fn, *args, **kwargs):
            self.registered.append(fn)
            return register(fn, *args, **kwargs)

        def _unregister(fn):
            self.registered = [f for f in self.registered if f != fn]
            return unregister(fn)

        monkeypatch.setattr(atexit, "register", _register)
        monkeypatch.setattr(atexit, "unregister", _unregister)


def _enable_and_train() -> PatchRegistry:
    """autolog() with every part installed and used once; returns its registry."""
    import lightning.pytorch as pl
    import mlflow
    import sklearn  # noqa: F401  (the sklearn part installs on import)

    from mlflow_monitor import autologging

    quiet_autolog(log_models=False, health=True)
    with mlflow.start_run():  # a monitored run: its observer and atexit handler
        train_loop(steps=2)
        pl.Trainer(logger=False, enable_progress_bar=False)  # gets the callback
    return autologging.current().patches


def test_every_attribute_autolog_changes_is_in_its_patch_registry_and_disable_restores_all(monkeypatch):
    from mlflow.utils.autologging_utils import autologging_is_disabled

    import mlflow_monitor

    _enable_and_train()  # once first: libraries' own one-time set-up (atexit, caches) is done
    mlflow_monitor.autolog(disable=True)

    before, hooks_before = _snapshot(), _hook_counts()
    at_exit = _AtexitCalls(monkeypatch)
    patches = _enable_and_train()
    now = _snapshot()
    changed = {key for key in before.keys() | now.keys() if before.get(key) is not now.get(key)}
    owners = _owners()
    unrecorded = {key for key in changed if not patches.is_patched(owners[key[0]], key[1])}
    # the event logger is set through MLflow's set_logger(), recorded as an undo
    assert unrecorded <= {("AutologgingEventLogger", "_event_logger")}, unrecorded
    assert {("torch.Tensor", "backward"), ("DataLoaderIter", "__next__"), ("mlflow", "end_run"),
            ("fluent", "end_run"), ("Trainer", "__init__")} <= changed
    assert not autologging_is_disabled("sklearn")

    mlflow_monitor.autolog(disable=True)
    after = _snapshot()
    assert {k for k in before.keys() | after.keys() if before.get(k) is not after.get(k)} == set()
    assert _hook_counts() == hooks_before
    assert at_exit.registered == []
    assert autologging_is_disabled("sklearn")
    assert len(patches) == 0

"""One registry for every patch and hook autolog installs, and their one undo.

Each part of autolog (the ``mlflow.end_run`` wrap, the torch and Lightning patches,
the optimizer hooks, the scikit-learn composition) installs through a
:class:`PatchRegistry`; ``autolog(disable=True)`` calls :meth:`PatchRegistry.undo_all`,
which undoes everything in reverse order of installation. The idea is MLflow's
``safe_patch`` / ``revert_patches`` (``mlflow/utils/autologging_utils/safety.py``),
without its generality: no session tracking, no exception safety of the patched call
(each replacement is written to never raise on its own account).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Protocol

_logger = logging.getLogger(__name__)

_MISSING = object()  # the attribute was not in the owner's own namespace (inherited)


class Removable(Protocol):
    """A hook handle: ``torch.utils.hooks.RemovableHandle`` and the like."""

    def remove(self) -> None: ...


class _Undo:
    """A handle that runs ``fn`` when removed (for hooks that hand back no handle)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn

    def remove(self) -> None:
        self._fn()

    def __repr__(self) -> str:
        return f"undo {getattr(self._fn, '__qualname__', self._fn)}"


class _Patch:
    """One ``setattr(owner, name, replacement)``; removing it puts the original back."""

    def __init__(self, owner: Any, name: str, replacement: Any) -> None:
        self.owner, self.name = owner, name
        # the owner's own value (a class's raw staticmethod/classmethod object included),
        # so the undo restores exactly what was there, or deletes what was inherited
        self.saved = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else getattr(owner, name)
        self.original = getattr(owner, name)
        setattr(owner, name, replacement)

    def remove(self) -> None:
        if self.saved is _MISSING:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, self.saved)

    def __repr__(self) -> str:
        return f"patch {getattr(self.owner, '__name__', self.owner)}.{self.name}"


class _SignalHandler:
    """``signal.signal(signum, handler)``; removing it puts the previous handler back,
    unless someone installed another handler since (theirs stays: it may chain to ours)."""

    def __init__(self, signum: int, handler: Callable[..., Any]) -> None:
        import signal

        self.signum, self.handler = signum, handler
        self.previous = signal.signal(signum, handler)

    def remove(self) -> None:
        import signal

        if signal.getsignal(self.signum) is self.handler:
            signal.signal(self.signum, self.previous if self.previous is not None else signal.SIG_DFL)

    def __repr__(self) -> str:
        return f"signal handler {self.signum}"


class PatchRegistry:
    """The patches and hooks of one ``autolog()``; :meth:`undo_all` removes them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installed: list[Removable] = []
        self._patched: dict[tuple[int, str], _Patch] = {}

    def patch(self, owner: Any, name: str, replacement: Any) -> Any:
        """``setattr(owner, name, replacement)``, recorded; returns the original value.

        Patching the same ``owner.name`` twice in one registry is a bug and raises.
        """
        with self._lock:
            key = (id(owner), name)
            if key in self._patched:
                raise ValueError(f"{getattr(owner, '__name__', owner)}.{name} is already patched by this registry")
            entry = _Patch(owner, name, replacement)
            self._patched[key] = entry
            self._installed.append(entry)
            return entry.original

    def add_hook(self, handle: Removable) -> Removable:
        """Record a hook handle (anything with ``remove()``); removed by :meth:`undo_all`."""
        with self._lock:
            self._installed.append(handle)
        return handle

    def set_signal_handler(self, signum: int, handler: Callable[..., Any]) -> Any:
        """``signal.signal(signum, handler)``, recorded; returns the previous handler.

        Only from the main thread (``signal.signal`` raises ``ValueError`` elsewhere).
        :meth:`undo_all` restores the previous handler if ``handler`` is still installed.
        """
        with self._lock:
            entry = _SignalHandler(signum, handler)
            self._installed.append(entry)
            return entry.previous

    def add_undo(self, fn: Callable[[], Any]) -> None:
        """Record ``fn`` to call at :meth:`undo_all` (for hooks that return no handle)."""
        self.add_hook(_Undo(fn))

    def is_patched(self, owner: Any, name: str) -> bool:
        return (id(owner), name) in self._patched

    def original(self, owner: Any, name: str) -> Any:
        """What ``owner.name`` was before this registry patched it (KeyError if it did not)."""
        return self._patched[(id(owner), name)].original

    def __len__(self) -> int:
        return len(self._installed)

    def undo_all(self) -> None:
        """Remove every patch and hook, newest first. One failing undo never stops the others."""
        with self._lock:
            installed, self._installed = self._installed, []
            self._patched.clear()
        for handle in reversed(installed):
            try:
                handle.remove()
            except Exception:
                _logger.warning("mlflow-monitor: could not undo %r", handle, exc_info=True)

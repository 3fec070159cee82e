"""A pyfunc model that captures for other hosts (``mlflow models serve``, ``spark_udf``,
docker images): it wraps a registered version and records every ``predict`` call.

``wrap_model("models:/name/3")`` logs, in the active run, a pyfunc model whose artifact is
the wrapped model; wherever it is loaded, its ``predict`` calls the wrapped model and
records inputs, predictions and latency into windows of ``name`` version 3 (each process
also merges windows: several closers log identical values, see docs/production.md).

The ``PythonModel`` subclass is built on first use: MLflow warns about ``predict``'s type
hints whenever such a class is defined, and ``import mlflow_monitor.production`` should not.
"""

from __future__ import annotations

import atexit
import time
from typing import Any, Optional

__all__ = ["capturing_model_class", "wrap_model"]

_CLASS: Optional[type] = None


def capturing_model_class() -> type:
    """The ``mlflow.pyfunc.PythonModel`` that calls the wrapped model (artifact ``model``)
    and captures each call."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import mlflow
    import mlflow.pyfunc

    class CapturingPythonModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        def __init__(self, model_name: str, version: str, window: str = "5m", sample: float = 1.0) -> None:
            self.model_name = model_name
            self.version = str(version)
            self.window = window
            self.sample = sample
            self._inner: Any = None
            self._capture: Any = None

        def load_context(self, context: Any) -> None:
            from mlflow_monitor.production.capture import Capture

            self._inner = mlflow.pyfunc.load_model(context.artifacts["model"])
            self._capture = Capture(self.model_name, self.version, window=self.window, sample=self.sample)
            atexit.register(self._capture.close, 10.0)

        # no type hints: MLflow would read them as an input schema
        def predict(self, context, model_input, params=None):
            started = time.perf_counter()
            arrived = time.time()  # the call's window is the one it arrived in
            try:
                out = self._inner.predict(model_input, params=params)
            except Exception:
                try:
                    self._capture.record_error(500, (time.perf_counter() - started) * 1000.0, timestamp=arrived)
                except Exception:  # capture never changes an answer, nor the model's own error
                    pass
                raise
            try:
                self._capture.record(model_input, out, latency_ms=(time.perf_counter() - started) * 1000.0,
                                     timestamp=arrived)
            except Exception:  # capture never changes an answer
                pass
            return out

        def __getstate__(self) -> dict[str, Any]:
            state = dict(self.__dict__)
            state["_inner"] = state["_capture"] = None
            return state

    _CLASS = CapturingPythonModel
    return _CLASS


def wrap_model(model_uri: str, *, name: str = "monitored_model", window: str = "5m", sample: float = 1.0,
               client: Any = None) -> Any:
    """Log a capturing pyfunc wrapper of the version ``model_uri`` names in the active
    run; returns MLflow's ``ModelInfo``. Register that model and serve it anywhere."""
    import mlflow

    from mlflow_monitor.production.model_uri import resolve_model_version
    from mlflow_monitor.windows import parse_granularity

    parse_granularity(window)
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0.0 < float(sample) <= 1.0:
        raise ValueError(f"sample must be a fraction in (0, 1], got {sample!r}")
    model_name, version = resolve_model_version(model_uri, client or mlflow.MlflowClient())
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=capturing_model_class()(model_name, version, window, float(sample)),
        artifacts={"model": f"models:/{model_name}/{version}"},
    )

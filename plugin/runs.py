"""Run lifecycle for monitored runs: which run a point goes to, the system sampler of
each run, and the :class:`~mlflow_monitor.events.RunSummary` published when it ends.

- :meth:`MonitoredRuns.current_run_id` is called once per optimizer step by the
  integrations. It returns the active MLflow run, starting one (``owned``) when none is
  active -- like MLflow's autolog. A run we started is ended at process exit, FAILED when
  the process dies of an uncaught exception (``sys.last_value``), else FINISHED;
  Lightning ends it at fit end.
- A run is *monitored* from the first point on: one :class:`SystemSampler` (when
  ``system_metrics``), MLflow's own system-metrics monitor stopped for it.
- :meth:`MonitoredRuns.log_step` (a step's metrics) and :meth:`MonitoredRuns.log_step_row`
  (the torch hooks' common step, as its facts) are the one way training metrics reach
  the metrics pipeline (the integrations never talk to it): integration -> runs -> pipeline.
- ``mlflow.end_run`` is wrapped (:meth:`MonitoredRuns.install`, through the patch
  registry) so the sampler stops, the pipeline is flushed and the summary is published
  exactly when the run ends, with its status.
- SIGTERM (preemption, ``kill``, torchrun tearing a job down after a rank died): a
  handler, installed through the patch registry when the first run is monitored (main
  thread only), ends every monitored run ``KILLED`` with an end time and its summary,
  within :data:`SIGNAL_END_TIMEOUT_S` (on a helper thread, joined with that bound), then
  chains to the handler that was there before: the user's or the framework's own
  handler runs; with none (``SIG_DFL``) the process then dies of the signal as it would
  have. A signal that lands while a run is being ended (``end_run``, exit) waits for that
  end, then goes on. After it, no new run is started for this process.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional

import mlflow

from mlflow_monitor import distributed
from mlflow_monitor.metrics import api as metrics_api  # the one import of the pipeline here
from mlflow_monitor.metrics import get_pipeline
from mlflow_monitor.metrics import pipeline as pipelines
from mlflow_monitor.metrics.materialize import read_cpu_scalars
from mlflow_monitor.metrics.run_context import active_run_id
from mlflow_monitor.metrics.step_row import StepRow
from mlflow_monitor.mlflow_compat import end_run_owners
from mlflow_monitor.patching import PatchRegistry

_time_ns = time.time_ns

_logger = logging.getLogger(__name__)

END_RUN_FLUSH_TIMEOUT_S = 10.0
SIGNAL_END_TIMEOUT_S = 15.0  # ending every run at SIGTERM (flush + end), before the signal goes on


@dataclasses.dataclass
class RunOptions:
    """The autolog knobs the run lifecycle needs."""

    system_metrics: bool = True
    system_metrics_interval_s: float = 1.0
    silent: bool = False


@dataclasses.dataclass
class MonitoredRun:
    """One run we log into, and what we keep about it until it ends."""

    run_id: str
    owned: bool  # we started it, so we end it
    publish_summary: bool  # False on non-zero DDP ranks
    experiment_id: Optional[str] = None
    run_name: Optional[str] = None
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    sampler: Any = None
    peaks: dict[str, float] = dataclasses.field(default_factory=dict)
    failed_error: Optional[str] = None


# -- which way is better: the "best" value of the run summary -----------------------------
# A metric name is split into tokens on "/", "_", "-" and "."; its last tokens say what it
# measures ("val/f1_loss" is a loss, "train/samples_per_s" a rate). The names follow
# MLflow's own conventions: the builtin metrics of `mlflow.metrics` with their
# `greater_is_better` (mae, mse, rmse, mape, max_error lower; r2_score, precision_score,
# recall_score, f1_score higher) and the `training_*` keys of `mlflow.sklearn.autolog`
# (training_accuracy_score, training_log_loss, training_roc_auc, training_score, ...).
# A name that matches neither table gets no "best" (its final value is still reported).
_HIGHER_IS_BETTER = frozenset({
    ("accuracy",), ("acc",), ("f1",), ("auc",), ("roc", "auc"), ("precision",), ("recall",),
    ("r2",), ("score",), ("iou",), ("dice",), ("map",), ("bleu",), ("rouge",),
    ("throughput",), ("per", "s"), ("per", "sec"), ("per", "second"),
})
_LOWER_IS_BETTER = frozenset({
    ("loss",), ("error",), ("err",), ("mse",), ("rmse",), ("mae",), ("mape",), ("nll",),
    ("perplexity",), ("ppl",), ("wer",), ("cer",), ("time",), ("time", "s"), ("latency",),
})
_QUALIFIERS = frozenset({"epoch", "step", "batch"})  # Lightning's train_loss_epoch / _step
_TOKEN_SPLIT = re.compile(r"[/_.\-]+")


@functools.lru_cache(maxsize=4096)
def higher_is_better(key: str) -> Optional[bool]:
    """True/False when a higher/lower value of metric ``key`` is better; None when unknown."""
    tokens = [t for t in _TOKEN_SPLIT.split(key.lower()) if t]
    while len(tokens) > 1 and tokens[-1] in _QUALIFIERS:
        tokens.pop()
    for n in (2, 1):
        tail = tuple(tokens[-n:])
        if len(tail) < n:
            continue
        if tail in _HIGHER_IS_BETTER:
            return True
        if tail in _LOWER_IS_BETTER:
            return False
    return None


class _MetricStats:
    """Pipeline observer: last and best value of each non-system key of monitored runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, float]] = {}
        self._best: dict[str, dict[str, float]] = {}

    def watch(self, run_id: str) -> None:
        with self._lock:
            self._last.setdefault(run_id, {})
            self._best.setdefault(run_id, {})

    def __call__(self, points: list[Any]) -> None:  # mlflow_monitor.metrics.MetricPoint, a batch observer
        lasts, bests = self._last, self._best
        with self._lock:
            for run_id, key, value, _step, _ts in points:
                last = lasts.get(run_id)
                if last is None or key.startswith("system/"):
                    continue
                last[key] = value
                higher = higher_is_better(key)
                if higher is None or value != value:  # unknown direction, or NaN
                    continue
                best = bests[run_id]
                old = best.get(key)
                if old is None or (value > old if higher else value < old):
                    best[key] = value

    def pop(self, run_id: str) -> tuple[dict[str, float], dict[str, float]]:
        with self._lock:
            return self._last.pop(run_id, {}), self._best.pop(run_id, {})


class MonitoredRuns:
    """The runs this process monitors: which run a step goes to, their samplers, their end."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self._runs: dict[str, MonitoredRun] = {}
        self._lock = threading.RLock()
        self._stats = _MetricStats()
        self._observed_pipeline: Any = None
        self._remove_observer: Optional[Callable[[], None]] = None
        self._atexit_registered = False
        self._cached_active: Any = None
        self._cached_run_id: Optional[str] = None
        self._patches: Optional[PatchRegistry] = None
        self._signal_installed = False
        self._previous_sigterm: Any = None
        self._ending = 0  # > 0 while a run is being ended on the main thread (end_run, exit)
        self._pending_signal: Optional[int] = None
        self.terminated_by: Optional[str] = None  # the signal's name once one ended the runs

    # -- install ---------------------------------------------------------------------
    def install(self, patches: PatchRegistry) -> None:
        """Wrap ``mlflow.end_run`` (both names it is reachable by) to finish monitored runs.

        Undone by ``patches.undo_all()``, which also forgets every run (:meth:`shutdown`).
        """
        patches.add_undo(self.shutdown)  # undone last: after end_run is restored
        self._patches = patches
        owners = end_run_owners()
        wrapper = _end_run_wrapper(self, owners[0].end_run)
        for owner in owners:
            patches.patch(owner, "end_run", wrapper)

    # -- which run -------------------------------------------------------------------
    def current_run_id(self, start_if_missing: bool = True) -> Optional[str]:
        """The active run's id (monitored from now on); starts an owned run if none."""
        fast_id = active_run_id()  # ~0.1 us (MLflow's fluent stack, cached per ActiveRun)
        if fast_id is not None and fast_id == self._cached_run_id and fast_id in self._runs:
            return fast_id  # the per-step case: the same run as the last step, still monitored
        active = mlflow.active_run()
        if active is not None:
            if active is self._cached_active and self._cached_run_id in self._runs:
                return self._cached_run_id
            run_id = active.info.run_id
            if run_id not in self._runs:
                self.begin(run_id, owned=False, info=active.info)
            self._cached_active, self._cached_run_id = active, run_id
            return run_id
        if not start_if_missing or self.terminated_by is not None:
            return None
        return self.start_owned_run()

    def start_owned_run(self) -> str:
        """Start a fluent run because training began without one; we end it later."""
        run = mlflow.start_run()
        self.begin(run.info.run_id, owned=True, info=run.info)
        self._cached_active, self._cached_run_id = run, run.info.run_id
        if not self.options.silent:
            _logger.info(
                "mlflow-monitor: no active MLflow run; started run %s for this training "
                "(ended at exit)", run.info.run_id,
            )
        return run.info.run_id

    def shared_run_id(self) -> Optional[str]:
        """All ranks of a torch.distributed job, together: rank 0's run, monitored on each.

        Rank 0 resolves (or starts) the run; :func:`distributed.share_run_id` hands its id
        to every rank (one collective); only rank 0 publishes the summary.
        """
        is_zero = distributed.rank() == 0
        run_id = distributed.share_run_id(self.current_run_id() if is_zero else None)
        if run_id and not self.is_monitored(run_id):
            self.begin(run_id, owned=False, publish_summary=is_zero)
        return run_id

    # -- training metrics: the one path into the metrics pipeline ---------------------
    def log_step(self, run_id: str, metrics: dict[str, Any], step: int, read: bool = False) -> None:
        """Queue one optimizer step's metrics (numbers or 0-dim tensors) for ``run_id``;
        CPU tensors are read now (:func:`~mlflow_monitor.metrics.materialize.read_cpu_scalars`).
        ``read=True``: the caller built ``metrics`` afresh with numbers only, queued as it is."""
        if metrics:  # read_cpu_scalars builds a new dict: queued as it is (append_many would copy it again)
            get_pipeline().push((run_id, metrics if read else read_cpu_scalars(metrics), step, _time_ns() // 1_000_000))

    @staticmethod
    def log_step_row(row: StepRow) -> None:
        """Queue one optimizer step as the facts observed (a :data:`StepRow`: numbers or a
        0-dim accelerator tensor as the loss); the flusher derives its metrics."""
        (pipelines.instance or get_pipeline()).push(row)  # get_pipeline() inlined

    @staticmethod
    def set_current_step(step: int) -> None:
        """The optimizer step ``mlflow_monitor.log_metrics(step=None)`` logs at."""
        metrics_api.current_step = step

    # -- lifecycle -------------------------------------------------------------------
    def begin(
        self,
        run_id: str,
        owned: bool = False,
        info: Any = None,
        publish_summary: bool = True,
        sample_system: bool = True,
        node_id: Optional[str] = None,
    ) -> MonitoredRun:
        """Monitor ``run_id`` (idempotent): observer for the summary, system sampler."""
        if distributed.is_distributed():  # one sampler per node, under system/<node>/
            sample_system = sample_system and distributed.is_node_leader()
            node_id = node_id or distributed.node_id()
        with self._lock:
            existing = self._runs.get(run_id)
            if existing is not None:
                return existing
            pipeline = get_pipeline()
            self._observe(pipeline)
            self._register_atexit()
            try:
                pipeline.bind_run(run_id, mlflow.get_tracking_uri())
            except Exception:
                pass
            run = MonitoredRun(
                run_id=run_id,
                owned=owned,
                publish_summary=publish_summary,
                experiment_id=getattr(info, "experiment_id", None),
                run_name=getattr(info, "run_name", None),
            )
            self._stats.watch(run_id)
            if self.options.system_metrics and sample_system:
                run.sampler = self._start_sampler(run_id, pipeline, node_id)
            self._runs[run_id] = run
        self._install_signal_handler()
        return run

    def is_monitored(self, run_id: str) -> bool:
        return run_id in self._runs

    def get(self, run_id: str) -> Optional[MonitoredRun]:
        return self._runs.get(run_id)

    def mark_failed(self, run_id: str, error: BaseException) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            run.failed_error = f"{type(error).__name__}: {error}"

    def stop_sampling(self, run_id: str) -> dict[str, float]:
        """Stop the run's sampler (final sample taken); returns its peaks."""
        run = self._runs.get(run_id)
        if run is None or run.sampler is None:
            return {}
        sampler, run.sampler = run.sampler, None
        try:
            sampler.stop()
            peaks = sampler.peaks
        except Exception:
            _logger.debug("mlflow-monitor: stopping the sampler of run %s failed", run_id, exc_info=True)
            peaks = {}
        run.peaks.update(peaks)
        return peaks

    def finish(self, run_id: str, status: str = "FINISHED", flush_timeout: float = END_RUN_FLUSH_TIMEOUT_S) -> None:
        """The run ends: stop sampling, flush (bounded), publish its RunSummary."""
        run = self._runs.get(run_id)
        if run is None:
            return
        try:
            self.stop_sampling(run_id)
        finally:
            with self._lock:
                self._runs.pop(run_id, None)
                if self._cached_run_id == run_id:
                    self._cached_active, self._cached_run_id = None, None
        try:
            if not get_pipeline().flush(flush_timeout):
                _logger.warning(
                    "mlflow-monitor: metrics of run %s not all in the store yet at run end; "
                    "they stay in the spool and are replayed when the store is back", run_id,
                )
        except Exception:
            _logger.debug("mlflow-monitor: flush at run end failed", exc_info=True)
        last, best = self._stats.pop(run_id)
        if not run.publish_summary:
            return
        if run.failed_error and status == "FINISHED":
            status = "FAILED"
        from mlflow_monitor.events import RunSummary, publish

        publish(
            RunSummary(
                run_id=run_id,
                status=status,
                duration_s=time.monotonic() - run.started_at,
                experiment_id=run.experiment_id,
                run_name=run.run_name,
                final_metrics=last,
                best_metrics=best,
                system_peaks=dict(run.peaks),
                error=run.failed_error,
            )
        )

    # -- SIGTERM ---------------------------------------------------------------------
    def _install_signal_handler(self) -> None:
        if self._signal_installed or self._patches is None:
            return
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works only there; the next run begun there installs it
        self._signal_installed = True
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
                return  # the process ignores SIGTERM: it does not end the process, nor the runs
            self._previous_sigterm = self._patches.set_signal_handler(signal.SIGTERM, self._on_signal)
        except (ValueError, OSError):
            _logger.debug("mlflow-monitor: could not install the SIGTERM handler", exc_info=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM: end every monitored run KILLED (bounded), then chain."""
        if self._ending:  # it interrupted a run's end: let that end finish first
            self._pending_signal = signum
            return
        try:
            self.terminate(signal.Signals(signum).name)
        except Exception:
            _logger.warning("mlflow-monitor: ending the runs at signal %s failed", signum, exc_info=True)
        self._chain(signum, frame)

    def _chain(self, signum: int, frame: Any) -> None:
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
        elif previous is not signal.SIG_IGN:  # SIG_DFL (or unknown): die of the signal as before
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def terminate(self, reason: str, status: str = "KILLED") -> None:
        """End every monitored run ``status`` now, within :data:`SIGNAL_END_TIMEOUT_S`.

        Runs whose summary this process publishes (rank 0, or no DDP) get ``status`` and an
        end time; on other ranks only their points are flushed and their sampler stopped.
        """
        self.terminated_by = reason
        runs = list(self._runs.values())
        if not runs:
            return
        for run in runs:
            run.failed_error = run.failed_error or f"terminated by {reason}"
        self._ending += 1
        try:
            ended: list[str] = []
            worker = threading.Thread(target=self._end_runs, args=(runs, status, ended),
                                      name="mlflow-monitor-terminate", daemon=True)
            worker.start()
            worker.join(SIGNAL_END_TIMEOUT_S)
            if worker.is_alive():
                _logger.warning("mlflow-monitor: runs not all ended within %.0f s of %s", SIGNAL_END_TIMEOUT_S, reason)
            active = mlflow.active_run()
            if active is not None and active.info.run_id in ended and callable(self._previous_sigterm):
                # the process may go on (a handler chains): take the ended run off MLflow's stack
                mlflow.end_run(status)
        finally:
            self._ending -= 1

    def _end_runs(self, runs: list[MonitoredRun], status: str, ended: list[str]) -> None:
        for run in runs:
            try:
                self.finish(run.run_id, status, flush_timeout=SIGNAL_END_TIMEOUT_S * 0.6)
                if run.publish_summary:
                    mlflow.MlflowClient().set_terminated(run.run_id, status)
                    ended.append(run.run_id)
            except Exception:
                _logger.warning("mlflow-monitor: could not end run %s", run.run_id, exc_info=True)

    def begin_ending(self) -> None:
        """A run's end starts on this thread: a SIGTERM now waits for :meth:`end_ending`."""
        if threading.current_thread() is threading.main_thread():
            self._ending += 1

    def end_ending(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._ending -= 1
            self._ending_done()

    def _ending_done(self) -> None:
        """After a run's end that a signal interrupted: the signal goes on now."""
        if not self._ending and self._pending_signal is not None:
            signum, self._pending_signal = self._pending_signal, None
            self._on_signal(signum, None)

    def end_owned_runs(self, status: Optional[str] = None) -> None:
        """End the runs we started (at exit): FAILED if the process dies of an exception."""
        if status is None:
            status = "FAILED" if getattr(sys, "last_value", None) is not None else "FINISHED"
        for run_id, run in list(self._runs.items()):
            if not run.owned:
                continue
            active = mlflow.active_run()
            if active is not None and active.info.run_id == run_id:
                mlflow.end_run(status)  # goes through our end_run wrapper -> finish()
            else:
                self.finish(run_id, status)
                try:
                    mlflow.MlflowClient().set_terminated(run_id, status)
                except Exception:
                    _logger.debug("mlflow-monitor: could not end run %s", run_id, exc_info=True)

    def shutdown(self) -> None:
        """autolog(disable=True): stop every sampler and forget the runs (no summaries)."""
        for run_id in list(self._runs):
            self.stop_sampling(run_id)
        self._runs.clear()
        self._cached_active, self._cached_run_id = None, None
        if self._remove_observer is not None:
            self._remove_observer()
            self._remove_observer = None
        self._observed_pipeline = None
        if self._atexit_registered:
            atexit.unregister(self._at_exit)
            self._atexit_registered = False

    # -- internals -------------------------------------------------------------------
    def _observe(self, pipeline: Any) -> None:
        if self._observed_pipeline is pipeline:
            return
        if self._remove_observer is not None:
            self._remove_observer()
        self._remove_observer = pipeline.add_observer(self._stats, batch=True)
        self._observed_pipeline = pipeline

    def _register_atexit(self) -> None:
        # after the pipeline module registered its own close-at-exit, so ours runs first
        if not self._atexit_registered:
            atexit.register(self._at_exit)
            self._atexit_registered = True

    def _at_exit(self) -> None:
        self._ending += 1
        try:
            self.end_owned_runs()
            for run_id in list(self._runs):
                self.finish(run_id, "FAILED" if getattr(sys, "last_value", None) is not None else "FINISHED")
        except Exception:
            _logger.debug("mlflow-monitor: ending runs at exit failed", exc_info=True)
        finally:
            self._ending -= 1
        self._ending_done()

    def _start_sampler(self, run_id: str, pipeline: Any, node_id: Optional[str]) -> Any:
        try:
            from mlflow_monitor.system.mlflow_system_metrics import stop_mlflow_system_metrics
            from mlflow_monitor.system.sampler import SystemSampler

            stop_mlflow_system_metrics(run_id)
            return SystemSampler(
                run_id,
                interval_s=self.options.system_metrics_interval_s,
                sink=pipeline,
                node_id=node_id,
            ).start()
        except Exception:
            _logger.warning("mlflow-monitor: system metrics off for run %s", run_id, exc_info=True)
            return None


def _end_run_wrapper(runs: MonitoredRuns, original: Callable[..., Any]) -> Callable[..., Any]:
    """``mlflow.end_run`` that first finishes the active run if it is monitored."""

    @functools.wraps(original)
    def end_run(status: str = "FINISHED") -> Any:
        runs.begin_ending()
        try:
            try:
                active = mlflow.active_run()
                if active is not None and runs.is_monitored(active.info.run_id):
                    runs.finish(active.info.run_id, status)
            except Exception:
                _logger.debug("mlflow-monitor: finishing the run at end_run failed", exc_info=True)
            return original(status)
        finally:
            runs.end_ending()

    return end_run

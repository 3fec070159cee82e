"""``WindowCloser``: merges the delivered partials of each window and logs the window.

Rule (also in ``docs/production.md``): a window is merged once ``grace_s`` has passed
after its end. Its value is the merge of every partial under
``partials/<day>/<window_id>/``; partials are named ``<worker_id>__<seq>``, so a
re-delivered partial replaces itself and is never counted twice, and each worker's
late rows arrive as a new ``seq``. When the set of partials changes (a late one), the
window is merged again from all its partials: revision ``r`` (0 for the first merge)
logs, at the window's step and at ``timestamp = end + r`` ms, only the metrics whose
value changed since revision ``r - 1``, so consecutive points of a step differ and its
newest point is the current value. ``summary.json`` records the partials and the
revision each merge used; two closers merging the same set from the same previous
summary log identical points (idempotent in SQL stores, which keep one row per
identical metric).

Each merge also stores ``rows.parquet`` beside the summary: the union of its partials'
row samples. Once a window's late check is over, its partials (those the stored summary
lists) are deleted through the run's artifact repository, best effort. Before it writes
a re-merge, a closer re-reads the stored summary and backs off when another closer has
stored a merge of partials it did not see (it would write an older window over a newer
one whose late partials may be pruned already). A partial that
arrives after that merges onto the stored window (summary state plus ``rows.parquet``).

With the evidence key set (``MLFLOW_MONITOR_EVIDENCE_KEY``, see
:mod:`mlflow_monitor.windows.signing`), a partial is merged only when the signatures of
both its files hold; the others are left out, listed in the summary's ``rejected`` and
warned about once. The merged ``rows.parquet`` and ``summary.json`` are signed in turn,
and a stored window whose signatures fail is never used as a merge base.
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pandas as pd

from mlflow_monitor import mlflow_compat
from mlflow_monitor.production import layout
from mlflow_monitor.production.alerts import safe_check_window
from mlflow_monitor.production.window_drift import drift_summary, window_drift
from mlflow_monitor.production.window_metrics import window_metrics
from mlflow_monitor.redaction import redact
from mlflow_monitor.retry import is_permanent
from mlflow_monitor.reference import ReferenceData, ReferenceNotFoundError, load_reference
from mlflow_monitor.windows import WindowKey, WindowState, format_granularity, parse_granularity
from mlflow_monitor.windows.sample import ID_COLUMN
from mlflow_monitor.windows.signing import ENV_KEY, EvidenceKey, evidence_key, log_signed_artifact, signature_path

__all__ = ["DEFAULT_SAMPLE_RETENTION", "SUMMARY_FORMAT", "CloserThread", "WindowCloser", "default_grace_s",
           "same_value", "summary_revision"]

_logger = logging.getLogger(__name__)

SUMMARY_FORMAT = "mlflow_monitor.prod_window/1"
DEFAULT_SAMPLE_RETENTION = 96  # merged window samples kept (slots, overwritten in turn)
MAX_BATCH = 1000  # metrics per log_batch


class UnverifiedWindow(Exception):
    """A stored window this closer must not build on: its summary's signature fails, or it
    was merged with the evidence key and this closer has none."""


def default_grace_s(granularity_s: int) -> float:
    """How long after a window's end the closer waits for partials: 2 s .. 60 s."""
    return float(max(2.0, min(60.0, granularity_s * 0.5)))


def _parse_window_id(window_id: str, model_name: str, version: str) -> Optional[WindowKey]:
    import datetime as dt

    stamp, _, gran = window_id.partition("-")
    try:
        start = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        return WindowKey(model_name, version, int(start.timestamp()), parse_granularity(gran))
    except ValueError:
        return None


class WindowCloser:
    """Merge-and-log for one model version's monitoring run (one pass per :meth:`run_once`)."""

    def __init__(self, client: Any, run_id: Callable[[], str], model_name: str, version: str, *,
                 granularity_s: int, grace_s: Optional[float] = None, clock: Callable[[], float] = time.time,
                 late_s: Optional[float] = None, sample_retention: int = DEFAULT_SAMPLE_RETENTION,
                 prune: bool = True, key: Union[EvidenceKey, None, str] = "env") -> None:
        self._client = client
        # the evidence key ("env": from MLFLOW_MONITOR_EVIDENCE_KEY[_FILE]; a bad one raises here)
        self._key: Optional[EvidenceKey] = evidence_key() if key == "env" else key  # type: ignore[assignment]
        self.partials_rejected = 0
        self._warned_unverified: set[str] = set()
        self._run_id = run_id
        self.model_name = model_name
        self.version = str(version)
        self.granularity_s = granularity_s
        self.grace_s = default_grace_s(granularity_s) if grace_s is None else float(grace_s)
        self._clock = clock
        # how long a merged window is re-checked for late partials
        self.late_s = float(late_s) if late_s is not None else max(600.0, 10.0 * granularity_s)
        self.sample_retention = sample_retention
        self._merged: dict[str, frozenset[str]] = {}  # window_id -> partials merged (or rejected)
        self._rejected: dict[str, frozenset[str]] = {}  # window_id -> partials whose signatures failed
        self._logged: dict[str, tuple[int, dict[str, float]]] = {}  # window_id -> (revision, metrics)
        self._reference: Optional[ReferenceData] = None
        self._reference_note = ""
        self._reference_loaded = False
        self._hints: set[WindowKey] = set()  # windows this process delivered (any age)
        self.prune = prune  # delete merged partials once a window's late check is over
        self._pruned: set[str] = set()  # windows this process pruned (or tried to)
        self._can_prune = True  # False once the run's artifact store says it cannot delete
        self.partials_pruned = 0
        self.prune_failures = 0
        self._lock = threading.Lock()
        self.windows_logged = 0

    def hint(self, key: WindowKey) -> None:
        """A partial of ``key`` was delivered: look at it on the next pass, however old."""
        self._hints.add(key)

    # -- reference --------------------------------------------------------------------
    def reference(self) -> Optional[ReferenceData]:
        if not self._reference_loaded:
            mv = self._client.get_model_version(self.model_name, self.version)
            try:
                self._reference = load_reference(mv.run_id, self._client) if mv.run_id else None
                self._reference_note = "" if mv.run_id else "the version has no source run"
                if self._reference is not None:  # the tails precomputed when it was logged
                    from mlflow_monitor.gate.drift.calibration import adopt_logged_calibration

                    adopt_logged_calibration(self._reference)
            except ReferenceNotFoundError as exc:
                self._reference, self._reference_note = None, redact(str(exc))
            self._reference_loaded = True
        return self._reference

    # -- one pass -----------------------------------------------------------------------
    def run_once(self, *, force: bool = False) -> int:
        """Merge every window that is due (all of them with ``force``, ended or not) and new or
        changed; returns windows logged. Raises what the store raises (retry later)."""
        with self._lock:
            run_id = self._run_id()
            now = self._clock()
            # force: this process is stopping (or flushing); windows not yet ended are merged too
            grace = -math.inf if force else self.grace_s
            logged = 0
            hinted = {k for k in self._hints if now >= k.end + grace}
            days = sorted({_day(now), _day(now - 86_400)} | {k.day for k in hinted})
            for day in days:
                done = self._summarised(run_id, day)
                for entry in self._list(run_id, f"{layout.PARTIALS}/{day}"):
                    window_id = Path(entry.path).name
                    key = _parse_window_id(window_id, self.model_name, self.version)
                    if key is None or key.granularity_s != self.granularity_s or now < key.end + grace:
                        continue
                    recent = now < key.end + self.grace_s + self.late_s
                    if not recent and key not in hinted and (window_id in self._merged or window_id in done):
                        if self.prune:
                            self._prune(run_id, key)
                        continue
                    try:
                        if self._merge_if_changed(run_id, key, window_id in done):
                            logged += 1
                    except Exception as exc:
                        if not is_permanent(exc):
                            raise  # the store is down: the whole pass is retried later
                        # a window the store refuses (or an unreadable partial) must not stop
                        # the others: it is skipped until its partials change
                        self._merged[window_id] = self._failed_names(run_id, key)
                        _logger.warning("mlflow-monitor: window %s of '%s' version %s was not logged: %s",
                                        window_id, self.model_name, self.version, redact(str(exc)))
            self._hints -= hinted
            self.windows_logged += logged
            return logged

    def _list(self, run_id: str, path: str) -> list[Any]:
        try:
            return list(self._client.list_artifacts(run_id, path))
        except Exception as exc:
            if _not_found(exc):
                return []
            raise

    def _summarised(self, run_id: str, day: str) -> set[str]:
        return {Path(e.path).name for e in self._list(run_id, f"{layout.WINDOWS}/{day}")}

    def _merge_if_changed(self, run_id: str, key: WindowKey, has_summary: bool) -> bool:
        folder = layout.partial_folder(key)
        files = {Path(e.path).name for e in self._list(run_id, folder)}
        names = frozenset(n[:-5] for n in files if n.endswith(".json") and f"{n[:-5]}.parquet" in files)
        if not names:
            return False
        previous = self._merged.get(key.window_id)
        try:
            if previous is None and has_summary:
                previous = self._remote_summary(run_id, key)
        except UnverifiedWindow as exc:  # looked at again on the next pass (it may be a write in progress)
            self._warn_unverified(key, exc)
            return False
        if previous is not None and names <= previous:  # nothing new (pruned or re-delivered ones included)
            self._merged[key.window_id] = previous
            return False
        if previous is not None and not previous <= names:
            # some merged partials were pruned: the stored window stands for them
            base = self._stored_window(run_id, key)
            if base is None:
                _logger.warning("mlflow-monitor: window %s of '%s' version %s has late partials, but its merged "
                                "rows cannot be read; it is left as it was", key.window_id, self.model_name,
                                self.version)
                self._merged[key.window_id] = previous
                return False
            merged, rows, rejected = self._merge(run_id, key, folder, names - previous, base)
            used = names | previous
        else:
            merged, rows, rejected = self._merge(run_id, key, folder, names)
            used = names
        if previous is not None:
            try:
                stored = self._remote_summary(run_id, key, remember=False)
            except UnverifiedWindow as exc:
                self._warn_unverified(key, exc)
                for memo in (self._merged, self._rejected, self._logged):
                    memo.pop(key.window_id, None)
                return False
            if stored is not None and not stored <= used:
                # another closer stored a newer merge since this one listed the partials: never
                # write an older merge over it (its late partials may be pruned already); this
                # closer starts again from the stored summary on its next pass
                for memo in (self._merged, self._rejected, self._logged):
                    memo.pop(key.window_id, None)
                self._pruned.discard(key.window_id)
                _logger.info("mlflow-monitor: window %s of '%s' version %s was merged by another closer meanwhile; "
                             "not overwritten", key.window_id, self.model_name, self.version)
                return False
        self._merged[key.window_id] = used  # the rejected ones too: not read again until they change
        rejected = (rejected | self._rejected.get(key.window_id, frozenset())) & used
        self._rejected[key.window_id] = rejected
        if merged is None:  # every partial was rejected: nothing to log
            return False
        self._log(run_id, merged, sorted(used - rejected), self._logged.get(key.window_id), rows, sorted(rejected))
        self._pruned.discard(key.window_id)  # its new partials are pruned in turn
        return True

    def _stored_window(self, run_id: str, key: WindowKey) -> Optional[tuple[WindowState, pd.DataFrame]]:
        """The merged window as stored (``summary.json``'s state, ``rows.parquet``), or None."""
        folder = layout.summary_folder(key)
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
            try:
                raw = self._download(run_id, f"{folder}/summary.json", tmp)
                blob = self._download(run_id, f"{folder}/{layout.WINDOW_ROWS}", tmp)
                if self._rejects(run_id, f"{folder}/summary.json", raw, tmp) or \
                        self._rejects(run_id, f"{folder}/{layout.WINDOW_ROWS}", blob, tmp):
                    return None
                summary = json.loads(raw.decode("utf-8"))
                return WindowState.from_dict(summary["state"], blob), pd.read_parquet(io.BytesIO(blob))
            except Exception as exc:
                if _not_found(exc) or isinstance(exc, (KeyError, ValueError, TypeError)):
                    return None
                raise

    def _warn_unverified(self, key: WindowKey, exc: Exception) -> None:
        if key.window_id not in self._warned_unverified:
            self._warned_unverified.add(key.window_id)
            _logger.warning("mlflow-monitor: window %s of '%s' version %s is left as it is: %s", key.window_id,
                            self.model_name, self.version, exc)

    def _download(self, run_id: str, path: str, tmp: str) -> bytes:
        return Path(self._client.download_artifacts(run_id, path, tmp)).read_bytes()

    def _rejects(self, run_id: str, path: str, data: bytes, tmp: str) -> Optional[str]:
        """Why the stored ``path`` is not the monitor's (its signature fails), or None
        (it holds, or there is no evidence key)."""
        if self._key is None:
            return None
        try:
            sidecar: Optional[bytes] = self._download(run_id, signature_path(path), tmp)
        except Exception as exc:
            if not _not_found(exc):
                raise
            sidecar = None
        return self._key.verify(run_id, path, data, sidecar)

    # -- pruning --------------------------------------------------------------------------
    def _prune(self, run_id: str, key: WindowKey) -> None:
        """Delete the partials of a merged window whose late check is over, best effort:
        only those its stored summary lists, and only once ``rows.parquet`` holds their
        rows. A failure is logged once and never stops the pass."""
        if key.window_id in self._pruned or not self._can_prune:
            return
        self._pruned.add(key.window_id)
        try:
            # what is stored now, not what this process merged; rejected (unsigned) partials are kept
            merged = self._remote_summary(run_id, key, rejected=False)
            summary_files = {Path(e.path).name for e in self._list(run_id, layout.summary_folder(key))}
            if merged is None or layout.WINDOW_ROWS not in summary_files:
                return  # merged before rows.parquet existed: its partials stay
            if self._key is not None:  # the rows that outlive the partials must be the monitor's
                rows_path = f"{layout.summary_folder(key)}/{layout.WINDOW_ROWS}"
                with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
                    why = self._rejects(run_id, rows_path, self._download(run_id, rows_path, tmp), tmp)
                if why:
                    raise UnverifiedWindow(f"its stored {layout.WINDOW_ROWS} has {why}")
            folder = layout.partial_folder(key)
            present = {Path(e.path).name for e in self._list(run_id, folder)}
            for name in sorted(merged):
                # the state first: a partial without its .json is never merged again
                for suffix in (".json", ".parquet", ".json.sig", ".parquet.sig"):
                    if f"{name}{suffix}" in present:
                        if not mlflow_compat.delete_run_artifact(self._client, run_id, f"{folder}/{name}{suffix}"):
                            self._can_prune = False
                            _logger.info("mlflow-monitor: the artifact store of run %s cannot delete artifacts; "
                                         "merged partials are kept", run_id)
                            return
                        self.partials_pruned += suffix == ".json"
        except UnverifiedWindow as exc:  # its partials stay; looked at again on the next pass
            self._pruned.discard(key.window_id)
            self._warn_unverified(key, exc)
        except Exception as exc:
            self.prune_failures += 1
            if self.prune_failures == 1 or self.prune_failures % 100 == 0:
                _logger.warning("mlflow-monitor: could not prune the merged partials of window %s (%s); they are "
                                "kept", key.window_id, redact(f"{type(exc).__name__}: {exc}"))

    def _failed_names(self, run_id: str, key: WindowKey) -> frozenset[str]:
        try:
            files = {Path(e.path).name for e in self._list(run_id, layout.partial_folder(key))}
        except Exception:
            return frozenset()
        return frozenset(n[:-5] for n in files if n.endswith(".json"))

    def _remote_summary(self, run_id: str, key: WindowKey, rejected: bool = True,
                        remember: bool = True) -> Optional[frozenset[str]]:
        """The partials of the window's stored summary (None when there is none), with
        those it rejected unless ``rejected=False``; with ``remember``, its revision and
        metrics are kept for the next revision's comparison."""
        path = f"{layout.summary_folder(key)}/summary.json"
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
            try:
                raw = self._download(run_id, path, tmp)
                why = self._rejects(run_id, path, raw, tmp)
                if why:  # not the monitor's: never a base for merging, pruning or backing off
                    raise UnverifiedWindow(f"its stored summary.json has {why}")
                summary = json.loads(raw.decode("utf-8"))
                if not isinstance(summary, dict):
                    return None
                if self._key is None and summary.get("signed") is True:
                    raise UnverifiedWindow("it was merged with the evidence key, and this closer has none "
                                           f"(set {ENV_KEY} here too); an unsigned merge would hide its rows "
                                           "from the gate")
                names = frozenset(summary["partials"])
                refused = frozenset(summary.get("rejected") or ())
                if rejected:  # looked at already: not merged again until they change
                    names |= refused
            except UnverifiedWindow:
                raise
            except Exception as exc:
                if _not_found(exc) or isinstance(exc, (KeyError, ValueError, TypeError)):
                    return None
                raise
        if not remember:
            return names
        metrics = summary.get("metrics")
        if rejected:
            self._rejected[key.window_id] = refused
        self._logged[key.window_id] = (summary_revision(summary),
                                       dict(metrics) if isinstance(metrics, dict) else {})
        return names

    def _merge(self, run_id: str, key: WindowKey, folder: str, names: frozenset[str],
               base: Optional[tuple[WindowState, pd.DataFrame]] = None
               ) -> tuple[Optional[WindowState], pd.DataFrame, frozenset[str]]:
        """The merge of ``names`` (onto ``base``, the stored window, when given), the
        union of their row samples (one row per prediction id), and the partials left
        out because their signatures fail (``None`` state when nothing was merged)."""
        merged: Optional[WindowState] = base[0] if base is not None else None
        frames: list[pd.DataFrame] = [base[1]] if base is not None else []
        rejected: set[str] = set()
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
            local = Path(self._client.download_artifacts(run_id, folder, tmp))
            for name in sorted(names):
                raw = (local / f"{name}.json").read_bytes()
                blob = (local / f"{name}.parquet").read_bytes()
                why = self._unsigned(run_id, folder, local, f"{name}.json", raw) or \
                    self._unsigned(run_id, folder, local, f"{name}.parquet", blob)
                if why:
                    rejected.add(name)
                    self.partials_rejected += 1
                    _logger.warning("mlflow-monitor: partial %s/%s of run %s is not merged: %s (only partials the "
                                    "monitor signed with the evidence key are evidence)", folder, name, run_id, why)
                    continue
                data = json.loads(raw.decode("utf-8"))
                part = WindowState.from_dict(data["state"], blob)
                if part.key != key:
                    _logger.warning("mlflow-monitor: partial %s/%s belongs to another window; ignored", folder, name)
                    continue
                frames.append(pd.read_parquet(io.BytesIO(blob)))
                if merged is None:
                    merged = part
                else:
                    merged.merge(part)
        if merged is None or not frames:
            return None, pd.DataFrame({ID_COLUMN: pd.Series([], dtype=object)}), frozenset(rejected)
        rows = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
        return merged, rows.drop_duplicates(subset=ID_COLUMN, keep="first").reset_index(drop=True), frozenset(rejected)

    def _unsigned(self, run_id: str, folder: str, local: Path, name: str, data: bytes) -> Optional[str]:
        """Why the partial file ``name`` (downloaded into ``local``) is not signed by the
        evidence key, or None (signed, or no key)."""
        if self._key is None:
            return None
        sig = local / signature_path(name)
        return self._key.verify(run_id, f"{folder}/{name}", data, sig.read_bytes() if sig.exists() else None)

    def _log(self, run_id: str, state: WindowState, partials: list[str],
             previous: Optional[tuple[int, dict[str, float]]], rows: pd.DataFrame,
             rejected: Optional[list[str]] = None) -> None:
        from mlflow.entities import Metric

        drift, note = window_drift(state, self.reference())
        if self._reference is None and self._reference_note:
            note = self._reference_note
        metrics = window_metrics(state, drift)
        revision = 0 if previous is None else previous[0] + 1
        before = {} if previous is None else previous[1]
        ts_ms = state.key.end * 1000 + revision  # the newest revision is the latest point of its step
        entities = [Metric(k, v, ts_ms, state.key.index) for k, v in sorted(metrics.items())
                    if not same_value(before.get(k), v)]
        for i in range(0, len(entities), MAX_BATCH):
            self._client.log_batch(run_id, metrics=entities[i:i + MAX_BATCH])
        summary = {
            "format": SUMMARY_FORMAT,
            "model_name": self.model_name,
            "version": self.version,
            "window_id": state.key.window_id,
            "start": state.key.start,
            "end": state.key.end,
            "granularity": format_granularity(state.key.granularity_s),
            "partials": partials,
            "rejected": rejected or [],  # partials whose evidence signature failed: not merged
            "signed": self._key is not None,
            "workers": sorted({p.rpartition("__")[0] for p in partials}),
            "revision": revision > 0,
            "revision_number": revision,
            "merged_at": time.time(),
            "metrics": metrics,
            "drift": drift_summary(drift),
            "drift_note": note,
            "sample_artifact": layout.sample_path(state.key, self.sample_retention),
            "sample_rows": len(state.sample),
            "state": state.to_dict(),
        }
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
            path = Path(tmp) / "summary.json"
            path.write_text(json.dumps(summary, indent=1, allow_nan=True, default=str), encoding="utf-8")
            sample = Path(tmp) / Path(layout.sample_path(state.key, self.sample_retention)).name
            sample.write_bytes(state.sample.to_parquet())
            union = Path(tmp) / layout.WINDOW_ROWS
            rows.to_parquet(union, index=False)
            self._client.log_artifact(run_id, str(sample), layout.SAMPLES)
            # the rows before the summary: a summary's partials are pruned only when its rows are stored
            log_signed_artifact(self._client, run_id, str(union), layout.summary_folder(state.key), self._key)
            log_signed_artifact(self._client, run_id, str(path), layout.summary_folder(state.key), self._key)
        self._logged[state.key.window_id] = (revision, metrics)
        safe_check_window(self._client, run_id, summary, current=state.sample_inputs(),  # alerts.py: once
                          reference=self._reference)  # per window, never raises


def summary_revision(summary: dict[str, Any]) -> int:
    """A stored summary's revision number (summaries written before ``revision_number``
    existed say only ``revision: true``, read as 1)."""
    number = summary.get("revision_number")
    if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
        return number
    return 1 if summary.get("revision") is True else 0


def same_value(old: Optional[float], new: float) -> bool:
    """True when a metric logged before (``old``) has the value ``new`` (NaN equals NaN)."""
    if old is None:
        return False
    try:
        return bool(old == new or (math.isnan(float(old)) and math.isnan(float(new))))
    except (TypeError, ValueError):
        return False


def _day(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%d")


def _not_found(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", None)
    return code == "RESOURCE_DOES_NOT_EXIST" or isinstance(exc, (FileNotFoundError, NotADirectoryError))


class CloserThread:
    """Runs :meth:`WindowCloser.run_once` every ``interval_s`` on its own thread (the
    serving parent process uses it for all its workers)."""

    def __init__(self, closer: WindowCloser, interval_s: Optional[float] = None) -> None:
        self.closer = closer
        self.interval_s = interval_s if interval_s is not None else min(15.0, max(0.5, closer.granularity_s / 2))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-window-closer", daemon=True)
        self.failures = 0

    def start(self) -> "CloserThread":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.closer.run_once()
            except Exception as exc:
                self.failures += 1
                if self.failures == 1 or self.failures % 50 == 0:
                    _logger.warning("mlflow-monitor: merging windows of '%s' version %s failed (%s); will retry",
                                    self.closer.model_name, self.closer.version, redact(str(exc)))

    def stop(self, timeout_s: float = 10.0, final_pass: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        if final_pass:  # every worker has stopped: no grace left to wait for
            try:
                self.closer.run_once(force=True)
            except Exception as exc:
                _logger.warning("mlflow-monitor: last window merge failed (%s); the partials stay in the run",
                                redact(str(exc)))

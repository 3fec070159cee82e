"""Calibrated thresholds: each column's null distribution of its drift score at the
current sample's size, and the threshold a fresh null score exceeds with probability at
most ``alpha``: the ``k``-th largest of ``replicates`` null scores, ``k = floor(alpha *
(replicates + 1))`` (the permutation-test bound).

Two nulls, both "reference and current are samples of one distribution":

- **permutation** (exact in finite samples, computed per check): the pooled data split at
  random into a reference-sized and a current-sized part, scored as the real pair. For
  categorical columns (and numerical ones with few values) the current part is a
  multivariate hypergeometric draw from the pooled value counts, ``O(values)`` per
  replicate at any size; it also gives the null of the new-category share. For
  numerical columns it costs ``O(n + m)`` per replicate, so it is used up to
  :data:`PERMUTATION_ROWS` values.
- **bootstrap** (numerical columns above that, cached; computed from the reference alone
  by :mod:`mlflow_monitor.reference.null_tail`): the reference's own empirical
  distribution stands in for the common one; each replicate draws a reference-sized and
  a current-sized multinomial sample over the reference's atoms (its distinct values, or
  :data:`NUMERIC_ATOMS` equal-frequency quantiles) and scores them, ``O(atoms)`` per
  replicate. From :data:`GAUSSIAN_ROWS` values on both sides the counts take their normal
  limit, where the score is one Brownian-bridge functional times ``sqrt(1/n + 1/m)``: one
  *unit* tail per column serves every current size, scaled exactly. Below, current sizes
  are bucketed on a half-octave grid (:func:`size_bucket`), a bucket's threshold is
  computed at its lower edge and scaled to the actual size by the same law (never above
  the edge's threshold). Tails are kept in memory and in
  ``$MLFLOW_MONITOR_HOME/drift_calibration/`` keyed by the reference column's content
  hash, so a promotion pays the calibration once per reference (and small size bucket);
  :func:`~mlflow_monitor.reference.log_reference` precomputes them into the logged
  reference's ``calibration.json``, which :meth:`Calibrator.adopt` takes in, so the
  first check after logging pays nothing for those columns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from mlflow_monitor.paths import monitor_home, private_dir, write_private_text
from mlflow_monitor.reference import ColumnSample
from mlflow_monitor.reference.null_tail import (
    CALIBRATION_FORMAT,
    DISTRIBUTION_DRAW_COUNTS,
    DISTRIBUTION_TAIL,
    GAUSSIAN_ROWS,
    NUMERIC_ATOMS,
    PERMUTATION_ROWS,
    NullTail,
    gaussian_key,
    replicates_for,
    scale_to,
    simulate,
    simulate_unit,
    size_bucket,
    top_share,
    unit_seed,
    wasserstein_key,
)

__all__ = ["GAUSSIAN_ROWS", "NUMERIC_ATOMS", "PERMUTATION_ROWS", "Calibrator", "NullTail", "adopt_logged_calibration",
           "default_calibrator", "js_rows",
           "permutation_counts", "permutation_wasserstein", "refine_js_threshold", "replicates_for", "scale_to",
           "simulate", "size_bucket"]

_logger = logging.getLogger(__name__)
_FORMAT = CALIBRATION_FORMAT
_top = top_share


# -- exact permutation nulls (computed per check) ----------------------------------------
def permutation_wasserstein(ref: ColumnSample, cur: ColumnSample, *, replicates: int, seed: int) -> NullTail:
    """The permutation null of the normed Wasserstein score: the pooled values split at
    random into a reference-sized and a current-sized part, scored as the real pair
    (each part's own std). Exact in finite samples; ``O(replicates * (n + m))``."""
    n, m = ref.n, cur.n
    pooled = np.sort(np.concatenate((ref.sorted64(), cur.sorted64())))
    deltas = np.diff(pooled)
    total = n + m
    labels = np.repeat(np.array([0.0, 1.0]), [n, m])  # 1: in the current part
    k_over_n = np.arange(1, total) / n
    both = 1.0 / n + 1.0 / m
    sums = np.stack((pooled, pooled * pooled), axis=1)
    sum_all = sums.sum(axis=0)
    rng = np.random.default_rng(seed)
    dist = np.empty(replicates)
    chunk = max(1, 2_000_000 // total)
    for lo in range(0, replicates, chunk):
        b = min(chunk, replicates - lo)
        is_cur = rng.permuted(np.broadcast_to(labels, (b, total)), axis=1)
        cum = np.cumsum(is_cur[:, :-1], axis=1)  # current values up to each gap (exact in float64)
        cum *= both
        cum -= k_over_n  # F_current - F_reference at each gap
        np.abs(cum, out=cum)
        w = cum @ deltas
        ref_sums = sum_all - is_cur @ sums  # sum and sum of squares of the reference part
        mean = ref_sums[:, 0] / n
        std = np.sqrt(np.maximum(ref_sums[:, 1] / n - mean * mean, 0.0))
        dist[lo:lo + b] = w / np.maximum(std, 0.001)
    return NullTail(replicates, m, _top(dist, replicates))


def permutation_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, *, replicates: int, seed: int,
                       missing_index: Optional[int] = None) -> NullTail:
    """The permutation null of the Jensen-Shannon distance of two count vectors over the
    same values, and of the share of current rows whose value the reference part lacks
    (the missing-value atom at ``missing_index`` is not a value). The current part of a
    random split is a multivariate hypergeometric draw from the pooled counts: exact, and
    ``O(replicates * values)`` whatever the row counts."""
    pooled = (ref_counts + cur_counts).astype(np.int64)
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    rng = np.random.default_rng(seed)
    dist = np.empty(replicates)
    new = np.empty(replicates)
    lo = 0
    for c in _current_parts(rng, pooled, m, replicates):
        b = len(c)
        r = pooled - c
        dist[lo:lo + b] = js_rows(r / n, c / m)
        unseen = r == 0
        if missing_index is not None:
            unseen[:, missing_index] = False
        new[lo:lo + b] = (c * unseen).sum(axis=1) / m
        lo += b
    return NullTail(replicates, m, _top(dist, replicates), _top(new, replicates))


def _current_parts(rng: np.random.Generator, pooled: np.ndarray, m: int, replicates: int,
                   chunk: Optional[int] = None) -> Iterator[np.ndarray]:
    """The current parts (``m`` of the ``pooled`` counts) of ``replicates`` random splits, as
    float arrays of at most ``chunk`` replicates and 2M counts each (the stream does not
    depend on the chunks)."""
    chunk = max(1, min(chunk or replicates, 2_000_000 // max(1, len(pooled))))
    for lo in range(0, replicates, chunk):
        yield rng.multivariate_hypergeometric(pooled, m, size=min(chunk, replicates - lo),
                                              method="marginals").astype(np.float64)


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (natural log) of each row pair, as ``scipy.spatial.distance``."""
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
        kq = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=-1)
    return np.sqrt(np.maximum((kp + kq) / 2.0, 0.0))


def refine_js_threshold(ref_counts: np.ndarray, cur_counts: np.ndarray, score: float, alpha: float, *,
                        first: NullTail, seed: int, tail: int = DISTRIBUTION_TAIL) -> float:
    """The distribution threshold of a count-vector column at per-test ``alpha`` with
    ``R = max(first.replicates, ceil(tail / alpha))`` permutation replicates, ``k = floor(alpha
    x (R + 1))`` (at least ``tail``) of them beyond it, for a ``score`` that ``first`` (the
    check's own first draw, whose replicates count) may not settle. A column of many values
    gets fewer, ``R x values`` at most :data:`DISTRIBUTION_DRAW_COUNTS` (but never fewer than
    ``first``): more than 120 values at level 3e-4.

    With one replicate beyond it (``R = 1 / alpha``) the threshold is the largest of ``R``
    draws, whose own noise spreads it over the whole upper tail (0.025 to 0.037 for one
    3-level column at 5,000 / 5,000 rows, around a true quantile near 0.028), so scores
    beyond the true quantile are missed (docs/drift.md). More replicates fix that. Drawing
    them stops as soon as ``k`` of the replicates reach ``score`` (sequential Monte Carlo:
    the decision ``score > threshold`` is then the same as with all ``R``), so a score that
    ``k`` replicates of ``first`` reach costs no further draw. Returned: the ``k``-th largest
    of all ``R`` when they were drawn (exact); else ``max(first.threshold(alpha), k-th
    largest drawn)``, at least ``score``."""
    values = len(ref_counts)
    # at most DISTRIBUTION_DRAW_COUNTS multivariate-hypergeometric counts in all (a function of
    # the pooled counts only, which the permutation null holds fixed: still a valid test)
    total = max(first.replicates, min(math.ceil(tail / alpha), DISTRIBUTION_DRAW_COUNTS // max(1, values)))
    k = math.floor(alpha * (total + 1))
    coarse = first.threshold(alpha)
    top = first.distribution  # descending: the largest share of the first draw
    if total == first.replicates:
        return coarse
    exceed = int((top >= score).sum())
    pooled = (ref_counts + cur_counts).astype(np.int64)
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    rng = np.random.default_rng(seed)
    drawn = first.replicates
    for c in _current_parts(rng, pooled, m, total - drawn, chunk=first.replicates):  # stop between chunks
        more = js_rows((pooled - c) / n, c / m)
        exceed += int((more >= score).sum())
        top = -np.sort(-np.concatenate([top, more]))[:max(k, len(first.distribution))]
        drawn += len(c)
        if exceed >= k:
            break
    kth = float(top[k - 1])
    return kth if drawn == total else max(coarse, kth)


# -- the cache -----------------------------------------------------------------------------
class Calibrator:
    """Null tails per reference column and size bucket: computed once, kept in memory and in
    one JSON file per column content hash under ``cache_dir`` (default
    ``$MLFLOW_MONITOR_HOME/drift_calibration``; ``persist=False`` keeps them in memory only).
    An unreadable cache file is ignored and rewritten."""

    def __init__(self, cache_dir: Optional[Path] = None, *, persist: bool = True) -> None:
        self._dir = cache_dir
        self._persist = persist
        self._memory: dict[str, dict[str, dict]] = {}
        self._lock = threading.Lock()
        self.computed = 0  # tails simulated by this calibrator (not read from a cache)

    def _folder(self) -> Path:
        return private_dir(self._dir if self._dir is not None else monitor_home() / "drift_calibration")

    def _entries(self, digest: str) -> dict[str, dict]:
        with self._lock:
            if digest in self._memory:
                return self._memory[digest]
        entries: dict[str, dict] = {}
        if self._persist:
            path = self._folder() / f"{digest}.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("format") == _FORMAT:
                    entries = dict(data.get("entries", {}))
            except FileNotFoundError:
                pass
            except (OSError, ValueError):
                _logger.warning("mlflow-monitor: ignoring unreadable drift calibration cache %s", path)
        with self._lock:
            return self._memory.setdefault(digest, entries)

    def null_tail(self, ref: ColumnSample, *, current: int, replicates: int) -> NullTail:
        """The bootstrap null tail of a numerical ``ref`` for ``current`` values, from the
        cache (or a tail adopted from the logged reference, :meth:`adopt`) or simulated
        now with a seed from the column's content hash. From :data:`GAUSSIAN_ROWS` values
        on both sides it is the column's unit tail scaled to ``current`` exactly (its
        ``bucket`` is then ``current``); below, its size bucket's tail."""
        digest = ref.digest()
        bucket = size_bucket(current)
        unit = min(ref.n, bucket) >= GAUSSIAN_ROWS
        key = gaussian_key(ref.n) if unit else wasserstein_key(ref.n, bucket)
        entries = self._entries(digest)
        hit = entries.get(key)
        if hit is not None and int(hit.get("replicates", 0)) >= replicates:
            tail = NullTail.from_json(hit)
        else:
            tail = simulate_unit(ref, replicates=replicates, seed=unit_seed(ref)) if unit \
                else simulate(ref, current=bucket, replicates=replicates, seed=int(digest[:12], 16) ^ bucket)
            with self._lock:
                entries[key] = tail.to_json()
                self.computed += 1
                snapshot = json.dumps({"format": _FORMAT, "entries": entries})
            if self._persist:
                self._write(digest, snapshot)
        if unit:
            scale = math.sqrt(1.0 / ref.n + 1.0 / current)
            return dataclasses.replace(tail, bucket=current, distribution=tail.distribution * scale)
        return tail

    def adopt(self, calibration: Optional[dict]) -> int:
        """Take the tails of a logged reference's ``calibration.json`` (see
        :func:`mlflow_monitor.reference.null_tail.precalibrate`) into memory, keeping any
        entry already held with as many replicates. Malformed input is ignored (logged).
        Returns the number of tails taken."""
        if not isinstance(calibration, dict) or calibration.get("format") != _FORMAT:
            return 0
        columns = calibration.get("columns")
        if not isinstance(columns, dict):
            return 0
        taken = 0
        for digest, given in columns.items():
            if not isinstance(digest, str) or not isinstance(given, dict):
                continue
            entries = self._entries(digest)
            for key, entry in given.items():
                try:
                    NullTail.from_json(entry)
                except (KeyError, TypeError, ValueError, AttributeError):
                    _logger.warning("mlflow-monitor: ignoring a malformed logged calibration entry %r",
                                    str(key)[:100])
                    continue
                with self._lock:
                    held = entries.get(key)
                    if held is None or int(held.get("replicates", 0)) < int(entry["replicates"]):
                        entries[key] = entry
                        taken += 1
        return taken

    def _write(self, digest: str, text: str) -> None:
        folder = self._folder()
        tmp = folder / f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            write_private_text(tmp, text)
            os.replace(tmp, folder / f"{digest}.json")
        except OSError:
            _logger.warning("mlflow-monitor: could not write the drift calibration cache in %s", folder,
                            exc_info=True)


_DEFAULTS: dict[str, Calibrator] = {}
_DEFAULT_LOCK = threading.Lock()


def adopt_logged_calibration(reference: Any) -> int:
    """Take the tails precomputed when ``reference`` (a loaded ``ReferenceData``) was logged
    into the process-wide calibrator, so its first verdict draws no replicate (the gate's
    evaluation and the production closer call this after loading a reference)."""
    calibration = getattr(reference, "calibration", None)
    return default_calibrator().adopt(calibration) if calibration is not None else 0


def default_calibrator() -> Calibrator:
    """The process-wide calibrator of the current ``$MLFLOW_MONITOR_HOME``."""
    home = monitor_home()
    with _DEFAULT_LOCK:
        cal = _DEFAULTS.get(str(home))
        if cal is None:
            cal = _DEFAULTS[str(home)] = Calibrator(home / "drift_calibration")
        return cal

"""Calibrated thresholds: each column's null distribution of its drift score, from the
reference alone, at the current sample's size.

Under "no drift" the reference (``n`` rows) and the current data (``m`` rows) are two
samples of one distribution. The reference's own empirical distribution stands in for it
(the two-sample bootstrap): ``replicates`` times, draw a reference-sized and a
current-sized sample from the reference's atoms and score the pair exactly as the real
pair is scored. The ``k``-th largest replicate, ``k = floor(alpha * (replicates + 1))``, is
the threshold: a fresh null score exceeds it with probability at most ``alpha`` (the
permutation-test bound), whatever the distribution.

Atoms: a categorical column's values plus a "missing" atom (missing values are part of
its distribution); a numerical column's distinct values, or :data:`NUMERIC_ATOMS`
equal-frequency quantiles when it has more. Counts are drawn as multinomials, so a
replicate costs ``O(atoms)`` whatever ``n`` and ``m`` are.

Current sizes are bucketed on a half-octave grid (:func:`size_bucket`); a bucket's
threshold is computed at its lower edge and scaled to the actual size by the
``sqrt(1/n + 1/m)`` law that distance scores follow under the null (the result never
exceeds the edge's threshold, which is conservative for a larger sample's own noise).
Results are cached in memory and in ``$MLFLOW_MONITOR_HOME/drift_calibration/`` keyed by the
reference column's content hash, so a promotion pays the calibration once per reference
and size bucket.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from mlflow_monitor.paths import monitor_home, private_dir, write_private_text
from mlflow_monitor.reference import ColumnSample

__all__ = ["NUMERIC_ATOMS", "Calibrator", "NullTail", "default_calibrator", "replicates_for", "scale_to",
           "simulate", "size_bucket"]

_logger = logging.getLogger(__name__)

#: Quantile atoms for a numerical column with more distinct values than this.
NUMERIC_ATOMS = 512
#: Fewest bootstrap replicates drawn for any threshold.
MIN_REPLICATES = 1000
_FORMAT = "mlflow_monitor.drift_calibration/1"
_MISSING = object()  # the missing-value atom of a categorical column
_TAIL_SHARE = 0.1  # the largest 10% of replicates are kept: alphas up to 0.1 per test


def replicates_for(alpha: float) -> int:
    """Replicates needed for a per-test ``alpha``: at least one replicate in the tail."""
    return max(MIN_REPLICATES, math.ceil(1.0 / alpha))


def size_bucket(m: int) -> int:
    """The lower edge of ``m``'s size bucket: exact below 10, then a half-octave grid
    (10, 14, 20, 28, 40, 57, 80, 113, 160, ...)."""
    if m < 10:
        return max(1, int(m))
    i = math.floor(2 * math.log2(m / 10) + 1e-9)
    edge = int(round(10 * 2 ** (i / 2)))
    return edge if edge <= m else int(round(10 * 2 ** ((i - 1) / 2)))


@dataclasses.dataclass(frozen=True)
class NullTail:
    """The largest null replicates of one column at one size bucket, descending."""

    replicates: int
    bucket: int
    distribution: np.ndarray  # drift score
    new_category: Optional[np.ndarray] = None  # share of rows unseen in the reference (categorical)

    def threshold(self, alpha: float, tail: str = "distribution") -> float:
        """The ``floor(alpha * (replicates + 1))``-th largest replicate."""
        values = self.distribution if tail == "distribution" else self.new_category
        assert values is not None
        k = math.floor(alpha * (self.replicates + 1))
        if k < 1:
            raise ValueError(f"{self.replicates} replicates cannot resolve alpha {alpha!r}")
        return float(values[min(k, len(values)) - 1])

    def to_json(self) -> dict:
        return {"replicates": self.replicates, "bucket": self.bucket,
                "distribution": self.distribution.tolist(),
                "new_category": None if self.new_category is None else self.new_category.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "NullTail":
        new = d.get("new_category")
        return cls(int(d["replicates"]), int(d["bucket"]), np.asarray(d["distribution"], dtype=np.float64),
                   None if new is None else np.asarray(new, dtype=np.float64))


def scale_to(threshold: float, n: int, bucket: int, m: int) -> float:
    """A distance threshold computed at ``bucket`` current rows, scaled to ``m`` rows."""
    if m <= bucket:
        return threshold
    return threshold * math.sqrt((1.0 / n + 1.0 / m) / (1.0 / n + 1.0 / bucket))


# -- the null model ------------------------------------------------------------------------
def atoms(ref: ColumnSample, method: str, missing: int) -> tuple[np.ndarray, np.ndarray, Optional[int]]:
    """``(support, counts, missing_index)`` of a reference column.

    ``support`` is sorted numeric values for Wasserstein (quantile atoms beyond
    :data:`NUMERIC_ATOMS` distinct values); for Jensen-Shannon it is an index range and
    ``missing_index`` the position of the missing atom (categorical columns only).
    """
    if method == "wasserstein":
        v = ref.sorted64()
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        if len(starts) <= NUMERIC_ATOMS:
            counts = np.diff(np.r_[starts, len(v)])
            return v[starts], counts.astype(np.float64), None
        idx = ((np.arange(NUMERIC_ATOMS) + 0.5) * len(v) / NUMERIC_ATOMS).astype(np.int64)
        return v[idx], np.full(NUMERIC_ATOMS, len(v) / NUMERIC_ATOMS), None
    counts = list(ref.counts().values())
    miss_index = None
    if missing >= 0 and not ref.is_numeric:
        miss_index = len(counts)
        counts.append(missing)
    return np.arange(len(counts), dtype=np.float64), np.asarray(counts, dtype=np.float64), miss_index


def _multinomial(rng: np.random.Generator, n: int, p: np.ndarray, size: int) -> np.ndarray:
    return rng.multinomial(n, p, size=size).astype(np.float64)


def simulate(ref: ColumnSample, *, method: str, missing: int, current: int, replicates: int,
             std: float, seed: int) -> NullTail:
    """Draw the null replicates of one column at ``current`` rows (see the module docs).

    ``missing`` is the reference's missing-value count (``-1``: not part of the score, for
    numerical columns); ``current`` counts the rows the score sees (with missing values
    for a categorical column, without for a numerical one).
    """
    support, counts, miss_index = atoms(ref, method, missing)
    n_ref = int(round(counts.sum()))
    p = counts / counts.sum()
    rng = np.random.default_rng(seed)
    keep = max(1, math.ceil(_TAIL_SHARE * (replicates + 1)))
    dist = np.empty(replicates)
    new = np.empty(replicates) if miss_index is not None else None
    chunk = max(1, 2_000_000 // max(1, len(p)))  # ~16 MB per side per chunk
    for lo in range(0, replicates, chunk):
        b = min(chunk, replicates - lo)
        r = _multinomial(rng, n_ref, p, b)
        c = _multinomial(rng, current, p, b)
        if method == "wasserstein":
            fr = np.cumsum(r, axis=1)[:, :-1] / n_ref
            fc = np.cumsum(c, axis=1)[:, :-1] / current
            dist[lo:lo + b] = (np.abs(fr - fc) @ np.diff(support)) / max(std, 0.001)
        else:
            dist[lo:lo + b] = js_rows(r / n_ref, c / current)
            if new is not None:
                unseen = r == 0
                unseen[:, miss_index] = False  # a missing value is not a new category
                new[lo:lo + b] = (c * unseen).sum(axis=1) / current
    dist = -np.sort(-dist)[:keep]
    if new is not None:
        new = -np.sort(-new)[:keep]
    return NullTail(replicates, current, dist, new)


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (natural log) of each row pair, as ``scipy.spatial.distance``."""
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
        kq = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=-1)
    return np.sqrt(np.maximum((kp + kq) / 2.0, 0.0))


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

    def null_tail(self, ref: ColumnSample, *, method: str, missing: int, current: int,
                  replicates: int) -> NullTail:
        """The null tail of ``ref`` for ``current`` rows (its size bucket), from the cache or
        simulated now with a seed derived from the column's content hash."""
        digest = ref.digest()
        bucket = size_bucket(current)
        key = f"{method}|n={ref.n}|missing={missing}|m={bucket}|atoms={NUMERIC_ATOMS}"
        entries = self._entries(digest)
        hit = entries.get(key)
        if hit is not None and int(hit.get("replicates", 0)) >= replicates:
            return NullTail.from_json(hit)
        seed = int(digest[:12], 16) ^ bucket
        std = ref.std() if method == "wasserstein" else 1.0
        tail = simulate(ref, method=method, missing=missing, current=bucket, replicates=replicates,
                        std=std, seed=seed)
        with self._lock:
            entries[key] = tail.to_json()
            self.computed += 1
            snapshot = json.dumps({"format": _FORMAT, "entries": entries})
        if self._persist:
            self._write(digest, snapshot)
        return tail

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


def default_calibrator() -> Calibrator:
    """The process-wide calibrator of the current ``$MLFLOW_MONITOR_HOME``."""
    home = monitor_home()
    with _DEFAULT_LOCK:
        cal = _DEFAULTS.get(str(home))
        if cal is None:
            cal = _DEFAULTS[str(home)] = Calibrator(home / "drift_calibration")
        return cal

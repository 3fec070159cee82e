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
- **bootstrap** (numerical columns above that, cached): the reference's own empirical
  distribution stands in for the common one; each replicate draws a reference-sized and
  a current-sized multinomial sample over the reference's atoms (its distinct values, or
  :data:`NUMERIC_ATOMS` equal-frequency quantiles) and scores them, ``O(atoms)`` per
  replicate (from :data:`GAUSSIAN_ROWS` rows on both sides, the counts' normal limit). It needs no current data, so it is cached: current sizes are bucketed on a
  half-octave grid (:func:`size_bucket`), a bucket's threshold is computed at its lower
  edge and scaled to the actual size by the ``sqrt(1/n + 1/m)`` law distance scores follow
  under the null (never above the edge's threshold). Tails are kept in memory and in
  ``$MLFLOW_MONITOR_HOME/drift_calibration/`` keyed by the reference column's content
  hash, so a promotion pays the calibration once per reference and size bucket.
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

__all__ = ["GAUSSIAN_ROWS", "NUMERIC_ATOMS", "PERMUTATION_ROWS", "Calibrator", "NullTail", "default_calibrator", "js_rows",
           "permutation_counts", "permutation_wasserstein", "replicates_for", "scale_to", "simulate",
           "size_bucket"]

#: A numerical column is calibrated by permutation (exact, per check) up to this many
#: reference + current values, by the cached bootstrap above.
PERMUTATION_ROWS = 2_000

_logger = logging.getLogger(__name__)

#: Both sides at least this large: the bootstrap draws the multinomial counts' normal
#: limit (the Brownian bridge over the atoms), ten times cheaper than exact multinomials.
GAUSSIAN_ROWS = 2_000
#: Quantile atoms for a numerical column with more distinct values than this.
NUMERIC_ATOMS = 512
#: Fewest bootstrap replicates drawn for any threshold.
MIN_REPLICATES = 1000
_FORMAT = "mlflow_monitor.drift_calibration/1"
_TAIL_SHARE = 0.1  # the largest 10% of replicates are kept: alphas up to 0.1 per test


def replicates_for(alpha: float) -> int:
    """Replicates needed for a per-test ``alpha``: at least one replicate in the tail."""
    return max(MIN_REPLICATES, math.ceil(1.0 / alpha))


def size_bucket(m: int) -> int:
    """The lower edge of ``m``'s size bucket: exact below 10, then a half-octave grid
    (10, 14, 20, 28, 40, 57, 80, 113, 160, ...)."""
    if m < 10:
        return max(1, int(m))
    i = math.floor(2 * math.log2(m / 10)) + 1
    while int(round(10 * 2 ** (i / 2))) > m:
        i -= 1
    return int(round(10 * 2 ** (i / 2)))


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


# -- the bootstrap null of a numerical column (cached) -------------------------------------
def atoms(ref: ColumnSample) -> tuple[np.ndarray, np.ndarray]:
    """``(support, counts)`` of a numerical reference column: its distinct values, or
    :data:`NUMERIC_ATOMS` equal-frequency quantiles when it has more."""
    v = ref.sorted64()
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    if len(starts) <= NUMERIC_ATOMS:
        counts = np.diff(np.r_[starts, len(v)])
        return v[starts], counts.astype(np.float64)
    idx = ((np.arange(NUMERIC_ATOMS) + 0.5) * len(v) / NUMERIC_ATOMS).astype(np.int64)
    return v[idx], np.full(NUMERIC_ATOMS, len(v) / NUMERIC_ATOMS)


def simulate(ref: ColumnSample, *, current: int, replicates: int, seed: int) -> NullTail:
    """The two-sample bootstrap null of the normed Wasserstein score of ``ref`` against
    ``current`` values (see the module docs)."""
    support, counts = atoms(ref)
    n_ref = ref.n
    p = counts / counts.sum()
    gaps = np.diff(support) / max(ref.std(), 0.001)
    rng = np.random.default_rng(seed)
    dist = np.empty(replicates)
    chunk = max(1, 2_000_000 // max(1, len(p)))  # ~16 MB per side per chunk
    gaussian = min(n_ref, current) >= GAUSSIAN_ROWS
    root_p = np.sqrt(p)
    cdf = np.cumsum(p)[:-1]
    for lo in range(0, replicates, chunk):
        b = min(chunk, replicates - lo)
        if gaussian:  # multinomial counts -> their normal limit: one bridge for both sides
            z = rng.standard_normal((b, len(p))) * root_p
            bridge = np.cumsum(z, axis=1)[:, :-1] - np.outer(z.sum(axis=1), cdf)
            diff = bridge * math.sqrt(1.0 / n_ref + 1.0 / current)
        else:
            fr = np.cumsum(rng.multinomial(n_ref, p, size=b), axis=1)[:, :-1] / n_ref
            fc = np.cumsum(rng.multinomial(current, p, size=b), axis=1)[:, :-1] / current
            diff = fr - fc
        dist[lo:lo + b] = np.abs(diff) @ gaps
    return NullTail(replicates, current, _top(dist, replicates))


def _top(values: np.ndarray, replicates: int) -> np.ndarray:
    keep = max(1, math.ceil(_TAIL_SHARE * (replicates + 1)))
    return -np.sort(-values)[:keep]


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
    chunk = max(1, 2_000_000 // max(1, len(pooled)))
    for lo in range(0, replicates, chunk):
        b = min(chunk, replicates - lo)
        c = rng.multivariate_hypergeometric(pooled, m, size=b, method="marginals").astype(np.float64)
        r = pooled - c
        dist[lo:lo + b] = js_rows(r / n, c / m)
        unseen = r == 0
        if missing_index is not None:
            unseen[:, missing_index] = False
        new[lo:lo + b] = (c * unseen).sum(axis=1) / m
    return NullTail(replicates, m, _top(dist, replicates), _top(new, replicates))


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

    def null_tail(self, ref: ColumnSample, *, current: int, replicates: int) -> NullTail:
        """The bootstrap null tail of a numerical ``ref`` for ``current`` values (its size
        bucket), from the cache or simulated now with a seed from the column's content hash."""
        digest = ref.digest()
        bucket = size_bucket(current)
        key = f"wasserstein|n={ref.n}|m={bucket}|atoms={NUMERIC_ATOMS}"
        entries = self._entries(digest)
        hit = entries.get(key)
        if hit is not None and int(hit.get("replicates", 0)) >= replicates:
            return NullTail.from_json(hit)
        tail = simulate(ref, current=bucket, replicates=replicates, seed=int(digest[:12], 16) ^ bucket)
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

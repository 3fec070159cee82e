"""The bootstrap null of a numerical reference column's drift score, from the reference
alone (no current data), so it can be computed when the reference is logged.

The reference's own empirical distribution stands in for the common one; each replicate
draws a reference-sized and a current-sized multinomial sample over the reference's atoms
(its distinct values, or :data:`NUMERIC_ATOMS` equal-frequency quantiles) and scores them
with the normed Wasserstein distance, ``O(atoms)`` per replicate. From
:data:`GAUSSIAN_ROWS` rows on both sides the counts take their normal limit: the
difference of the two empirical CDFs is one Brownian bridge over the atoms times
``sqrt(1/n + 1/m)``, so one *unit* tail (:func:`simulate_unit`) serves every current size
``m`` in that regime. Below it, one tail per current size bucket (:func:`size_bucket`).

:func:`precalibrate` computes them for a :class:`~mlflow_monitor.reference.ReferenceProfile`
within a time budget; :func:`~mlflow_monitor.reference.log_reference` stores the result as
``calibration.json`` beside ``profile.npz``, and the gate's calibrator
(``mlflow_monitor.gate.drift.calibration``) adopts it, so the first gated check after
logging draws no bootstrap replicate for those columns.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Iterable, NamedTuple, Optional

import numpy as np

from mlflow_monitor.reference.column import ColumnSample

__all__ = ["BUILTIN_DISTRIBUTION_SHARE", "BUILTIN_NEW_CATEGORY_SHARE", "CALIBRATION_FORMAT", "DEFAULT_ALPHA",
           "DISCRETE_VALUES", "DISTRIBUTION_DRAW_COUNTS", "DISTRIBUTION_TAIL", "GAUSSIAN_ROWS", "MIN_REPLICATES",
           "NEW_CATEGORY_TAIL", "NUMERIC_ATOMS", "PERMUTATION_ROWS", "SHARED_UNIT_SEED", "TESTS_PER_COLUMN",
           "AlphaSplit", "NullTail", "atoms", "gaussian_key", "new_category_replicates", "is_discrete", "precalibrate",
           "quantile_atoms", "replicates_for", "scale_to", "simulate", "simulate_unit", "simulate_units",
           "size_bucket", "split_alpha", "top_share", "unit_seed", "wasserstein_key"]

#: A numerical column is calibrated by exact permutation (per check) up to this many
#: reference + current values, by the bootstrap above.
PERMUTATION_ROWS = 2_000
#: Both sides at least this large: the bootstrap draws the multinomial counts' normal limit.
GAUSSIAN_ROWS = 2_000
#: Quantile atoms for a numerical column with more distinct values than this.
NUMERIC_ATOMS = 512
#: Fewest bootstrap replicates drawn for any threshold.
MIN_REPLICATES = 1000
#: A numerical column with at most this many distinct reference values, each seen more
#: than once, is scored like a categorical one (no bootstrap).
DISCRETE_VALUES = 5
#: Calibrated tests per column in the gate: its distribution, its missing share, and its
#: new categories (categorical) or out-of-range values (numerical).
TESTS_PER_COLUMN = 3
#: The built-in recipes' dataset-level false-alarm rate: what :func:`precalibrate` sizes
#: its replicates for when logging a reference.
DEFAULT_ALPHA = 0.01
#: The built-in recipes' ``drift.new_category_alpha_share``: the share of ``alpha`` given to
#: the new-category tests (see :func:`split_alpha`); :func:`precalibrate` sizes for it.
BUILTIN_NEW_CATEGORY_SHARE = 0.6
#: The built-in recipes' ``drift.distribution_alpha_share``: the share of ``alpha`` given to
#: the distribution (drift score) tests, three times the quality tests' 0.1 over twice as
#: many tests (see :func:`split_alpha`); :func:`precalibrate` sizes for it.
BUILTIN_DISTRIBUTION_SHARE = 0.3
#: Replicates a new-category threshold keeps beyond it (``alpha * replicates``), so that its
#: Monte-Carlo null resolves ``alpha`` (see :func:`new_category_replicates`).
NEW_CATEGORY_TAIL = 30
#: Replicates a categorical distribution threshold keeps beyond it, where a score above the
#: effect floor needs it settled (``mlflow_monitor.gate.drift.calibration.refine_js_threshold``).
DISTRIBUTION_TAIL = 10
#: The most counts (replicates x values) that settling one such threshold draws: about 0.6 s.
DISTRIBUTION_DRAW_COUNTS = 4_000_000
CALIBRATION_FORMAT = "mlflow_monitor.drift_calibration/1"
#: The seed of the unit tails of every column on quantile atoms (see :func:`unit_seed`).
SHARED_UNIT_SEED = 0x6D6C666C6F77
_TAIL_SHARE = 0.1  # the largest 10% of replicates are kept: alphas up to 0.1 per test


def replicates_for(alpha: float) -> int:
    """Replicates needed for a per-test ``alpha``: at least one replicate in the tail."""
    return max(MIN_REPLICATES, math.ceil(1.0 / alpha))


def new_category_replicates(alpha: float) -> int:
    """Replicates for a new-category test at per-test ``alpha``: :data:`NEW_CATEGORY_TAIL`
    of them beyond the threshold. A new value whose rows all land in the current part of a
    random split with probability ``h < alpha`` is called when fewer than ``k = floor(alpha
    x (R + 1))`` of ``R`` replicates reach its share: with ``k = 1`` (``R`` = 1,000 at alpha
    0.0015) that is ``(1 - h) ** R``, 39% for ``h = 0.64 alpha`` (10 rows at 1,000 / 1,000);
    with 30 replicates in the tail, 98.7%."""
    return max(MIN_REPLICATES, math.ceil(NEW_CATEGORY_TAIL / alpha))


class AlphaSplit(NamedTuple):
    """Per-test alphas of the three kinds of test (see :func:`split_alpha`)."""

    distribution: float  # each column's drift score
    quality: float  # each column's missing-share increase, each numerical one's out-of-range values
    new_category: float  # each categorical column's unseen values


def split_alpha(alpha: float, n_columns: int, n_categorical: int,
                new_category_share: Optional[float],
                distribution_share: Optional[float] = None) -> AlphaSplit:
    """Per-test alphas of a family of :data:`TESTS_PER_COLUMN` tests per column, that sum
    to ``alpha`` (Bonferroni holds for any weights that do): ``n_columns`` distribution
    tests, ``n_categorical`` new-category tests (one per categorical column) and the
    ``2 x n_columns - n_categorical`` quality tests (missing share, out of range).

    ``new_category_share`` and ``distribution_share`` give those groups that share of
    ``alpha``, spread equally over their tests; the groups left unset share the rest in
    proportion to their test counts (both unset: ``alpha / (3 x n_columns)`` each). A group
    the data lacks (no categorical column) spends nothing: the others' shares are scaled
    up in proportion. Shares must lie in (0, 1) and sum to less than 1, so the quality
    tests keep some alpha."""
    n_tests = TESTS_PER_COLUMN * n_columns
    if n_tests <= 0:
        raise ValueError(f"split_alpha needs at least one column, got {n_columns!r}")
    if not 0 <= n_categorical <= n_columns:
        raise ValueError(f"n_categorical must be in [0, {n_columns}], got {n_categorical!r}")
    for name, share in (("new_category_share", new_category_share), ("distribution_share", distribution_share)):
        if share is not None and not 0.0 < share < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {share!r}")
    given = (new_category_share or 0.0) + (distribution_share or 0.0)
    if given >= 1.0:
        raise ValueError(f"new_category_share + distribution_share must be below 1 (the quality tests need some "
                         f"alpha), got {new_category_share!r} + {distribution_share!r}")
    counts = {"distribution": n_columns, "quality": 2 * n_columns - n_categorical, "new_category": n_categorical}
    set_shares = {"distribution": distribution_share, "new_category": new_category_share}
    unset = [g for g in counts if set_shares.get(g) is None]
    unset_tests = sum(counts[g] for g in unset)
    raw = {g: (set_shares[g] if set_shares.get(g) is not None else (1.0 - given) * counts[g] / unset_tests)
           for g in counts}
    present = sum(raw[g] for g in counts if counts[g])
    # a group with no test gets no alpha; its field keeps the equal weight, never used
    per_test = {g: alpha * raw[g] / present / counts[g] if counts[g] else alpha / n_tests for g in counts}
    return AlphaSplit(per_test["distribution"], per_test["quality"], per_test["new_category"])


def size_bucket(m: int) -> int:
    """The lower edge of ``m``'s size bucket: exact below 10, then a half-octave grid
    (10, 14, 20, 28, 40, 57, 80, 113, 160, ...)."""
    if m < 10:
        return max(1, int(m))
    i = math.floor(2 * math.log2(m / 10)) + 1
    while int(round(10 * 2 ** (i / 2))) > m:
        i -= 1
    return int(round(10 * 2 ** (i / 2)))


def wasserstein_key(n: int, bucket: int) -> str:
    """Cache key of the tail of an ``n``-value reference at current size bucket ``bucket``."""
    return f"wasserstein|n={n}|m={bucket}|atoms={NUMERIC_ATOMS}"


def gaussian_key(n: int) -> str:
    """Cache key of the unit tail of an ``n``-value reference (every current size from
    :data:`GAUSSIAN_ROWS` on)."""
    return f"wasserstein|n={n}|gaussian-unit|atoms={NUMERIC_ATOMS}"


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
        """Raises ``KeyError``/``TypeError``/``ValueError`` on a malformed entry."""
        new = d.get("new_category")
        dist = np.asarray(d["distribution"], dtype=np.float64)
        if dist.ndim != 1 or len(dist) == 0 or not np.isfinite(dist).all():
            raise ValueError("a null tail needs a non-empty list of finite numbers")
        return cls(int(d["replicates"]), int(d["bucket"]), dist,
                   None if new is None else np.asarray(new, dtype=np.float64))


def scale_to(threshold: float, n: int, bucket: int, m: int) -> float:
    """A distance threshold computed at ``bucket`` current rows, scaled to ``m`` rows."""
    if m <= bucket:
        return threshold
    return threshold * math.sqrt((1.0 / n + 1.0 / m) / (1.0 / n + 1.0 / bucket))


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


def is_discrete(ref: ColumnSample) -> bool:
    """At most :data:`DISCRETE_VALUES` distinct values, each seen more than once (a
    near-constant continuous column has values seen once, and new ones in every sample)."""
    v = ref.sorted64()
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    return len(starts) <= DISCRETE_VALUES and bool(np.diff(np.r_[starts, len(v)]).min() > 1)


def simulate(ref: ColumnSample, *, current: int, replicates: int, seed: int) -> NullTail:
    """The two-sample bootstrap null of the normed Wasserstein score of ``ref`` against
    ``current`` values (see the module docs; the normal limit from :data:`GAUSSIAN_ROWS`
    values on both sides)."""
    gaussian = min(ref.n, current) >= GAUSSIAN_ROWS
    tail = _simulate(ref, current=current, replicates=replicates, seed=seed, gaussian=gaussian)
    if gaussian:
        tail = dataclasses.replace(tail, distribution=tail.distribution * math.sqrt(1.0 / ref.n + 1.0 / current))
    return tail


def simulate_unit(ref: ColumnSample, *, replicates: int, seed: int) -> NullTail:
    """The Gaussian-limit null of the score divided by ``sqrt(1/n + 1/m)``: multiply by
    it for any current size ``m`` (both sides from :data:`GAUSSIAN_ROWS` rows)."""
    return _simulate(ref, current=0, replicates=replicates, seed=seed, gaussian=True)


def unit_seed(ref: ColumnSample) -> int:
    """The seed of ``ref``'s unit tail. Columns on :data:`NUMERIC_ATOMS` equal-frequency
    quantiles all have uniform atom weights, so their bridges have one law: they share
    one seed (:data:`SHARED_UNIT_SEED`) and :func:`simulate_units` draws the bridges once
    for all of them. Each column's test stays exact at its level (a Bonferroni bound needs
    no independence between tests). Other columns: a seed from their content hash."""
    return SHARED_UNIT_SEED if quantile_atoms(ref) else int(ref.digest()[:12], 16)


def simulate_units(refs: list[ColumnSample], *, replicates: int) -> list[NullTail]:
    """:func:`simulate_unit` of each of ``refs`` with its :func:`unit_seed`, the shared
    bridges drawn once for every column on quantile atoms (the same numbers as one by one)."""
    shared = [r for r in refs if quantile_atoms(r)]
    out: dict[int, NullTail] = {}
    if shared:
        for ref, tail in zip(shared, _simulate_shared(shared, replicates)):
            out[id(ref)] = tail
    return [out[id(r)] if id(r) in out else simulate_unit(r, replicates=replicates, seed=unit_seed(r))
            for r in refs]


def quantile_atoms(ref: ColumnSample) -> bool:
    """Whether ``ref`` has more than :data:`NUMERIC_ATOMS` distinct values (its atoms are
    equal-frequency quantiles)."""
    v = ref.sorted64()
    return int(np.count_nonzero(v[1:] != v[:-1])) + 1 > NUMERIC_ATOMS


def _simulate_shared(refs: list[ColumnSample], replicates: int) -> list[NullTail]:
    """The unit tails of columns on quantile atoms from one set of bridges, computed as
    :func:`_simulate` computes each (same seed, chunks and arithmetic per column)."""
    gaps = []
    for ref in refs:
        support, _ = atoms(ref)
        gaps.append(np.diff(support) / max(ref.std(), 0.001))
    p = np.full(NUMERIC_ATOMS, 1.0 / NUMERIC_ATOMS)
    rng = np.random.default_rng(SHARED_UNIT_SEED)
    dists = [np.empty(replicates) for _ in refs]
    chunk = max(1, 2_000_000 // len(p))
    root_p = np.sqrt(p)
    cdf = np.cumsum(p)[:-1]
    for lo in range(0, replicates, chunk):
        b = min(chunk, replicates - lo)
        z = rng.standard_normal((b, len(p))) * root_p
        diff = np.abs(np.cumsum(z, axis=1)[:, :-1] - np.outer(z.sum(axis=1), cdf))
        for dist, g in zip(dists, gaps):
            dist[lo:lo + b] = diff @ g
    return [NullTail(replicates, 0, top_share(d, replicates)) for d in dists]


def _simulate(ref: ColumnSample, *, current: int, replicates: int, seed: int, gaussian: bool) -> NullTail:
    support, counts = atoms(ref)
    n_ref = ref.n
    p = counts / counts.sum()
    if gaussian and len(p) == NUMERIC_ATOMS and quantile_atoms(ref):
        p = np.full(NUMERIC_ATOMS, 1.0 / NUMERIC_ATOMS)  # exactly what _simulate_shared uses
    gaps = np.diff(support) / max(ref.std(), 0.001)
    rng = np.random.default_rng(seed)
    dist = np.empty(replicates)
    chunk = max(1, 2_000_000 // max(1, len(p)))  # ~16 MB per side per chunk
    root_p = np.sqrt(p)
    cdf = np.cumsum(p)[:-1]
    for lo in range(0, replicates, chunk):
        b = min(chunk, replicates - lo)
        if gaussian:  # multinomial counts -> their normal limit: one bridge for both sides
            z = rng.standard_normal((b, len(p))) * root_p
            diff = np.cumsum(z, axis=1)[:, :-1] - np.outer(z.sum(axis=1), cdf)
        else:
            fr = np.cumsum(rng.multinomial(n_ref, p, size=b), axis=1)[:, :-1] / n_ref
            fc = np.cumsum(rng.multinomial(current, p, size=b), axis=1)[:, :-1] / current
            diff = fr - fc
        dist[lo:lo + b] = np.abs(diff) @ gaps
    return NullTail(replicates, current, top_share(dist, replicates))


def top_share(values: np.ndarray, replicates: int) -> np.ndarray:
    """The largest :data:`_TAIL_SHARE` of ``values``, descending (what a tail keeps)."""
    keep = max(1, math.ceil(_TAIL_SHARE * (replicates + 1)))
    return -np.sort(-values)[:keep]


def precalibrate(profile: "ReferenceProfile", columns: Iterable[str], *, budget_s: float,  # noqa: F821
                 alpha: float = DEFAULT_ALPHA, current_fractions: tuple[float, ...] = (0.1, 0.5, 1.0),
                 new_category_share: Optional[float] = BUILTIN_NEW_CATEGORY_SHARE,
                 distribution_share: Optional[float] = BUILTIN_DISTRIBUTION_SHARE) -> dict:
    """The bootstrap tails the gate needs for ``columns`` of ``profile``: first the unit
    tails of every column on quantile atoms (one shared draw for all of them, a fraction
    of a second whatever their number), then column by column the other unit tails and the
    small-size buckets until ``budget_s`` seconds have passed (a column under way is
    finished; the rest are listed under ``skipped`` and calibrated on first use, as
    without this).

    Per-test alpha: what the gate gives the distribution tests when the recipe checks these
    columns with ``alpha``, ``new_category_share`` and ``distribution_share`` (:func:`split_alpha`, the profile's
    text, category and bool columns counted as categorical, as recipes infer them); a
    recipe with a smaller alpha or more columns needs more replicates and computes them on
    first use. Numerical, non-discrete columns
    only (the others use exact per-check nulls): from :data:`GAUSSIAN_ROWS` reference
    values, one unit tail covering every current size from :data:`GAUSSIAN_ROWS` on;
    below, one tail per size bucket of ``current_fractions`` of the reference that the
    permutation null does not cover. Returns a JSON-able dict: ``format``, ``alpha``,
    ``new_category_alpha_share``, ``distribution_alpha_share``, ``tests``, ``replicates``, ``columns`` (digest -> key ->
    tail), ``skipped``, ``seconds``.
    """
    start = time.perf_counter()
    names = [str(c) for c in columns]
    n_tests = TESTS_PER_COLUMN * max(1, len(names))
    # the gate's recipes take text, category and bool columns as categorical: the distribution
    # tests' per-test alpha at that count (a check that counts more categorical columns, an
    # int column taken as categorical, may need more replicates and draws them on first use)
    n_categorical = sum(1 for name in names if name in profile.columns and not profile.side(name).is_numeric)
    per_test = split_alpha(alpha, max(1, len(names)), min(n_categorical, max(1, len(names))), new_category_share,
                           distribution_share).distribution
    replicates = replicates_for(per_test)
    out: dict = {"format": CALIBRATION_FORMAT, "alpha": alpha, "new_category_alpha_share": new_category_share,
                 "distribution_alpha_share": distribution_share,
                 "tests": n_tests, "replicates": replicates, "columns": {}, "skipped": []}
    candidates = []
    for name in names:
        if name in profile.columns:
            ref = profile.side(name)
            if ref.is_numeric and not is_discrete(ref):
                candidates.append((name, ref))
    # first the unit tails of the columns on quantile atoms: one shared draw for all of them
    shared = [(name, ref) for name, ref in candidates if ref.n >= GAUSSIAN_ROWS and quantile_atoms(ref)]
    for (_, ref), tail in zip(shared, simulate_units([r for _, r in shared], replicates=replicates)):
        out["columns"].setdefault(ref.digest(), {})[gaussian_key(ref.n)] = tail.to_json()
    for name, ref in candidates:  # then column by column, within the budget
        own_unit = ref.n >= GAUSSIAN_ROWS and not quantile_atoms(ref)
        buckets = sorted({size_bucket(max(1, int(ref.n * f))) for f in current_fractions
                          if ref.n + max(1, int(ref.n * f)) > PERMUTATION_ROWS
                          and min(ref.n, size_bucket(max(1, int(ref.n * f)))) < GAUSSIAN_ROWS})
        if not (own_unit or buckets):
            continue
        if time.perf_counter() - start >= budget_s:
            out["skipped"].append(name)
            continue
        entries = out["columns"].setdefault(ref.digest(), {})
        if own_unit:
            entries[gaussian_key(ref.n)] = simulate_unit(ref, replicates=replicates, seed=unit_seed(ref)).to_json()
        seed = int(ref.digest()[:12], 16)
        for bucket in buckets:
            entries[wasserstein_key(ref.n, bucket)] = simulate(
                ref, current=bucket, replicates=replicates, seed=seed ^ bucket).to_json()
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out

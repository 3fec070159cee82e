"""Alert quality of the drift gate: false blocks on undrifted data and detection of real
shifts, built-in recipes (calibrated detection) side by side with Evidently's defaults.

    python benchmarks/alert_quality.py                     # 100 seeds up to 50k rows, 10 seeds above
    python benchmarks/alert_quality.py --quick             # 20 seeds, up to 5k rows
    python benchmarks/alert_quality.py --seeds 100 --big-seeds 20 --max-rows 1000000
    python benchmarks/alert_quality.py --seeds 30 --detect-seeds 5 --big-seeds 3 --max-rows 200000
    python benchmarks/alert_quality.py --check-evidently 3 # also run real Evidently on 3 seeds per size
    python benchmarks/alert_quality.py --min-rows 200000 --max-rows 1000000 --big-seeds 100 --anchor-seeds 10

Data: a seeded mixed-type generator, 10 columns (normal ``key`` and ``normal``, lognormal,
integer count, near-constant, 5-level, 60-level (Zipf) and 3-level categorical, boolean,
and a normal with 5% NaN). For each seed and reference size a fresh reference is drawn,
then current data at 10%, 50% and 100% of its size, undrifted and with each shift.

Decisions compared, per run:

- ``evidently``: Evidently 0.7 ``DataDriftPreset`` defaults (dataset drift when at least half
  the columns drift), also what the old ``classification``/``regression`` recipes blocked on;
- ``old drift``: the old built-in ``drift`` recipe, ``drift_share < 0.3`` on Evidently's tests;
- ``built-in``: the built-in recipes' drift and data-quality rules today (calibrated
  detection, ``alpha`` 0.01; ``columns.key_columns: [key]``).

Evidently's decisions come from ``compute_drift`` in ``evidently`` mode, which gives
Evidently's per-column decisions exactly (tests/gate/test_drift_exact.py);
``--check-evidently N`` runs the real ``Report([DataDriftPreset()])`` on the first N seeds
per size and counts disagreements. Calibration is part of each new reference's cost (a
calibrator per reference, memory only) and is timed apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import signal
import sys
import time
import warnings
from collections import defaultdict
from typing import Callable

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

NUMERICAL = ["key", "normal", "lognormal", "count", "near_constant", "nan5"]
CATEGORICAL = ["cat5", "cat60", "cat3", "flag"]
KEY = ["key"]
FRACTIONS = (0.1, 0.5, 1.0)
SIZES = (200, 1_000, 5_000, 50_000, 200_000, 1_000_000)
_CAT5 = ["a", "b", "c", "d", "e"]
_P5 = [0.4, 0.25, 0.15, 0.12, 0.08]
_CAT60 = [f"v{i:02d}" for i in range(60)]
_P60 = 1.0 / np.arange(1, 61)
_P60 = _P60 / _P60.sum()
_CAT3 = ["x", "y", "z"]
_P3 = [0.5, 0.3, 0.2]


def generate(n: int, rng: np.random.Generator, shift: str = "none") -> pd.DataFrame:
    """``n`` rows of the mixed-type frame, with ``shift`` applied (see :data:`SHIFTS`)."""
    p3 = [0.55, 0.25, 0.2] if shift == "cat3 +5 points" else _P3
    df = pd.DataFrame({
        "key": rng.normal(0.0, 1.0, n),
        "normal": rng.normal(10.0, 2.0, n),
        "lognormal": rng.lognormal(3.0, 0.8, n),
        "count": rng.poisson(20, n).astype(np.int64),
        "near_constant": np.where(rng.random(n) < 0.97, 0.0, rng.normal(0.0, 1.0, n)),
        "nan5": rng.normal(0.0, 1.0, n),
        "cat5": rng.choice(_CAT5, n, p=_P5).astype(object),
        "cat60": rng.choice(_CAT60, n, p=_P60).astype(object),
        "cat3": rng.choice(_CAT3, n, p=p3).astype(object),
        "flag": rng.random(n) < 0.3,
    })
    missing = 0.15 if shift == "missing 5% -> 15%" else 0.05
    df.loc[rng.random(n) < missing, "nan5"] = np.nan
    if shift == "key mean +0.25 sd":
        df["key"] += 0.25
    elif shift == "key mean +0.5 sd":
        df["key"] += 0.5
    elif shift == "normal scale x1.5":
        df["normal"] = 10.0 + (df["normal"] - 10.0) * 1.5
    elif shift == "unseen category 1%":  # exactly ceil(1%) of the rows: "in at least 1% of rows"
        rows = rng.choice(n, size=max(1, math.ceil(0.01 * n)), replace=False)
        df.loc[rows, "cat5"] = "NEW"
    return df


#: shift -> the smallest current size its detection target applies to. The issue states
#: 5k and 1k for the mean shifts and 5k for the category share; for the others it states
#: none, and this benchmark uses 1k (at 20 current rows a 1% category is 0.2 rows): cells
#: below the bound are reported, not judged.
SHIFTS: dict[str, int] = {
    "key mean +0.25 sd": 5_000,
    "key mean +0.5 sd": 1_000,
    "normal scale x1.5": 1_000,
    "cat3 +5 points": 5_000,
    "missing 5% -> 15%": 1_000,
    "unseen category 1%": 1_000,
}
ENGINES = ("evidently", "old drift", "built-in")


@dataclasses.dataclass
class Tally:
    """Runs and blocks per engine (an engine may run on fewer seeds: ``--anchor-seeds``)."""

    engine_runs: dict = dataclasses.field(default_factory=lambda: defaultdict(int))
    blocks: dict = dataclasses.field(default_factory=lambda: defaultdict(int))

    def add(self, decisions: dict[str, bool]) -> None:
        for k, v in decisions.items():
            self.engine_runs[k] += 1
            self.blocks[k] += int(v)

    @property
    def runs(self) -> int:
        return max(self.engine_runs.values(), default=0)

    def rate(self, engine: str) -> float:
        runs = self.engine_runs[engine]
        return self.blocks[engine] / runs if runs else float("nan")

    def cell(self, engine: str) -> str:
        """The rate, with its run count when this engine ran on fewer runs than the cell."""
        text = _pct(self.rate(engine))
        runs = self.engine_runs[engine]
        return text if runs == self.runs or not runs else f"{text} ({runs})"


def decide(reference: pd.DataFrame, current: pd.DataFrame, recipe, calibrator,
           anchors: bool = True) -> tuple[dict[str, bool], object]:
    """The three engines' decisions (``anchors=False``: the built-in recipes' only)."""
    from mlflow_monitor.gate.drift import compute_drift
    from mlflow_monitor.gate.rules import evaluate_rules

    new = compute_drift(reference, current, numerical=NUMERICAL, categorical=CATEGORICAL, workers=1,
                        settings=recipe.effective_drift, key_columns=KEY, calibrator=calibrator)
    results = evaluate_rules(recipe.rules, metrics={}, drift=new, champion_metrics=None)
    out = {"built-in": not all(r.passed for r in results)}
    if not anchors:
        return out, None
    ev = compute_drift(reference, current, numerical=NUMERICAL, categorical=CATEGORICAL, workers=1)
    return {"evidently": bool(ev.dataset_drift), "old drift": ev.drift_share >= 0.3, **out}, ev


def real_evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
    snap = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition)).dict()
    out = {}
    for t in snap["tests"]:
        col = t.get("metric_config", {}).get("params", {}).get("column")
        if col is not None:
            out[col] = t["status"] == "FAIL"
    return out


def run(sizes: list[int], seeds_for: Callable[[int], int], detect_seeds: int, check_evidently: int, log,
        anchor_seeds_for: Callable[[int], int] | None = None, first_seed: int = 0, res: dict | None = None) -> dict:
    """``anchor_seeds_for(size)``: the seeds (the first ones) on which the Evidently preset
    and the old ``drift`` recipe also run; default all. Seeds are ``first_seed`` on; shifts
    and anchors run on the seeds below ``detect_seeds`` and ``anchor_seeds_for(size)``.
    Tallies go into ``res`` as they come (so an interrupted run keeps the seeds done)."""
    from mlflow_monitor.gate.drift.calibration import Calibrator
    from mlflow_monitor.recipes import load_recipe

    base = load_recipe("drift").to_dict()
    base.setdefault("columns", {})["key_columns"] = KEY
    recipe = load_recipe(base)
    res = res if res is not None else {}
    null: dict[tuple[int, float], Tally] = res.setdefault("null", defaultdict(Tally))
    detect: dict[tuple[str, int, float], Tally] = res.setdefault("detect", defaultdict(Tally))
    res.setdefault("checked", 0)
    res.setdefault("disagreements", 0)
    timings = res.setdefault("timings", defaultdict(float))
    res.setdefault("seeds_done", {})
    for size in sizes:
        t_size = time.perf_counter()
        for seed in range(first_seed, first_seed + seeds_for(size)):
            rng = np.random.default_rng([size, seed])
            reference = generate(size, rng)
            calibrator = Calibrator(persist=False)
            for frac in FRACTIONS:
                m = max(1, int(size * frac))
                t0 = time.perf_counter()
                anchors = anchor_seeds_for is None or seed < anchor_seeds_for(size)
                decisions, ev = decide(reference, generate(m, rng), recipe, calibrator, anchors)
                timings["first verdict (with calibration)"] += time.perf_counter() - t0
                null[(size, frac)].add(decisions)
                if seed < check_evidently:
                    cur = generate(m, rng)
                    _, ours = decide(reference, cur, recipe, calibrator)
                    real = real_evidently_drift(reference, cur)
                    res["checked"] += len(real)
                    res["disagreements"] += sum(int(real[c.column] != c.drifted) for c in ours.columns)
                for shift in SHIFTS if seed < detect_seeds else ():
                    t0 = time.perf_counter()
                    decisions, _ = decide(reference, generate(m, rng, shift), recipe, calibrator, anchors)
                    timings["cached verdicts"] += time.perf_counter() - t0
                    detect[(shift, size, frac)].add(decisions)
            res["seeds_done"][size] = seed + 1 - first_seed
            if size > 50_000 and (seed + 1) % 10 == 0:
                log(f"    size {size:,}: seeds {first_seed}-{seed} in {time.perf_counter() - t_size:.0f} s")
        log(f"  size {size:>9,}: {seeds_for(size)} seeds ({min(detect_seeds, seeds_for(size))} with shifts) "
            f"in {time.perf_counter() - t_size:.0f} s; false blocks (evidently, old drift, built-in): "
            + "; ".join(f"{max(1, int(size * f)):,} rows "
                        + "/".join(str(null[(size, f)].blocks[e]) for e in ENGINES) + f" of {null[(size, f)].runs}"
                        for f in FRACTIONS)
            + "; built-in detection: "
            + ", ".join(f"{shift} {sum(detect[(shift, size, f)].blocks['built-in'] for f in FRACTIONS)}/"
                        f"{sum(detect[(shift, size, f)].runs for f in FRACTIONS)}" for shift in SHIFTS))
    return res


def _pct(x: float) -> str:
    return "   -  " if x != x else f"{100 * x:5.1f}%"


def report(res: dict, sizes: list[int], seeds_for: Callable[[int], int]) -> tuple[str, bool]:
    lines = ["False blocks on undrifted data (share of runs blocked)", "",
             "| reference rows | current rows | runs | Evidently preset | old `drift` recipe | built-in recipes |",
             "|---:|---:|---:|---:|---:|---:|"]
    ok = True
    for size in sizes:
        for frac in FRACTIONS:
            t = res["null"][(size, frac)]
            m = max(1, int(size * frac))
            lines.append(f"| {size:,} | {m:,} | {t.runs} | {t.cell('evidently')} | "
                         f"{t.cell('old drift')} | {t.cell('built-in')} |")
    total = sum(t.engine_runs["built-in"] for t in res["null"].values())
    blocked = sum(t.blocks["built-in"] for t in res["null"].values())
    worst = max(t.rate("built-in") for t in res["null"].values())
    lines += ["", f"built-in recipes over all {total} undrifted runs: {blocked} blocked "
                  f"({_pct(blocked / total).strip()}); worst cell {_pct(worst).strip()}", ""]
    ok &= blocked / total <= 0.01
    lines += ["Detection (share of shifted runs blocked); target cells are those at or above the "
              "shift's size bound", "",
              "| shift | reference rows | current rows | runs | Evidently preset | old `drift` recipe | "
              "built-in recipes | target |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    misses = []
    for shift, bound in SHIFTS.items():
        for size in sizes:
            for frac in FRACTIONS:
                t = res["detect"][(shift, size, frac)]
                m = max(1, int(size * frac))
                target = m >= bound and t.engine_runs["built-in"] > 0  # a null-only run judges nothing
                rate = t.rate("built-in")
                mark = "" if not target else ("met" if rate >= 0.95 else "MISSED")
                if target and rate < 0.95:
                    misses.append(f"{shift} at {size:,}/{m:,}: {_pct(rate).strip()}")
                lines.append(f"| {shift} | {size:,} | {m:,} | {t.runs} | {t.cell('evidently')} | "
                             f"{t.cell('old drift')} | {t.cell('built-in')} | {mark} |")
    lines += ["", "detection target (>= 95% of runs in each target cell): "
              + ("MET" if not misses else "missed in " + "; ".join(misses))]
    if res["checked"]:
        lines.append(f"real Evidently check: {res['disagreements']} of {res['checked']} column decisions "
                     "differ from the evidently-mode engine")
    t = res["timings"]
    lines.append(f"time: first verdict per reference and size (calibration included) {t.get('first verdict (with calibration)', 0):.0f} s, "
                 f"cached verdicts {t.get('cached verdicts', 0):.0f} s")
    return "\n".join(lines), ok and not misses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100, help="seeds per size up to 50k rows")
    ap.add_argument("--big-seeds", type=int, default=10, help="seeds per size above 50k rows")
    ap.add_argument("--detect-seeds", type=int, default=100,
                    help="of those, seeds that also run every shift (the null runs are the costly target)")
    ap.add_argument("--max-rows", type=int, default=50_000, help="largest reference size")
    ap.add_argument("--min-rows", type=int, default=0, help="smallest reference size")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds start here (to split a size over processes; shifts and anchors keep their "
                         "seed bounds, so a run from seed 100 on is the null only)")
    ap.add_argument("--anchor-seeds", type=int, default=None, metavar="K",
                    help="above 50k rows, run the Evidently preset and the old drift recipe on the "
                         "first K seeds only (the built-in recipes run all); the table gives their run counts")
    ap.add_argument("--quick", action="store_true", help="20 seeds, sizes up to 5k")
    ap.add_argument("--check-evidently", type=int, default=0, metavar="N",
                    help="also run real Evidently on the first N seeds of each size")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.max_rows = 20, 5_000
    sizes = [s for s in SIZES if args.min_rows <= s <= args.max_rows]
    if not sizes:
        ap.error(f"no size in {', '.join(f'{s:,}' for s in SIZES)} is within --min-rows {args.min_rows:,} "
                 f"and --max-rows {args.max_rows:,}")
    if args.first_seed < 0:
        ap.error(f"--first-seed must be 0 or more, got {args.first_seed}")
    if args.anchor_seeds is not None and args.anchor_seeds < 0:
        ap.error(f"--anchor-seeds must be 0 or more, got {args.anchor_seeds}")

    def seeds_for(size: int) -> int:
        return args.seeds if size <= 50_000 else args.big_seeds

    def anchor_seeds_for(size: int) -> int:
        k = args.anchor_seeds  # a seed bound, like --detect-seeds
        return 2 ** 62 if k is None or size <= 50_000 else k

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    import evidently
    import scipy

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load avg {load:.1f}; "
              f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
              f"scipy {scipy.__version__}, evidently {evidently.__version__}\n"
              f"run: sizes {', '.join(f'{s:,}' for s in sizes)}; seeds per size: "
              + ", ".join(f"{s:,}: {seeds_for(s)}" for s in sizes)
              + (f"; seeds from {args.first_seed}" if args.first_seed else "")
              + f"; of those with every shift: {args.detect_seeds} at most"
              + ("" if args.anchor_seeds is None else
                 "; Evidently preset and old drift recipe on the first "
                 + ", ".join(f"{args.anchor_seeds} at {s:,}" for s in sizes if s > 50_000))
              + f"; current at {', '.join(f'{int(f * 100)}%' for f in FRACTIONS)} of the reference\n")
    t0 = time.perf_counter()
    res: dict = {}

    def stop(signum, frame):  # SIGTERM: report the seeds done so far
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        run(sizes, seeds_for, args.detect_seeds, args.check_evidently, log, anchor_seeds_for,
            args.first_seed, res)
    except KeyboardInterrupt:
        done = res.get("seeds_done", {})
        sizes = [s for s in sizes if s in done]
        header += ("INTERRUPTED: seeds completed per size: " + ", ".join(f"{s:,}: {done[s]}" for s in sizes)
                   + " (a seed under way when stopped counts in the cells it finished)\n")
        if not sizes:
            print(header)
            return 2
    table, ok = report(res, sizes, seeds_for)
    print(header)
    print(table)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; targets: {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

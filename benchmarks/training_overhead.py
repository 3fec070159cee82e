"""Training overhead of mlflow_monitor.autolog() on CPU loops: 1-3 ms steps and 0.2 ms steps.

Four loop shapes, each with the arms run in many short paired rounds (the arms' order
shuffled each round) in one process, so a drift of the shared machine's speed hits every
arm of a round alike:

  mlp   -- MLP 128-256-256-10, batch 64, a collating DataLoader (~0.9 ms a step on the idle
           dev VM, ~1.5 ms loaded: the low end of the 1-3 ms range, or under it)
  wide  -- MLP 128-512-512-10, batch 64, the same loader (~2-3 ms a step: the middle of it)
  fast  -- MLP 16-32-4, batch 16, a collating DataLoader: about 0.2 ms a step on an idle
           core, the issue's fast-step case, where a per-point cost shows
  tiny  -- one Linear 8-4, batch 8, a DataLoader over ready batches (``batch_size=None``,
           no collation): about 0.1 ms a step on an idle core, twice as fast as the target's.
           The step time measured is printed; on a loaded or slow machine it is longer.

  off      -- autolog disabled (the anchor)
  aa       -- autolog disabled again (A-A: the run's own resolution; its ratio should be 1)
  proc     -- mlflow_monitor.autolog(), embedded sqlite written by the writer process (the default)
  inproc   -- the same, the writes in the training process (MLFLOW_MONITOR_WRITER_PROCESS=0)
  hooks    -- (with --arms ...,hooks) the hooks' own cost: points dropped at the buffer

Every autolog round is its own run and logs 4 points a step (train/loss, train/lr,
train/step_time_s, train/samples_per_s) into the embedded sqlite store; each run's
points are checked in the store afterwards. The arms share one pipeline and one warm
writer process (the live writer is switched between rounds). Per step it reports the
wall time, the training thread's CPU (``thread_time``), wall minus that CPU (waiting for
the GIL or a CPU), the training process's CPU (all threads) and the writer process's
CPU (``/proc``), both until the round's points are stored (medians over rounds); and the
median over rounds of the paired ratio (arm / off, same round) with its 95% bootstrap
interval (``paired_stats.py``), and the same for the paired difference in us a step
(the cost itself: what a step of another length would pay). Once, for context:
``mlflow.log_metric`` of the loss every step.

Targets: autolog at most 3% slower than off at 1-3 ms steps, at most 10% at 0.2 ms
steps, and every point of every step in the run. A target is MET when the whole interval
is within it, NOT MET when the whole interval is beyond it, NOT RESOLVED otherwise.

    python benchmarks/training_overhead.py [--rounds 30] [--steps-per-round 200] [--shapes mlp,wide,tiny]
                                           [--arms off,aa,proc,inproc,hooks]
"""

from __future__ import annotations

import argparse
import random
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_stats import estimate, verdict  # noqa: E402

POINTS = ("train/loss", "train/lr", "train/step_time_s", "train/samples_per_s")
SHAPES = {  # name: (layer sizes, batch size, target overhead, DataLoader over ready batches)
    "mlp": ((128, 256, 256, 10), 64, 0.03, False),  # ~0.9-1.8 ms a step on the dev VM (quiet / loaded)
    "wide": ((128, 512, 512, 10), 64, 0.03, False),  # ~2-3 ms a step: the middle of the 1-3 ms target range
    "fast": ((16, 32, 4), 16, 0.10, False),  # ~0.2 ms a step on the idle dev VM: the issue's 0.2 ms target
    "tiny": ((8, 4), 8, 0.10, True),  # ~0.1 ms: twice as fast as the target's steps (context, held to 10% too)
}
STEPS_FACTOR = {"fast": 5, "tiny": 10}  # rounds of about the same wall time as mlp's


def _machine() -> str:
    import mlflow
    import torch

    return (f"{platform.node()} | {platform.platform()} | python {platform.python_version()} | "
            f"cpus {os.cpu_count()} | torch {torch.__version__} (threads {torch.get_num_threads()}) | "
            f"mlflow {mlflow.__version__} | load avg {os.getloadavg()[0]:.2f}")


def _loop(sizes: tuple[int, ...], batch: int, steps: int, ready_batches: bool):
    import torch

    torch.manual_seed(0)
    layers: list = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = steps * batch
    x, y = torch.randn(n, sizes[0]), torch.randint(0, sizes[-1], (n,))
    if ready_batches:  # no per-step collation: the loader costs ~20 us, not ~100 us
        loader = torch.utils.data.DataLoader(list(zip(x.split(batch), y.split(batch))), batch_size=None)
    else:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    return model, opt, loader


ARMS = {  # name: (label, MLFLOW_MONITOR_WRITER_PROCESS, push dropped)
    "off": ("off (anchor)", None, False),
    "aa": ("off again (A-A: this run's resolution)", None, False),
    "proc": ("autolog, writer process", "1", False),
    "inproc": ("autolog, in-process writer", "0", False),
    "hooks": ("autolog hooks only (points dropped at the buffer)", "1", True),
}


def _child_cpu_s(pids: set) -> float:
    """CPU seconds (user + system) of the writer processes in ``pids`` so far (Linux /proc),
    plus every reaped child (``os.times``)."""
    total = os.times().children_user + os.times().children_system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _use_writer_process(on: bool):
    """Switch the embedded store's live writer between its writer process and the
    in-process writer (a benchmark instrument: the arms then share one pipeline, one
    warm writer process and one warm sqlite connection; the knob,
    ``MLFLOW_MONITOR_WRITER_PROCESS``, is read once per pipeline)."""
    from mlflow_monitor.metrics import get_pipeline
    from mlflow_monitor.metrics.writer_process import SqlWriterProcess

    for dest in list(get_pipeline()._destinations.values()):
        writer = dest.sender.writer
        if isinstance(writer, SqlWriterProcess):
            writer._fallback = None if on else writer._in_process_writer
            return writer
    raise RuntimeError("the embedded store has no writer process (is MLFLOW_MONITOR_WRITER_PROCESS=0 set?)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", "--blocks", dest="rounds", type=int, default=30,
                        help="paired rounds per shape (every arm once a round, order shuffled)")
    parser.add_argument("--steps-per-round", "--steps-per-block", dest="steps_per_round", type=int, default=200,
                        help="for the mlp and wide shapes; fast runs 5x more, tiny 10x")
    parser.add_argument("--log-metric-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", default="mlp,wide,fast,tiny")
    parser.add_argument("--arms", default="off,aa,proc,inproc",
                        help="of off (first: the anchor), aa (off again), proc (writer process), inproc (in-process writer), hooks (the hooks' own "
                             "cost: points dropped at the buffer)")
    parser.add_argument("--warmup-steps", type=int, default=20,
                        help="first steps of each round timed separately (run start, sampler start)")
    args = parser.parse_args()
    arms = args.arms.split(",")
    if arms[0] != "off":
        raise SystemExit(f"--arms must start with off (the anchor), got {args.arms!r}")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"--arms: unknown arm(s) {unknown}; allowed: {', '.join(ARMS)}")
    if args.rounds < 5:
        raise SystemExit(f"--rounds must be at least 5 for an interval, got {args.rounds}")

    tmp = tempfile.mkdtemp(prefix="mm_overhead_")
    os.environ["MLFLOW_MONITOR_WRITER_PROCESS"] = "1"
    os.environ.setdefault("MLFLOW_MONITOR_HOME", os.path.join(tmp, "home"))
    import mlflow
    import torch

    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    torch.set_num_threads(args.threads)  # one training thread: less noise from a shared machine
    import mlflow_monitor
    from mlflow_monitor.metrics import get_pipeline

    warm = args.warmup_steps
    uptime_before = _uptime()
    print(f"machine: {_machine()}")
    print(f"uptime: {uptime_before}")
    print(f"{args.rounds} paired rounds per shape (every arm once a round, order shuffled), each autolog "
          f"round its own run (system metrics on, health off); figures after the first {warm} steps of a "
          "round. us/step: wall, median of rounds; vs off: median of the rounds' paired ratios (arm / off "
          "of the same round) with its 95% bootstrap interval; extra us/step: the paired difference "
          "(arm - off of the same round), median and 95% interval; train CPU: the training thread's CPU "
          "(thread_time); wait: wall - train CPU (GIL waits and CPU contention; the same quantity in the off "
          "arm is the baseline); process CPU: the training process, all threads, until the round's points "
          "are stored; writer CPU: the writer process, same span. Per step; 4 points a step.\n")
    print("| loop | arm | steps | us/step | vs off (95% interval) | extra us/step (95% interval) | train CPU | wait | "
          "process CPU | writer CPU | points stored |")
    print("|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
    met = True
    for shape in args.shapes.split(","):
        sizes, batch, target, ready_batches = SHAPES[shape]
        steps_per_round = args.steps_per_round * STEPS_FACTOR.get(shape, 1)
        if steps_per_round <= warm + 10:
            raise SystemExit(f"--steps-per-round gives {steps_per_round} steps for {shape}, not more than "
                             f"--warmup-steps {warm} + 10")
        model, opt, loader = _loop(sizes, batch, steps_per_round, ready_batches)

        def block(log_metric: bool = False, steps: int = steps_per_round) -> tuple[float, float]:
            """(steady us/step after the first ``warm`` steps, the training thread's CPU us/step then)."""
            t_warm = c_warm = 0.0
            for i, (x, y) in enumerate(loader):
                if i == steps:
                    break
                if i == warm:
                    t_warm, c_warm = time.perf_counter(), time.thread_time()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if log_metric:
                    mlflow.log_metric("loss", loss.item(), step=i)
            end, c_end = time.perf_counter(), time.thread_time()
            return (end - t_warm) / (steps - warm) * 1e6, (c_end - c_warm) / (steps - warm) * 1e6

        for _ in range(3):
            block()  # warm-up (imports, allocator)
        with mlflow.start_run():  # the store's destination and its writer process, up once for all rounds
            mlflow_monitor.log_metrics({"bench/warm": 0.0}, step=0)
            mlflow_monitor.flush(120)
        figures: dict[str, list[tuple[float, ...]]] = {arm: [] for arm in arms}
        runs: dict[str, list[str]] = {arm: [] for arm in arms}
        order_rng = random.Random(f"{shape}-order")
        for _ in range(args.rounds):
            order = arms[:]
            order_rng.shuffle(order)
            for arm in order:
                _, env, drop = ARMS[arm]
                if env is None:
                    p0 = time.process_time()
                    wall, cpu = block()
                    figures[arm].append((wall, cpu, (time.process_time() - p0) / steps_per_round * 1e6, 0.0))
                    continue
                mlflow_monitor.autolog(system_metrics=True, notify=False, health=False, silent=True,
                                       sklearn=False)
                with mlflow.start_run() as run:
                    writer = _use_writer_process(env == "1")
                    pids = {writer.pid} if env == "1" and writer.pid else set()
                    pipe = get_pipeline()
                    if drop:
                        pipe.push = lambda entry: None
                    p0, k0 = time.process_time(), _child_cpu_s(pids)
                    wall, cpu = block()
                    if drop:
                        pipe.push = pipe._buffer.append
                    mlflow_monitor.flush(120)
                    p1, k1 = time.process_time(), _child_cpu_s(pids)
                runs[arm].append(run.info.run_id)
                mlflow_monitor.autolog(disable=True, silent=True)
                figures[arm].append((wall, cpu, (p1 - p0) / steps_per_round * 1e6,
                                     (k1 - k0) / steps_per_round * 1e6))
        get_pipeline().flush(120)
        client = mlflow.MlflowClient()
        steps = args.rounds * steps_per_round
        med = {arm: [statistics.median(f[i] for f in figures[arm]) for i in range(4)] for arm in arms}
        base_walls = [f[0] for f in figures["off"]]
        for arm in arms:
            label, env, drop = ARMS[arm]
            wall, cpu, pcpu, kcpu = med[arm]
            if env is None or drop:
                stored, ok_points = "-", True
            else:
                present = sum(len(client.get_metric_history(r, k)) for r in runs[arm] for k in POINTS)
                expected = len(runs[arm]) * (4 * steps_per_round - 2)  # step time, samples/s from step 2
                stored, ok_points = f"{present} / {expected}", present == expected
            if arm == "off":
                ratio, extra, est = "-", "-", None
            else:
                est = estimate([f[0] / b - 1 for f, b in zip(figures[arm], base_walls)])
                ratio = f"{est.median * 100:+.1f}% ({est.low * 100:+.1f}..{est.high * 100:+.1f}%)"
                diff = estimate([f[0] - b for f, b in zip(figures[arm], base_walls)])  # the per-step cost itself
                extra = f"{diff.median:+.1f} ({diff.low:+.1f}..{diff.high:+.1f})"
            print(f"| {shape} | {label} | {steps} | {wall:.1f} | {ratio} | {extra} | {cpu:.1f} | {wall - cpu:.1f} | "
                  f"{pcpu:.1f} | {kcpu:.1f} | {stored} |")
            if env is not None and not drop and est is not None:
                status = verdict(est, target, higher_is_better=False)
                if not ok_points:
                    status = "NOT MET (points missing)"
                met = met and status == "MET" if arm == "proc" else met
                print(f"| {shape} | target <= {target * 100:.0f}% slower, every point stored ({label}) | | | "
                      f"{status} | | | | | | |")
        if shape == "mlp" and args.log_metric_steps:
            with mlflow.start_run():
                lm = block(log_metric=True, steps=args.log_metric_steps)[0]
            print(f"| {shape} | mlflow.log_metric per step | {args.log_metric_steps} | {lm:.1f} | "
                  f"{(lm / med['off'][0] - 1) * 100:+.0f}% (one round) | {lm - med['off'][0]:+.1f} (one round) | | | | | - |")
    print(f"\nuptime at start: {uptime_before}; at end: {_uptime()}")
    print(f"all targets (default arm, the writer process): {'MET' if met else 'NOT MET'}")
    return 0


def _uptime() -> str:
    try:
        import subprocess

        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        return f"load avg {os.getloadavg()}"


if __name__ == "__main__":
    sys.exit(main())

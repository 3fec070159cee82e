"""Benchmark: CPU per request of ``mlflow-monitor serve`` and ``mlflow models serve``, by
process and by thread.

    python benchmarks/serving_cpu.py                       # 10 s per point, 2 rounds, c1 and c16
    python benchmarks/serving_cpu.py --seconds 20 --concurrency 16 --rounds 3
    python benchmarks/serving_cpu.py --with-thread     # also ours with the Capture in the worker
    python benchmarks/serving_cpu.py --profile DIR     # py-spy collapsed stacks of each worker, per round

The same servers, model and load generator as ``serving_overhead.py``. Around each load
run the script reads ``/proc/<pid>/task/<tid>/stat`` (user + system CPU) of every process
in each server's process group, and divides the CPU used by the requests served. CPU per
request depends far less on the machine's load than throughput or p99 do, so it is the
figure to compare on a shared machine; on a CPU-bound machine (concurrency 16 on 2 cores
with the load generator beside the servers) throughput follows it. Threads are named as
``py-spy dump`` names them when ``--thread-names`` is given and py-spy is installed.
Linux only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving_overhead as so  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _group(pgid: int) -> list[int]:
    """Pids of the processes in process group ``pgid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            out.append(int(entry))
    return sorted(out)


def _threads(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (comm, user + system CPU seconds) of every thread of ``pid``."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / _TICK)  # utime, stime
    return out


def _snapshot(pids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    return {(pid, tid): v for pid in pids for tid, v in _threads(pid).items()}


def _py_names(pid: int) -> dict[int, str]:
    """Native tid -> Python thread name, from ``py-spy dump`` (empty without py-spy)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return {}
    try:
        text = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for m in re.finditer(r'^Thread (\d+) \(\w+\): "([^"]*)"', text, re.M):
        out[int(m.group(1))] = m.group(2)
    return out


def _record(pids: list[int], out: Path, seconds: float) -> list[subprocess.Popen]:
    """``py-spy record`` (collapsed stacks, sampled without stopping the process) of each of ``pids`` for ``seconds``."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--profile needs py-spy beside this interpreter: python -m pip install py-spy")
    return [subprocess.Popen([str(spy), "record", "--threads", "--format", "raw", "--rate", "250",
                              "--duration", str(int(seconds)), "--nonblocking", "--pid", str(pid),
                              "--output", str(out.with_name(f"{out.name}-{pid}.txt"))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def measure(seconds: float, rounds: int, concurrencies: list[int], thread_names: bool,
            profile: Path | None = None, window: str = "1h", warmup: float = 5.0, with_thread: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_serving_cpu_") as tmp:
        root = Path(tmp)
        tracking = f"sqlite:///{root / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_MONITOR_HOME": str(root / "home")}
        env.pop("MLFLOW_REGISTRY_URI", None)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        os.environ["MLFLOW_TRACKING_URI"] = tracking
        uri = so._register(tracking, root / "artifacts")
        p1, p2, p3 = so._free_port(), so._free_port(), so._free_port()
        servers = {
            "mlflow": ([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                        "-h", "127.0.0.1", "-p", str(p1), "-w", "1"], p1),
            "ours": ([sys.executable, "-m", "mlflow_monitor.cli", "serve", uri, "--host", "127.0.0.1",
                      "--port", str(p2), "--workers", "1", "--window", window], p2),
        }
        envs = {name: env for name in servers}
        if with_thread:  # the capture in the worker, as before the capture process
            servers["ours-thread"] = ([*servers["ours"][0][:7], "--port", str(p3), *servers["ours"][0][9:]], p3)
            envs["ours-thread"] = {**env, "MLFLOW_MONITOR_SERVE_CAPTURE": "thread"}
        procs = {}
        try:
            for name, (cmd, port) in servers.items():
                procs[name] = so._start(cmd, envs[name], port, root / f"{name}.log")
            for name in servers:  # first folds, lazy imports, first window: not in the figures
                so._load(f"http://127.0.0.1:{servers[name][1]}/invocations", 4, warmup)
            for conc in concurrencies:
                for i in range(rounds):
                    order = list(servers) if i % 2 == 0 else list(servers)[::-1]  # ABBA
                    for name in order:
                        pids = _group(procs[name].pid)
                        before = _snapshot(pids)
                        spies = (_record(pids[1:] or pids, profile / f"c{conc}-r{i + 1}-{name}", seconds)
                                 if profile else [])
                        client0 = time.process_time()
                        wall0 = time.perf_counter()
                        r = so._load(f"http://127.0.0.1:{servers[name][1]}/invocations", conc, seconds)
                        wall = time.perf_counter() - wall0
                        client = time.process_time() - client0
                        after = _snapshot(pids)
                        for spy in spies:
                            spy.wait(60)
                        n = r["n"] + 20 * conc  # the warm-up requests are inside the window too
                        per: dict[int, float] = {}
                        rows = []
                        for key, (comm, cpu) in after.items():
                            d = cpu - before.get(key, (comm, 0.0))[1]
                            per[key[0]] = per.get(key[0], 0.0) + d
                            if d > 0:
                                rows.append((d, key, comm))
                        total = sum(per.values())
                        print(f"\nc{conc} round {i + 1} {name}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, "
                              f"p99 {r['p99']:.2f} ms, {n} requests in {wall:.1f} s; server CPU "
                              f"{1e6 * total / n:.0f} us/request ({100 * total / wall:.0f}% of a core); client "
                              f"{1e6 * client / n:.0f} us/request; load {os.getloadavg()[0]:.2f}")
                        for pid in pids:
                            print(f"  pid {pid}{' (parent)' if pid == procs[name].pid else ''}: "
                                  f"{1e6 * per.get(pid, 0.0) / n:.0f} us/request")
                        names = {}
                        if thread_names:
                            for pid in pids:
                                names.update({(pid, t): s for t, s in _py_names(pid).items()})
                        for d, key, comm in sorted(rows, reverse=True)[:8]:
                            label = names.get(key, "")
                            print(f"    tid {key[1]} {comm} {label}: {1e6 * d / n:.1f} us/request")
        finally:
            for proc in procs.values():
                so._stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, action="append", help="repeatable; default 1 and 16")
    ap.add_argument("--thread-names", action="store_true", help="name threads with py-spy dump")
    ap.add_argument("--window", default="1h", help="ours: window granularity (default 1h: no window closes "
                    "inside a round; a close is a cost per window, not per request)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load per server before measuring")
    ap.add_argument("--with-thread", action="store_true",
                    help="also ours with MLFLOW_MONITOR_SERVE_CAPTURE=thread (the Capture in the worker)")
    ap.add_argument("--profile", type=Path, help="folder for py-spy collapsed stacks of the workers, per round")
    args = ap.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    measure(args.seconds, args.rounds, args.concurrency or [1, 16], args.thread_names, args.profile, args.window,
            args.warmup, args.with_thread)


if __name__ == "__main__":
    main()

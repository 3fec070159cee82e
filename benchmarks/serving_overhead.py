"""Benchmark: ``mlflow-monitor serve`` against ``mlflow models serve`` (the anchor), and the
cost of closing a window of 1M captured rows x 25 columns.

    python benchmarks/serving_overhead.py                 # 8 s per point, 6 rounds, with the A-A server
    python benchmarks/serving_overhead.py --quick         # 4 s per point, 5 rounds, 200k-row window
    python benchmarks/serving_overhead.py --seconds 10 --rounds 12 --no-aa

Both servers serve the same registered scikit-learn model (a LogisticRegression
pipeline on 3 columns) from the same sqlite store, one uvicorn worker each, on
127.0.0.1. A loopback load generator (threads with keep-alive ``requests`` sessions)
sends one-row ``dataframe_split`` requests at concurrency 1 and 16 for ``--seconds``;
the servers take turns, in an order shuffled each round, so a drift in machine load hits
all of them. A second ``mlflow models serve`` of the same model (the A-A server, unless
``--no-aa``) is measured against the first exactly as ours is: what it shows is the
benchmark's own resolution on this machine (its ratio should be 100%, its p99 delta 0).
Each point reports the best round of each server, and the median over rounds of the
paired figures (ours / MLflow's throughput, ours - MLflow's p99, measured back to back)
with a 95% bootstrap interval (``paired_stats.py``). Targets, against MLflow in the same
run: throughput >= 95 % of MLflow's, p99 <= MLflow's + 1 ms; MET when the whole interval
is within the target, NOT MET when it is wholly beyond, NOT RESOLVED when it straddles it.

The window-close part builds one window's state from 1M rows x 25 columns (20 numeric,
5 categorical) in 10k-row requests (the aggregator's folding, reported apart), then
times what closing costs in-process: the partial's state as JSON and its row sample as
Parquet (what a worker writes to its spool), reading both back and merging them (what
the closer does per partial), the window's metrics and its drift against a 50k-row
reference with the gate's engine. Target <= 2 s. MLflow's artifact upload is not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_stats import estimate, verdict  # noqa: E402

TARGET_THROUGHPUT, TARGET_P99_MS, TARGET_CLOSE_S = 0.95, 1.0, 2.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(tracking_uri: str, artifacts: Path) -> str:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    import mlflow_monitor

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench-serving", artifact_location=artifacts.as_uri()))
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.normal(loc=5.0, size=2000),
                        "c": rng.choice(["a", "b", "c"], 2000)})
    target = (ref["x"] + (ref["c"] == "a") > 0.5).astype(int)
    model = make_pipeline(ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["c"])],
                                            remainder="passthrough"), LogisticRegression()).fit(ref, target)
    with mlflow.start_run():
        mlflow_monitor.log_reference(ref)
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(ref, model.predict(ref)),
                                        pip_requirements=["scikit-learn"])
    mv = mlflow.register_model(info.model_uri, "bench-served")
    return f"models:/bench-served/{mv.version}"


def _start(cmd: list[str], env: dict, port: int, log: Path) -> subprocess.Popen:
    import requests

    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{cmd[:4]} did not answer /ping in 180 s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _load(url: str, concurrency: int, seconds: float) -> dict:
    import requests

    body = json.dumps({"dataframe_split": {"columns": ["x", "y", "c"], "data": [[0.3, 5.1, "a"]]}})
    headers = {"Content-Type": "application/json"}
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    deadline = [0.0]
    start = threading.Barrier(concurrency + 1)
    go = threading.Event()

    def worker(i: int) -> None:
        session = requests.Session()
        for _ in range(20):  # warm the connection and the server's path
            session.post(url, data=body, headers=headers, timeout=10)
        start.wait()
        go.wait()
        out = latencies[i]
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            r = session.post(url, data=body, headers=headers, timeout=10)
            out.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    go.set()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - t0
    every = sorted(x for part in latencies for x in part)
    n = len(every)
    return {"rps": n / elapsed, "p50": every[n // 2], "p99": every[min(n - 1, int(n * 0.99))], "n": n,
            "errors": sum(errors)}


ANCHOR, OURS, AA = "mlflow models serve", "mlflow-monitor serve", "mlflow models serve (A-A)"


def serving(seconds: float, rounds: int, aa: bool = True) -> dict:
    """Best round per server and concurrency, and per concurrency the paired figures of
    each server against the anchor: ``{"paired": {conc: {name: [(ratio, dp99), ...]}}}``."""
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        root = Path(tmp)
        tracking = f"sqlite:///{root / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_MONITOR_HOME": str(root / "home")}
        env.pop("MLFLOW_REGISTRY_URI", None)
        # `mlflow models serve` runs `uvicorn` from PATH: this interpreter's scripts
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        os.environ["MLFLOW_TRACKING_URI"] = tracking
        uri = _register(tracking, root / "artifacts")

        def mlflow_serve(port: int) -> list[str]:
            return [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(port), "-w", "1"]

        servers = {}
        p1, p2, p3 = _free_port(), _free_port(), _free_port()
        servers[ANCHOR] = (mlflow_serve(p1), p1)
        servers[OURS] = (
            [sys.executable, "-m", "mlflow_monitor.cli", "serve", uri, "--host", "127.0.0.1", "--port", str(p2),
             "--workers", "1", "--window", "5m"], p2)
        if aa:
            servers[AA] = (mlflow_serve(p3), p3)
        procs = {}
        try:
            for i, (name, (cmd, port)) in enumerate(servers.items()):
                procs[name] = _start(cmd, env, port, root / f"server{i}.log")
            results: dict = {name: {} for name in servers}
            paired: dict = {conc: {name: [] for name in servers if name != ANCHOR} for conc in (1, 16)}
            names = list(servers)
            order_rng = random.Random("serving-order")
            for _ in range(rounds):
                for conc in (1, 16):
                    order = names[:]
                    order_rng.shuffle(order)  # a load drift on the shared machine hits every server alike
                    got = {}
                    for name in order:
                        got[name] = r = _load(f"http://127.0.0.1:{servers[name][1]}/invocations", conc, seconds)
                        best = results[name].get(conc)
                        if best is None or r["rps"] > best["rps"]:
                            results[name][conc] = r
                    a = got[ANCHOR]
                    for name in paired[conc]:
                        b = got[name]
                        paired[conc][name].append((b["rps"] / a["rps"], b["p99"] - a["p99"]))
            results["paired"] = paired
            return results
        finally:
            for proc in procs.values():
                _stop(proc)


def window_close(rows: int) -> dict:
    import gc

    import numpy as np
    import pandas as pd

    from mlflow_monitor.gate.drift import compute_drift
    from mlflow_monitor.production.window_metrics import window_metrics
    from mlflow_monitor.windows import WindowKey, WindowState, id_hashes

    rng = np.random.default_rng(0)

    def frame(n: int, shift: float = 0.0) -> pd.DataFrame:
        cols = {f"num_{i:02d}": rng.normal(shift if i % 3 == 0 else 0.0, 1.0, n) for i in range(20)}
        for j in range(5):
            cols[f"cat_{j}"] = rng.choice([f"v{k}" for k in range(3 + 5 * j)], n)
        return pd.DataFrame(cols)

    reference = frame(50_000)
    state = WindowState(WindowKey("bench", "1", 1_764_583_200, 300))
    chunk = 10_000
    t0 = time.perf_counter()
    for start in range(0, rows, chunk):
        x = frame(chunk, 0.2)
        ids = [f"r{start + i}" for i in range(chunk)]
        preds = pd.DataFrame({"prediction": rng.integers(0, 2, chunk)})
        for i in range(chunk // 10):
            state.add_request(1.0 + i % 7, 200, 1_764_583_200.0 + i * 0.01)
        state.add_rows(x, preds, ids, id_hashes(ids))
    fold_s = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    blob = json.dumps(state.to_dict(), allow_nan=True)
    sample = state.sample.to_parquet()
    back = WindowState.from_dict(json.loads(blob), sample)
    merged = WindowState(back.key, sample_rows=back.sample.k)
    merged.merge(back)
    current = merged.sample_inputs()
    drift = compute_drift(reference, current)
    metrics = window_metrics(merged, drift)
    close_s = time.perf_counter() - t0
    return {"rows": rows, "columns": 25, "fold_s": fold_s, "close_s": close_s, "state_bytes": len(blob),
            "sample_bytes": len(sample), "sample_rows": len(merged.sample), "metrics": len(metrics),
            "drift_share": drift.drift_share}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-aa", action="store_true", help="skip the second MLflow server (the A-A resolution)")
    ap.add_argument("--skip-serving", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.rows = 4.0, 5, 200_000
    if args.rounds < 5 and not args.skip_serving:
        ap.error(f"--rounds must be at least 5 for an interval, got {args.rounds}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; python {platform.python_version()}")
    if not args.skip_serving:
        res = serving(args.seconds, args.rounds, aa=not args.no_aa)
        paired = res.pop("paired")
        print(f"\n| concurrency | server (best of {args.rounds} rounds of {args.seconds:g} s) | req/s | p50 ms | "
              f"p99 ms | errors |\n|---|---|---|---|---|---|")
        for conc in (1, 16):
            for name in res:
                r = res[name][conc]
                print(f"| {conc} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} |")
        print(f"\n| concurrency | against {ANCHOR} | throughput, median of paired rounds (95% interval) | "
              "target >= 95% | p99 delta ms (95% interval) | target <= +1 ms |\n|---|---|---|---|---|---|")
        for conc in (1, 16):
            for name, pairs in paired[conc].items():
                thr = estimate([r for r, _ in pairs])
                d99 = estimate([d for _, d in pairs])
                print(f"| {conc} | {name} | {thr.median:.1%} ({thr.low:.1%}..{thr.high:.1%}) | "
                      f"{verdict(thr, TARGET_THROUGHPUT, higher_is_better=True) if name == OURS else '-'} | "
                      f"{d99.median:+.2f} ({d99.low:+.2f}..{d99.high:+.2f}) | "
                      f"{verdict(d99, TARGET_P99_MS, higher_is_better=False) if name == OURS else '-'} |")
    w = window_close(args.rows)
    print(f"\nwindow of {w['rows']:,} rows x {w['columns']} columns: folding {w['fold_s']:.2f} s (aggregator, "
          f"apart); closing {w['close_s']:.3f} s (target <= {TARGET_CLOSE_S} s: "
          f"{'MET' if w['close_s'] <= TARGET_CLOSE_S else 'NOT MET'}); state {w['state_bytes']:,} B JSON, "
          f"sample {w['sample_rows']:,} rows {w['sample_bytes']:,} B Parquet, {w['metrics']} metrics, "
          f"drift share {w['drift_share']:.2f}")


if __name__ == "__main__":
    main()

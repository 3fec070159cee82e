"""Benchmark: what the gate's cross-replica lock and audit append add to a promotion.

    python benchmarks/gate_lock.py             # 100 promotions per variant
    python benchmarks/gate_lock.py -n 300

For each registry database -- sqlite (a file in a temp dir) and PostgreSQL
(127.0.0.1:5432, a private database ``mm_bench_<random>``, dropped afterwards) -- it times
100 alias promotions of one registered model, alternating two versions:

- **bare**: ``MlflowClient.set_registered_model_alias`` on the plain store (the anchor);
- **under the gate's lock**: the same write inside ``promotion_lock`` (PostgreSQL: a
  session-level ``pg_advisory_lock`` on a dedicated connection; sqlite: ``flock`` beside
  the database), with what the gate does there besides the evaluation: the champion
  re-read and the audit append (the hash-chained table in the same database).

The evaluation itself (data, drift, model scoring, report) is left out: it is the same on
every database and is measured by ``gate_drift.py``. Prints p50 and p99 in milliseconds
and the added latency (p50 and p99 of locked minus bare), uncontended.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _setup(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("bench")
    versions = [client.create_model_version("bench", f"file:///tmp/bench/{i}").version for i in range(2)]
    return client, [str(v) for v in versions]


def _bench(uri: str, n: int) -> dict[str, list[float]]:
    from mlflow_monitor.gate.audit import append_audit
    from mlflow_monitor.gate.promotion_lock import promotion_lock

    client, versions = _setup(uri)

    def bare(i: int) -> None:
        client.set_registered_model_alias("bench", "champion", versions[i % 2])

    def locked(i: int) -> None:
        with promotion_lock(uri, "bench", "alias:champion"):
            try:
                before = client.get_model_version_by_alias("bench", "champion").version
            except Exception:
                before = None
            client.set_registered_model_alias("bench", "champion", versions[i % 2])
            append_audit({"event": "verdict", "model_name": "bench", "version": versions[i % 2],
                          "target": "alias:champion", "verdict": "PASSED", "allowed": True,
                          "user": "bench", "champion_before": before}, store_uri=uri)

    out: dict[str, list[float]] = {"bare": [], "locked": []}
    for i in range(5):  # warm up: connections, the audit tables
        bare(i)
        locked(i)
    for i in range(n):  # interleaved, so drift in the machine's load hits both alike
        for name, fn in (("bare", bare), ("locked", locked)):
            t0 = time.perf_counter()
            fn(i)
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def _postgres_db() -> str:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    name = f"mm_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(f"{PG_SERVER}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return f"{PG_SERVER}/{name}"


def _drop_postgres(uri: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from mlflow_monitor.gate.audit_db import dispose_engines

    dispose_engines()
    engine = sa.create_engine(f"{PG_SERVER}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{uri.rsplit("/", 1)[1]}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="promotions per variant (default 100)")
    args = parser.parse_args()
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["MLFLOW_MONITOR_HOME"] = str(Path(tmp) / "home")
        results = {"sqlite": _bench(f"sqlite:///{Path(tmp) / 'registry.db'}", args.n)}
        try:
            pg = _postgres_db()
        except Exception as exc:
            print(f"PostgreSQL not reachable ({type(exc).__name__}); sqlite only", file=sys.stderr)
            pg = None
        if pg:
            try:
                results["postgresql"] = _bench(pg, args.n)
            finally:
                _drop_postgres(pg)
    for db, res in results.items():
        added = [lk - b for lk, b in zip(res["locked"], res["bare"])]
        rows.append((db, _pct(res["bare"], .5), _pct(res["bare"], .99), _pct(res["locked"], .5),
                     _pct(res["locked"], .99), statistics.median(added), _pct(added, .99)))
    print(f"\n{args.n} uncontended alias promotions per variant (ms)\n")
    print("| registry database | bare p50 | bare p99 | under lock + audit p50 | under lock + audit p99 "
          "| added p50 | added p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | " + " | ".join(f"{x:.2f}" for x in r[1:]) + " |")
    if len(rows) == 2:
        print(f"\nPostgreSQL lock + audit add {rows[1][5]:.2f} ms at p50 against {rows[0][5]:.2f} ms on sqlite.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One store's delivery: order, bisection of rejected points, outage spooling, backoff and replay."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from mlflow_monitor.metrics import MetricPoint
from mlflow_monitor.metrics.destination import Destination


class FakeSender:
    """Records delivered points; ``down`` makes every send fail like an unreachable server."""

    def __init__(self) -> None:
        self.delivered: list[MetricPoint] = []
        self.sends = 0
        self.down = False
        self.bad_keys: set[str] = set()
        self.missing_runs: set[str] = set()

    def send(self, run_id: str, points: list[MetricPoint]) -> None:
        self.sends += 1
        if self.down:
            raise MlflowException("API request failed with exception ConnectionRefusedError")
        if run_id in self.missing_runs:
            raise MlflowException(f"Run {run_id} not found", RESOURCE_DOES_NOT_EXIST)
        if any(p.key in self.bad_keys for p in points):
            raise MlflowException("Invalid metric name", INVALID_PARAMETER_VALUE)
        self.delivered.extend(points)


def _destination(tmp_path, rejected: list) -> tuple[Destination, FakeSender]:
    dest = Destination("http://store.invalid", lambda points, exc: rejected.extend(points), max_retry_interval_s=4.0)
    sender = dest.sender = FakeSender()  # type: ignore[assignment]
    return dest, sender


def _points(n: int, run_id: str = "r", key: str = "m", start: int = 0) -> list[MetricPoint]:
    return [MetricPoint(run_id, key, float(i), i, 1000 + i) for i in range(start, start + n)]


def test_points_are_delivered_in_order_in_batches_of_at_most_1000_per_run(tmp_path):
    rejected: list = []
    dest, sender = _destination(tmp_path, rejected)
    points = _points(1500) + _points(10, run_id="s")
    dest.accept(points, lambda: False)
    assert sender.delivered == points and sender.sends == 3 and not rejected


def test_a_rejected_point_is_isolated_and_its_neighbours_delivered(tmp_path):
    rejected: list = []
    dest, sender = _destination(tmp_path, rejected)
    sender.bad_keys = {"bad//name"}
    points = _points(8)
    points[5] = MetricPoint("r", "bad//name", 5.0, 5, 1005)
    dest.accept(points, lambda: False)
    assert rejected == [points[5]]
    assert sender.delivered == points[:5] + points[6:]


def test_a_missing_run_rejects_the_whole_chunk_at_once(tmp_path):
    rejected: list = []
    dest, sender = _destination(tmp_path, rejected)
    sender.missing_runs = {"gone"}
    dest.accept(_points(64, run_id="gone"), lambda: False)
    assert len(rejected) == 64 and sender.sends == 1  # no bisection down to single points


def test_an_outage_spools_the_points_and_new_ones_queue_behind_them_until_replayed_in_order(tmp_path):
    rejected: list = []
    dest, sender = _destination(tmp_path, rejected)
    sender.down = True
    dest.accept(_points(3), lambda: False)
    assert dest.outage and dest.backlog() and sender.delivered == []
    assert not dest.replay_due()  # backing off
    sender.down = False
    dest.accept(_points(2, start=3), lambda: False)  # behind the backlog, not before it
    assert sender.delivered == []
    dest.retry_now()
    assert dest.replay_due()
    dest.replay(lambda: False)
    assert sender.delivered == _points(5) and not dest.outage and not dest.backlog()
    assert dest.close() == []


def test_each_failed_replay_backs_off_longer_up_to_the_maximum(tmp_path):
    rejected: list = []
    dest, sender = _destination(tmp_path, rejected)
    sender.down = True
    dest.accept(_points(1), lambda: False)
    waits = []
    for _ in range(5):
        dest.retry_now()
        dest.replay(lambda: False)
        waits.append(round(dest._backoff.remaining_s(), 1))
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]  # 0.5 s after the first failure, then doubled, at most 4 s
    sender.down = False
    dest.retry_now()
    dest.replay(lambda: False)
    assert dest._backoff.ready() and sender.delivered == _points(1)
    dest.close()

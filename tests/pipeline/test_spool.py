"""The on-disk spool: MetricPoints in, the same points out, in order, one run per batch, exactly once."""

from __future__ import annotations

import json
import math

from mlflow_monitor.metrics import MetricPoint
from mlflow_monitor.metrics.spool import Spool


def _points(run_id: str, n: int, start: int = 0) -> list[MetricPoint]:
    return [MetricPoint(run_id, "m", float(i), i, 1000 + i) for i in range(start, start + n)]


def test_spooled_points_come_back_as_metric_points_one_run_per_batch_in_order(tmp_path):
    spool = Spool.create("sqlite:///x.db", tmp_path)
    spool.append(_points("a", 3) + _points("b", 2) + [MetricPoint("a", "nan", math.nan, 9, 9)])
    batches = []
    while spool.pending():
        points, offsets = spool.read_run_batch(1000)
        batches.append(points)
        spool.commit(offsets[-1])
    assert batches[:2] == [_points("a", 3), _points("b", 2)]
    (last,) = batches[2]
    assert type(last) is MetricPoint and last.key == "nan" and math.isnan(last.value)
    spool.close()
    assert not spool.path.exists()  # fully delivered: the file is removed


def test_the_file_format_is_a_header_then_one_json_row_per_point(tmp_path):
    spool = Spool.create("http://store", tmp_path)
    spool.append([MetricPoint("r", "loss", 0.5, 7, 1234)])
    header, row = spool.path.read_text().splitlines()
    assert json.loads(header)["tracking_uri"] == "http://store"
    assert json.loads(row) == ["r", "loss", 0.5, 1234, 7]  # [run_id, key, value, timestamp_ms, step]
    spool.close()


def test_a_partial_delivery_is_committed_exactly_and_the_rest_replays(tmp_path):
    spool = Spool.create("u", tmp_path)
    spool.append(_points("a", 5))
    points, offsets = spool.read_run_batch(1000)
    spool.commit(offsets[1])  # the first two were delivered
    assert spool.read_run_batch(1000)[0] == _points("a", 3, start=2)
    assert spool.pending_points() == 3
    spool.close()


def test_a_spool_left_by_a_dead_process_is_adopted_with_its_uri_and_offset(tmp_path):
    spool = Spool.create("http://store", tmp_path)
    spool.append(_points("a", 4))
    _, offsets = spool.read_run_batch(1000)
    spool.commit(offsets[0])
    spool._fh.close()  # the process died: its lock is gone, the file and the offset stay
    (orphan,) = Spool.adopt_orphans(tmp_path)
    assert orphan.tracking_uri == "http://store"
    assert orphan.read_run_batch(1000)[0] == _points("a", 3, start=1)
    orphan.close()


def test_a_corrupt_or_malformed_line_is_skipped_with_a_warning(tmp_path, caplog):
    spool = Spool.create("u", tmp_path)
    spool.append(_points("a", 1))
    with open(spool.path, "ab") as fh:
        fh.write(b"{not json\n")
        fh.write(b'["a", "m", 1.0]\n')  # JSON, but not a point row
    spool.close()  # (not fully delivered: kept)
    (orphan,) = Spool.adopt_orphans(tmp_path)
    first, offsets = orphan.read_run_batch(1000)
    orphan.commit(offsets[-1])
    rest, _ = orphan.read_run_batch(1000)
    assert first == _points("a", 1) and rest == []
    assert "corrupt line" in caplog.text
    orphan.close()

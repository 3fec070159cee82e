"""Evidence signatures (``mlflow_monitor.windows.signing``): what a signature binds (bytes,
run, path, key), how the key is configured (and refused), and the closer and readers with
a key: partials written without it (an editor of the experiment) are not merged and not
read, the merged rows are signed, and nothing loops. Real sqlite store."""

from __future__ import annotations

import json
import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers.production import register_version

from mlflow_monitor.production import PROD_RUN_TAG, Capture, WindowCloser
from mlflow_monitor.windows.signing import (ENV_KEY, ENV_KEY_FILE, EvidenceKey, EvidenceKeyError, evidence_key,
                                            log_signed_artifact, signature_path)
from mlflow_monitor.windows.stored import StoredWindow, read_window_labels, read_window_rows

SECRET = "0123456789abcdef" * 4  # 64 bytes
PATH = "mlflow_monitor/prod/windows/2025-12-01/20251201T100000Z-1s/rows.parquet"


def test_a_signature_holds_only_for_its_bytes_run_path_and_key():
    key = EvidenceKey(SECRET.encode())
    sidecar = key.sign("run1", PATH, b"rows")
    assert key.verify("run1", PATH, b"rows", sidecar) is None
    assert key.verify("run1", f"/{PATH}", b"rows", sidecar) is None  # the same artifact path, spelled otherwise
    assert "changed" in key.verify("run1", PATH, b"rowz", sidecar)
    assert "another run or path" in key.verify("run2", PATH, b"rows", sidecar)
    assert "another run or path" in key.verify("run1", PATH.replace("100000Z", "100001Z"), b"rows", sidecar)
    assert "another key" in EvidenceKey(b"x" * 32).verify("run1", PATH, b"rows", sidecar)
    assert key.verify("run1", PATH, b"rows", None) == "no signature"
    assert "unreadable" in key.verify("run1", PATH, b"rows", b"\xff{not json")
    # crafted fields never raise (a TypeError would fail the gate's whole read, or set a window aside)
    for field, value in (("mac", "\u00e9" * 64), ("sha256", "\u00e9" * 64), ("mac", 7), ("sha256", None),
                         ("mac", "A" * 64)):
        crafted = {**json.loads(sidecar), field: value}
        assert key.verify("run1", PATH, b"rows", json.dumps(crafted).encode()) == "an unreadable signature"
    assert key.verify("run1", PATH, b"rows", b"[1, 2]") == "an unreadable signature"
    # an editor who knows the format but not the key: a recomputed digest, a guessed MAC
    forged = json.loads(sidecar)
    forged["sha256"], forged["mac"] = __import__("hashlib").sha256(b"rowz").hexdigest(), "0" * 64
    assert "another run or path" in key.verify("run1", PATH, b"rowz", json.dumps(forged).encode())
    # the secret is in neither the sidecar nor the repr
    assert SECRET not in sidecar.decode() and SECRET not in repr(key) and key.key_id in repr(key)


def test_the_key_is_configured_by_value_or_owner_only_file_and_refused_clearly(tmp_path):
    assert evidence_key({}) is None
    assert evidence_key({ENV_KEY: f"  {SECRET}\n"}).key_id == EvidenceKey(SECRET.encode()).key_id
    with pytest.raises(EvidenceKeyError, match=f"{ENV_KEY}: the evidence key must be at least 32 bytes; got 6") as info:
        evidence_key({ENV_KEY: "s3cret"})
    assert "s3cret" not in str(info.value)
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(EvidenceKeyError, match="mode 0644: it must be readable by its owner only"):
        evidence_key({ENV_KEY_FILE: str(path)})
    os.chmod(path, 0o600)
    assert evidence_key({ENV_KEY_FILE: str(path)}).key_id == EvidenceKey(SECRET.encode()).key_id
    with pytest.raises(EvidenceKeyError, match="both"):
        evidence_key({ENV_KEY: SECRET, ENV_KEY_FILE: str(path)})
    with pytest.raises(EvidenceKeyError, match="cannot be read"):
        evidence_key({ENV_KEY_FILE: str(tmp_path / "missing")})
    with pytest.raises(EvidenceKeyError, match="not a regular file"):
        evidence_key({ENV_KEY_FILE: str(tmp_path)})


def test_a_bad_key_stops_capture_before_anything_is_captured(tmp_path, monkeypatch):
    name, version, _ = register_version("signed-bad-key")
    monkeypatch.setenv(ENV_KEY, "short")
    with pytest.raises(EvidenceKeyError, match=f"{ENV_KEY}: the evidence key must be at least 32 bytes"):
        Capture(name, version, window="1s", state_dir=tmp_path)


def _rows(rng, n):
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(loc=5.0, size=n),
                         "c": rng.choice(["a", "b", "c"], n)})


def test_the_closer_merges_only_signed_partials_and_readers_with_the_key_skip_the_rest(tmp_path, clock,
                                                                                        monkeypatch):
    name, version, _ = register_version("signed-windows")
    rng = np.random.default_rng(11)
    monkeypatch.setenv(ENV_KEY, SECRET)
    good = Capture(name, version, window="1s", state_dir=tmp_path / "good", clock=clock, worker_id="good",
                   close_windows=False)
    monkeypatch.delenv(ENV_KEY)  # an editor of the experiment: same run, no key
    evil = Capture(name, version, window="1s", state_dir=tmp_path / "evil", clock=clock, worker_id="evil",
                   close_windows=False)
    monkeypatch.setenv(ENV_KEY, SECRET)
    try:
        clock.now = 1_764_583_200.3
        real, fake = _rows(rng, 6), _rows(rng, 40) * 0
        real_ids = good.record(real, np.zeros(6, dtype=int), latency_ms=1.0)
        fake_ids = evil.record(fake.assign(c="zzz"), np.ones(40, dtype=int), latency_ms=1.0)
        clock.now += 10
        assert good.flush(30) and evil.flush(30)
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        folder = "mlflow_monitor/prod/partials/2025-12-01/20251201T100000Z-1s"
        names = sorted(e.path.rsplit("/", 1)[1] for e in client.list_artifacts(run_id, folder))
        assert names == ["evil__000000.json", "evil__000000.parquet", "good__000000.json",
                         "good__000000.json.sig", "good__000000.parquet", "good__000000.parquet.sig"]
        closer = WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock, late_s=5)
        assert closer.run_once() == 1 and closer.partials_rejected == 1
        summary_dir = "mlflow_monitor/prod/windows/2025-12-01/20251201T100000Z-1s"
        summary = json.loads(open(client.download_artifacts(run_id, f"{summary_dir}/summary.json")).read())
        assert summary["partials"] == ["good__000000"] and summary["rejected"] == ["evil__000000"]
        assert summary["signed"] is True and summary["state"]["rows"] == 6  # the 40 forged rows: not merged
        assert "zzz" not in json.dumps(summary["state"]["columns"]["c"])
        window = StoredWindow(1_764_583_200, 1)
        ignored: list[str] = []
        key = evidence_key()
        assert sorted(read_window_rows(client, run_id, window, key=key, ignored=ignored)["__prediction_id"]) == \
            sorted(real_ids)
        assert ignored == [f"{folder}/evil__000000.parquet (no signature)"]
        # without the key (prod status, log_labels) every stored row is read, as before
        assert len(read_window_rows(client, run_id, window)) == 46
        # the next pass (the late check over, late_s=5): the signed partials and their signatures
        # are pruned, the forged one stays (kept, never merged: it is not merged again and again)
        assert closer.run_once() == 0
        assert sorted(e.path.rsplit("/", 1)[1] for e in client.list_artifacts(run_id, folder)) == \
            ["evil__000000.json", "evil__000000.parquet"]
        assert closer.run_once() == 0
        assert sorted(read_window_rows(client, run_id, window, key=key)["__prediction_id"]) == sorted(real_ids)
        # a late signed partial merges onto the (verified) stored window; the forged one stays rejected
        late_ids = good.record(_rows(rng, 3), [0, 0, 0], latency_ms=1.0, timestamp=1_764_583_200.5)
        assert good.flush(30)
        closer.hint(_key(name, version))
        assert closer.run_once() == 1
        summary = json.loads(open(client.download_artifacts(run_id, f"{summary_dir}/summary.json")).read())
        assert summary["partials"] == ["good__000000", "good__000001"] and summary["rejected"] == ["evil__000000"]
        assert summary["state"]["rows"] == 9
        real_ids = real_ids + late_ids
        assert sorted(read_window_rows(client, run_id, window, key=key)["__prediction_id"]) == sorted(real_ids)
        # the editor overwrites the merged rows with its own: the gate's reader drops them (hiding
        # traffic is possible, inventing it is not)
        forged = tmp_path / "rows.parquet"
        pd.DataFrame({"__prediction_id": fake_ids, "x": 0.0}).to_parquet(forged)
        client.log_artifact(run_id, str(forged), summary_dir)
        ignored = []
        # (the late partial, not pruned yet, still counts: the six rows only the merged file held do not)
        assert sorted(read_window_rows(client, run_id, window, key=key, ignored=ignored)["__prediction_id"]) == \
            sorted(late_ids)
        assert [i.partition(" (")[2] for i in ignored] == ["a signature of other bytes (the file was changed))",
                                                           "no signature)"]
        # ... and a closer never merges late partials onto a stored window it cannot verify
        late = good.record(_rows(rng, 2), [0, 0], latency_ms=1.0, timestamp=1_764_583_200.5)
        assert good.flush(30) and late
        closer.hint(_key(name, version))
        assert closer.run_once() == 0
        # the secret is in no artifact of the run, nor in the state files on disk
        every = client.download_artifacts(run_id, "", str(tmp_path / "all"))
        for root in (every, tmp_path / "good"):
            for path in __import__("pathlib").Path(root).rglob("*"):
                assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    finally:
        good.close(10)
        evil.close(10)


def test_a_forged_summary_or_a_keyless_closer_never_rewrites_or_prunes_a_signed_window(tmp_path, clock, monkeypatch,
                                                                                        caplog):
    name, version, _ = register_version("signed-summary")
    rng = np.random.default_rng(4)
    monkeypatch.setenv(ENV_KEY, SECRET)
    worker = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id="w", close_windows=False)
    try:
        clock.now = 1_764_583_200.3
        ids = worker.record(_rows(rng, 5), np.zeros(5, dtype=int), latency_ms=1.0)
        clock.now += 10
        assert worker.flush(30)
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        assert WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock).run_once() == 1
        folder = "mlflow_monitor/prod/partials/2025-12-01/20251201T100000Z-1s"
        summary_dir = "mlflow_monitor/prod/windows/2025-12-01/20251201T100000Z-1s"
        # an editor replaces the summary with one that lists the partials as merged "already"
        forged = json.loads(open(client.download_artifacts(run_id, f"{summary_dir}/summary.json")).read())
        forged["partials"], forged["state"]["rows"] = ["w__000000", "w__000009"], 1
        path = tmp_path / "summary.json"
        path.write_text(json.dumps(forged))
        client.log_artifact(run_id, str(path), summary_dir)
        late = worker.record(_rows(rng, 2), [0, 0], latency_ms=1.0, timestamp=1_764_583_200.5)
        assert worker.flush(30)
        closer = WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock, late_s=5)
        closer.hint(_key(name, version))
        assert closer.run_once() == 0  # not merged onto a forged summary ...
        clock.now += 30
        closer.run_once()  # ... and its signed partials are not pruned on the forged summary's word
        assert len(client.list_artifacts(run_id, folder)) == 8
        assert "summary.json has a signature of other bytes" in caplog.text
        window = StoredWindow(1_764_583_200, 1)
        assert sorted(read_window_rows(client, run_id, window, key=evidence_key())["__prediction_id"]) == \
            sorted(ids + late)
        # a closer without the key never writes an unsigned merge over a signed window
        client.log_artifact(run_id, client.download_artifacts(run_id, f"{summary_dir}/summary.json.sig",
                                                              str(tmp_path / "sig")), summary_dir)
        monkeypatch.delenv(ENV_KEY)
        keyless = WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock, late_s=5)
        keyless.hint(_key(name, version))
        assert keyless.run_once() == 0
        assert "merged with the evidence key, and this closer has none" in caplog.text
    finally:
        worker.close(10)


def test_signed_labels_count_and_unsigned_ones_do_not(tmp_path, clock, monkeypatch):
    import mlflow_monitor

    name, version, _ = register_version("signed-labels")
    monkeypatch.setenv(ENV_KEY, SECRET)
    rng = np.random.default_rng(2)
    rows = _rows(rng, 8)
    ids = mlflow_monitor.log_predictions(rows, np.zeros(8, dtype=int), model_uri=f"models:/{name}/{version}",
                                         timestamps=1_764_583_200.0, window="1h")
    mlflow_monitor.log_labels(f"models:/{name}/{version}", dict.fromkeys(ids[:4], 0), now=1_764_583_300.0)
    monkeypatch.delenv(ENV_KEY)
    mlflow_monitor.log_labels(f"models:/{name}/{version}", dict.fromkeys(ids[4:], 1), now=1_764_583_300.0)
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
    window = StoredWindow(1_764_583_200, 3600)
    labels, batches = read_window_labels(client, run_id, window)
    assert batches == 2 and len(labels) == 8
    ignored: list[str] = []
    labels, batches = read_window_labels(client, run_id, window, key=EvidenceKey(SECRET.encode()), ignored=ignored)
    assert batches == 1 and sorted(labels["id"]) == sorted(ids[:4]) and len(ignored) == 1


def test_log_signed_artifact_uploads_the_signature_first(tmp_path):
    calls = []

    class Client:
        def log_artifact(self, run_id, local, folder):
            calls.append((os.path.basename(local), open(local, "rb").read()))

    data = tmp_path / "rows.parquet"
    data.write_bytes(b"rows")
    key = EvidenceKey(SECRET.encode())
    log_signed_artifact(Client(), "run1", str(data), "a/b", key)
    assert [c[0] for c in calls] == [signature_path("rows.parquet"), "rows.parquet"]
    assert key.verify("run1", "a/b/rows.parquet", b"rows", calls[0][1]) is None
    calls.clear()
    log_signed_artifact(Client(), "run1", str(data), "a/b", None)
    assert [c[0] for c in calls] == ["rows.parquet"]


def _key(name, version):
    from mlflow_monitor.windows import WindowKey

    return WindowKey(name, str(version), 1_764_583_200, 1)


def test_planted_files_an_editor_shapes_oddly_are_ignored_quickly_never_raised(tmp_path):
    """A folder named ``rows.parquet`` or like a partial, and an unsigned ``rows.parquet``:
    with the key each is one ignored file (not an exception an ``on_error: allow`` gate
    would pass), and only a signature of other bytes (a re-merge in progress) is waited for."""
    import time

    client = mlflow.MlflowClient()
    run_id = client.create_run("0").info.run_id
    window = StoredWindow(1_764_583_200, 60)
    key = EvidenceKey(SECRET.encode())
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "x.txt").write_text("x")
    client.log_artifacts(run_id, str(odd), f"{window.folder('mlflow_monitor/prod/windows')}/rows.parquet")
    partials = window.folder("mlflow_monitor/prod/partials")
    client.log_artifacts(run_id, str(odd), f"{partials}/w__000000.parquet")
    (tmp_path / "w__000000.json").write_text("{}")
    client.log_artifact(run_id, str(tmp_path / "w__000000.json"), partials)
    ignored: list[str] = []
    assert read_window_rows(client, run_id, window, key=key, ignored=ignored).empty
    assert sorted(i.rsplit(" (", 1)[1] for i in ignored) == ["unreadable: IsADirectoryError)"] * 2
    # an unsigned rows.parquet is ignored at once, even with a re-read wait allowed
    other = StoredWindow(1_764_583_260, 60)
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"__prediction_id": ["a"], "x": [1.0]}).to_parquet(path)
    client.log_artifact(run_id, str(path), other.folder("mlflow_monitor/prod/windows"))
    started = time.monotonic()
    assert read_window_rows(client, run_id, other, key=key, retry_wait_s=5.0).empty
    assert time.monotonic() - started < 4.0
    assert len(read_window_rows(client, run_id, other)) == 1  # without the key: read as stored

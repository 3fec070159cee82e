"""The promotion lock is the registry database's own: other connections and processes wait."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from sqlalchemy.pool import NullPool

from mlflow_monitor.gate import promotion_lock as lock_module
from mlflow_monitor.gate.promotion_lock import promotion_lock
from helpers.gate import overlapping_promotions


def _hold(uri: str, name: str, target: str, held, release) -> None:
    from mlflow_monitor.gate.promotion_lock import promotion_lock as lock

    with lock(uri, name, target):
        held.set()
        release.wait(60)


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def db_uri(request, tmp_path):
    from helpers.databases import drop_database, new_database

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    uri = new_database(request.param)
    yield uri
    drop_database(uri)


@pytest.mark.slow
def test_a_promotion_held_in_another_process_makes_this_one_wait_then_409(db_uri, monkeypatch):
    monkeypatch.setattr(lock_module, "LOCK_TIMEOUT_S", 1.0)
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(db_uri, "m", "alias:champion", held, release))
    proc.start()
    try:
        assert held.wait(120)
        with pytest.raises(MlflowException, match="another promotion of model 'm' to alias:champion") as info:
            with promotion_lock(db_uri, "m", "alias:champion"):
                pass
        assert info.value.error_code == "RESOURCE_CONFLICT"
        with promotion_lock(db_uri, "m", "alias:shadow"):  # another target is not held up
            pass
    finally:
        release.set()
        proc.join(60)
    with promotion_lock(db_uri, "m", "alias:champion"):  # released with the holder
        pass


def test_postgres_lock_is_a_session_advisory_lock_held_outside_any_transaction(postgres_uri):
    engine = sa.create_engine(postgres_uri, poolclass=NullPool)
    with promotion_lock(postgres_uri, "m", "alias:champion"):
        with engine.connect() as conn:
            locks = conn.execute(sa.text(
                "SELECT l.granted, a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND a.datname = current_database()")).all()
    engine.dispose()

    assert [tuple(r) for r in locks] == [(True, "idle")]  # one lock, its session not in a transaction


def test_threads_on_a_database_lock_take_turns(postgres_uri):
    assert overlapping_promotions(postgres_uri) == 0


def test_sqlite_lock_file_lives_beside_the_database_not_in_the_monitor_home(tmp_path):
    uri = f"sqlite:///{tmp_path / 'registry.db'}"

    with promotion_lock(uri, "m", "alias:champion"):
        pass

    assert list((tmp_path / ".registry.db.mlflow-monitor-locks").glob("*.lock"))
    assert not (tmp_path / "monitor_home" / "locks").exists()

"""The registry contract of the ``monitor:`` store.

1. Every public method of MLflow's registry ``AbstractStore`` is classified as forwarded,
   gated or guarded (:mod:`mlflow_monitor.gate.store_methods`), so a newer MLflow cannot
   add a promotion path that bypasses the gate unnoticed.
2. With no recipe, ``monitor:`` behaves exactly like the store it wraps: one sequence of
   registry calls (models, versions, tags, aliases, stages, search with pagination,
   prompts, webhooks, and error cases) gives the same results and the same error codes on
   the stock store and on ``monitor:`` over the same kind of database (sqlite, PostgreSQL,
   MariaDB).
"""

from __future__ import annotations

import inspect

import pytest
from mlflow.store.model_registry.abstract_store import AbstractStore

from mlflow_monitor.gate import store_methods
from mlflow_monitor.gate.registry_store import MonitorRegistryStore
from mlflow_monitor.mlflow_compat import MLFLOW_VERSION


def _public_methods(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_every_abstract_store_method_is_classified():
    unclassified = sorted(_public_methods(AbstractStore) - set(store_methods.METHODS))
    assert not unclassified, (
        f"AbstractStore has registry methods the monitor: store has not classified: {unclassified}; "
        "add each to mlflow_monitor.gate.store_methods (forwarded, gated or guarded) and implement "
        "the gated/guarded ones on MonitorRegistryStore")


@pytest.mark.skipif(MLFLOW_VERSION < (3, 17), reason="an older MLflow lacks methods added later (3.3.2: "
                    "supports_workspaces); the classification is kept against the pinned MLflow")
def test_no_classified_method_is_missing_from_abstract_store():
    stale = sorted(set(store_methods.METHODS) - _public_methods(AbstractStore))
    assert not stale, f"classified but not in this MLflow's AbstractStore: {stale}"


def test_classification_names_the_planned_gated_and_guarded_methods():
    gated = {m for m, c in store_methods.METHODS.items() if c == store_methods.GATED}
    guarded = {m for m, c in store_methods.METHODS.items() if c == store_methods.GUARDED}
    assert gated == {"set_registered_model_alias", "transition_model_version_stage",
                     "create_model_version", "copy_model_version", "set_prompt_alias"}
    assert {"set_registered_model_tag", "delete_registered_model_tag", "set_model_version_tag",
            "delete_model_version_tag", "rename_registered_model", "delete_registered_model",
            "delete_model_version"} <= guarded


def test_unclassified_method_lookup_names_the_method():
    with pytest.raises(KeyError, match="frobnicate_model"):
        store_methods.classification_of("frobnicate_model")


def test_every_gated_or_guarded_method_is_implemented_by_the_monitor_store():
    # forwarded methods reach the inner store through __getattr__; the others must be
    # defined on the wrapper itself, or the inner store would run them ungated
    missing = sorted(m for m, c in store_methods.METHODS.items()
                     if c != store_methods.FORWARDED and m not in vars(MonitorRegistryStore))
    assert not missing, f"gated/guarded but forwarded as is: {missing}"


def test_forwarded_methods_are_not_shadowed_by_the_monitor_store():
    shadowed = sorted(m for m, c in store_methods.METHODS.items()
                      if c == store_methods.FORWARDED and m in vars(MonitorRegistryStore)
                      and inspect.isfunction(vars(MonitorRegistryStore)[m]))
    assert not shadowed, f"classified as forwarded but overridden (reclassify them): {shadowed}"


# ---------------------------------------------------------------------------------------
# Differential test: the same calls on the stock store and on monitor: (no recipe)
# ---------------------------------------------------------------------------------------
import contextlib  # noqa: E402
import enum  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import uuid  # noqa: E402
from typing import Any, Iterator  # noqa: E402

from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

_UUID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME_KEY = re.compile(r"time|timestamp", re.I)


def _plain(value: Any, ids: dict[str, str]) -> Any:
    """A comparable form of a store result: entities as dicts of their public properties,
    timestamps dropped, generated ids numbered in order of appearance."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        return _UUID.sub(lambda m: ids.setdefault(m.group(0), f"<id{len(ids)}>"), value)
    if isinstance(value, dict):
        return {k: ("<time>" if _TIME_KEY.search(str(k)) else _plain(v, ids))
                for k, v in sorted(value.items())}
    if isinstance(value, list) and hasattr(value, "token"):  # PagedList: items and the token
        return {"items": [_plain(v, ids) for v in value], "token": _plain(value.token, ids)}
    if isinstance(value, (list, tuple)):
        return [_plain(v, ids) for v in value]
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    cls = type(value)
    props = {n: getattr(value, n) for n in dir(cls)
             if not n.startswith("_") and isinstance(inspect.getattr_static(cls, n), property)}
    return {"__type__": cls.__name__, **_plain(props, ids)}


class _Recorder:
    """Calls ``store`` methods, recording each result or error code."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.log: list[tuple[str, Any]] = []
        self.called: set[str] = set()
        self._ids: dict[str, str] = {}

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.called.add(method)
        try:
            attr = getattr(self.store, method)
            result = attr(*args, **kwargs) if callable(attr) else attr
        except MlflowException as exc:
            self.log.append((method, {"error": exc.error_code}))
            return None
        except NotImplementedError:
            self.log.append((method, {"error": "NotImplementedError"}))
            return None
        self.log.append((method, _plain(result, self._ids)))
        return result


def _scenario(call: _Recorder) -> None:
    """One sequence touching every AbstractStore method, with error cases."""
    from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent

    # registered models
    call("create_registered_model", "m1", tags=[RegisteredModelTag("team", "a")], description="first")
    call("create_registered_model", "m1")  # duplicate
    call("create_registered_model", "")  # bad name
    call("create_registered_model", "m2")
    call("create_registered_model", "m3", description="third")
    call("get_registered_model", "m1")
    call("get_registered_model", "missing")
    call("update_registered_model", "m1", "updated")
    call("update_registered_model", "missing", "x")
    call("set_registered_model_tag", "m1", RegisteredModelTag("k", "v"))
    call("set_registered_model_tag", "missing", RegisteredModelTag("k", "v"))
    call("delete_registered_model_tag", "m1", "k")
    call("delete_registered_model_tag", "m1", "never-set")
    # versions
    for i in range(3):
        call("create_model_version", "m1", f"s3://bucket/m1/{i}", None,
             [ModelVersionTag("i", str(i))], None, f"version {i}")
    call("create_model_version", "missing", "s3://bucket/x")
    call("create_model_version", "m2", "s3://bucket/m2/0")
    call("get_model_version", "m1", "2")
    call("get_model_version", "m1", "99")
    call("get_model_version", "m1", "not-a-number")
    call("update_model_version", "m1", "2", "described")
    call("update_model_version", "m1", "99", "x")
    call("set_model_version_tag", "m1", "1", ModelVersionTag("t", "1"))
    call("set_model_version_tag", "m1", "99", ModelVersionTag("t", "1"))
    call("delete_model_version_tag", "m1", "1", "t")
    call("delete_model_version_tag", "m1", "1", "never-set")
    call("get_model_version_download_uri", "m1", "1")
    call("get_model_version_download_uri", "m1", "99")
    # aliases
    call("set_registered_model_alias", "m1", "champion", "1")
    call("set_registered_model_alias", "m1", "champion", "2")  # move it
    call("set_registered_model_alias", "m1", "challenger", "3")
    call("set_registered_model_alias", "m1", "champion", "99")  # missing version
    call("set_registered_model_alias", "m1", "latest", "1")  # reserved alias
    call("set_registered_model_alias", "m1", "v7", "1")  # reserved pattern
    call("set_registered_model_alias", "missing", "champion", "1")
    call("get_model_version_by_alias", "m1", "champion")
    call("get_model_version_by_alias", "m1", "nobody")
    call("delete_registered_model_alias", "m1", "challenger")
    call("delete_registered_model_alias", "m1", "nobody")
    # stages
    call("transition_model_version_stage", "m1", "1", "Staging", False)
    call("transition_model_version_stage", "m1", "2", "production", True)
    call("transition_model_version_stage", "m1", "3", "Production", True)
    call("transition_model_version_stage", "m1", "3", "Sideways", False)
    call("transition_model_version_stage", "m1", "99", "Production", False)
    call("get_latest_versions", "m1")
    call("get_latest_versions", "m1", ["Production", "Staging"])
    call("get_latest_versions", "m1", ["Sideways"])
    call("get_latest_versions", "missing")
    # search with pagination
    token, pages = None, 0
    while pages < 10:
        page = call("search_registered_models", None, 1, ["name ASC"], token)
        pages += 1
        token = getattr(page, "token", None)
        if not token:
            break
    call("search_registered_models", "name LIKE 'm%'", 10, ["name DESC"], None)
    call("search_registered_models", "name ~ 'bad'", 10, None, None)  # bad filter
    call("search_registered_models", None, 0, None, None)  # bad max_results
    call("search_registered_models", None, 10, None, "not-a-token")
    token, pages = None, 0
    while pages < 10:
        page = call("search_model_versions", "name = 'm1'", 2, ["version_number DESC"], token)
        pages += 1
        token = getattr(page, "token", None)
        if not token:
            break
    call("search_model_versions", "tags.i = '1'", 10, None, None)
    call("search_model_versions", "nonsense ===", 10, None, None)
    # rename, copy, delete
    call("rename_registered_model", "m3", "m3-renamed")
    call("rename_registered_model", "m2", "m1")  # taken
    call("rename_registered_model", "missing", "x")
    src = call("get_model_version", "m1", "1")
    call("copy_model_version", src, "m4")  # creates m4
    call("copy_model_version", src, "m2")  # into an existing model
    call("get_registered_model", "m4")
    call("delete_model_version", "m1", "3")
    call("delete_model_version", "m1", "3")  # already gone
    call("delete_registered_model", "m3-renamed")
    call("delete_registered_model", "m3-renamed")
    # prompts
    call("create_prompt", "p1", description="a prompt", tags={"owner": "me"})
    call("create_prompt", "p1")
    call("create_prompt_version", "p1", "Hello {{name}}", description="v1", tags={"lang": "en"})
    call("create_prompt_version", "p1", "Hi {{name}}!")
    call("create_prompt_version", "missing-prompt", "x")
    call("get_prompt", "p1")
    call("get_prompt", "missing-prompt")
    call("get_prompt_version", "p1", 1)
    call("get_prompt_version", "p1", 9)
    call("set_prompt_alias", "p1", "production", 1)
    call("set_prompt_alias", "p1", "production", 9)
    call("get_prompt_version_by_alias", "p1", "production")
    call("delete_prompt_alias", "p1", "production")
    call("get_prompt_version_by_alias", "p1", "production")
    call("set_prompt_tag", "p1", "k", "v")
    call("delete_prompt_tag", "p1", "k")
    call("set_prompt_version_tag", "p1", 1, "k", "v")
    call("delete_prompt_version_tag", "p1", 1, "k")
    call("search_prompts", None, 10, None, None)
    call("search_prompts", "name LIKE 'p%'", 1, None, None)
    call("search_prompt_versions", "p1", 1, None)
    call("link_prompt_version_to_model", "p1", "1", "m-" + "0" * 32)
    call("link_prompt_version_to_run", "p1", "1", "0" * 32)
    pv = call("get_prompt_version", "p1", 2)
    call("link_prompts_to_trace", [pv] if pv is not None else [], "tr-" + "0" * 32)
    call("delete_prompt_version", "p1", 2)
    call("delete_prompt_version", "p1", 2)
    call("delete_prompt", "p1")
    call("delete_prompt", "p1")
    # webhooks
    events = [WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)]
    hook = call("create_webhook", "hook-a", "https://127.0.0.1:9/hook", events, description="a")
    call("create_webhook", "hook-b", "https://127.0.0.1:9/hook-b",
         [WebhookEvent(WebhookEntity.REGISTERED_MODEL, WebhookAction.CREATED)])
    call("create_webhook", "bad", "not a url", events)
    call("create_webhook", "none", "https://127.0.0.1:9/hook", [])
    hook_id = getattr(hook, "webhook_id", "missing")
    call("get_webhook", hook_id)
    call("get_webhook", "0" * 32)
    token, pages = None, 0
    while pages < 10:
        page = call("list_webhooks", 1, token)
        pages += 1
        token = getattr(page, "token", None)
        if not token:
            break
    call("list_webhooks_by_event", events[0], 10, None)
    call("update_webhook", hook_id, description="changed")
    call("update_webhook", "0" * 32, description="x")
    call("test_webhook", "0" * 32)
    call("delete_webhook", hook_id)
    call("delete_webhook", hook_id)
    call("supports_workspaces")


def _run_both(stock_store: Any, monitor_store: Any) -> tuple[_Recorder, _Recorder]:
    stock, monitored = _Recorder(stock_store), _Recorder(monitor_store)
    _scenario(stock)
    _scenario(monitored)
    return stock, monitored


def _assert_same(stock: _Recorder, monitored: _Recorder) -> None:
    assert stock.called == _public_methods(AbstractStore), (
        "the scenario must call every AbstractStore method; missing: "
        f"{sorted(_public_methods(AbstractStore) - stock.called)}")
    assert len(stock.log) == len(monitored.log)
    diffs = [f"call {i} {a[0]}:\n  stock:   {a[1]}\n  monitor: {b[1]}"
             for i, (a, b) in enumerate(zip(stock.log, monitored.log)) if a != b]
    assert not diffs, "monitor: differs from the stock store:\n" + "\n".join(diffs[:10])
    errors = sum(1 for _, r in stock.log if isinstance(r, dict) and "error" in r)
    assert errors >= 20  # the error cases really are errors on the stock store


def _stores(uri_a: str, uri_b: str) -> tuple[Any, Any]:
    from mlflow_monitor.gate.registry_store import build_monitor_registry_store
    from mlflow_monitor.mlflow_compat import registry_store_builder

    stock = registry_store_builder(uri_a)(store_uri=uri_a)
    monitored = build_monitor_registry_store("monitor:" + uri_b, tracking_uri=uri_b)
    assert isinstance(monitored, MonitorRegistryStore)
    return stock, monitored


@pytest.fixture
def _webhook_key(monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", Fernet.generate_key().decode())
    # webhook URLs on 127.0.0.1 (never called: the store only records them)
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")


def test_monitor_store_without_recipe_matches_stock_store_on_sqlite(tmp_path, _migrated_template_db,
                                                                    _webhook_key):
    a, b = tmp_path / "stock.db", tmp_path / "monitor.db"
    shutil.copy(_migrated_template_db, a)
    shutil.copy(_migrated_template_db, b)
    stock, monitored = _run_both(*_stores(f"sqlite:///{a}", f"sqlite:///{b}"))
    _assert_same(stock, monitored)


# -- PostgreSQL and MariaDB: two private databases per test, dropped afterwards ----------
def _service_missing(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {type(exc).__name__}: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: a missing database fails the run)")
    pytest.skip(message)


@contextlib.contextmanager
def _postgres_databases(n: int) -> Iterator[list[str]]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True,
                                connect_timeout=5)
    except Exception as exc:
        _service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    names = [f"mm_8c_{uuid.uuid4().hex[:10]}" for _ in range(n)]
    try:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
        yield [f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}" for name in names]
    finally:
        _dispose_engines()
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def _mariadb_databases(n: int) -> Iterator[list[str]]:
    pymysql = pytest.importorskip("pymysql")
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                                connect_timeout=5, autocommit=True)
    except Exception as exc:
        _service_missing("MariaDB at 127.0.0.1:3306", exc)
    names = [f"mm_8c_{uuid.uuid4().hex[:10]}" for _ in range(n)]
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f"CREATE DATABASE `{name}`")
        yield [f"mysql+pymysql://root@127.0.0.1:3306/{name}" for name in names]
    finally:
        _dispose_engines()
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def _dispose_engines() -> None:
    """Close the pooled connections MLflow's stores keep, so the databases can be dropped."""
    import gc

    import sqlalchemy

    for obj in gc.get_objects():
        if isinstance(obj, sqlalchemy.engine.Engine):
            obj.dispose()


@pytest.mark.slow  # MLflow migrates two fresh schemas
def test_monitor_store_without_recipe_matches_stock_store_on_postgresql(_webhook_key):
    with _postgres_databases(2) as (uri_a, uri_b):
        stock, monitored = _run_both(*_stores(uri_a, uri_b))
        _assert_same(stock, monitored)


@pytest.mark.slow  # MLflow migrates two fresh schemas
def test_monitor_store_without_recipe_matches_stock_store_on_mariadb(_webhook_key):
    with _mariadb_databases(2) as (uri_a, uri_b):
        stock, monitored = _run_both(*_stores(uri_a, uri_b))
        _assert_same(stock, monitored)

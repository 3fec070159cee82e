"""Recipe safety: a recipe tag is text any EDIT user writes, read inside the server.

- YAML anchors, aliases and merge keys, and recipes over 64 KiB, are refused with a clear
  error, and an alias bomb fails fast instead of hanging the gate;
- on a server, ``current.path`` (and a dataset's source) may name artifact URIs or local
  paths under the operator's allowed roots, nothing else;
- no error echoes the contents of a data file.
"""

from __future__ import annotations

import textwrap
import threading

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.data import CurrentDataError, load_current
from mlflow_monitor.gate.recipe_tag import load_recipe_tag
from mlflow_monitor.recipes import RecipeError, load_recipe
from helpers.gate import breast_cancer_frames, gated_client, recipe_yaml, reference_only_version, write_current

SECRET = "SECRET_HEADER_7f3a"


def _alias_bomb() -> str:
    """~1 KB of YAML that expands to 10**9 list items (nine levels of ten aliases)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join(f"*a{i - 1}" for _ in range(10))
        lines.append(f"a{i}: &a{i} [{refs}]")
    return textwrap.dedent("""\
        task: drift
        current: {path: /data/current.parquet}
        notify:
        """) + "\n".join("  " + line for line in lines) + "\n"


def _finishes(fn, timeout: float = 60.0):
    """Run ``fn`` in a thread; return its exception (or None). Fails if it does not finish."""
    out: dict = {}

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"did not finish within {timeout}s (hangs)"
    return out.get("exc")


def test_alias_bomb_recipe_is_refused_without_expanding_it():
    text = _alias_bomb()
    assert len(text.encode()) < 1500
    exc = _finishes(lambda: load_recipe_tag(text))
    assert isinstance(exc, RecipeError)
    assert "YAML anchors are not allowed in recipes (anchor 'a0')" in str(exc)
    assert "line 4" in str(exc)


def test_one_line_flow_alias_bomb_in_the_tag_is_refused():
    inner = '{task: drift, current: /d.parquet, notify: {a: &a [1,1,1,1,1,1,1,1,1,1], ' + ", ".join(
        f"b{i}: &b{i} [" + ",".join(["*a" if i == 0 else f"*b{i - 1}"] * 10) + "]" for i in range(9)) + "}}"
    exc = _finishes(lambda: load_recipe_tag(inner))
    assert isinstance(exc, RecipeError)
    assert "repeats one list or mapping" in str(exc)


def test_shared_python_object_in_a_mapping_recipe_is_refused():
    rows = [1] * 10
    for _ in range(8):
        rows = [rows] * 10
    exc = _finishes(lambda: load_recipe({"task": "drift", "current": "/d.parquet", "notify": {"x": rows}}))
    assert isinstance(exc, RecipeError) and "repeats one list or mapping" in str(exc)


@pytest.mark.parametrize("yaml_text, expected", [
    ("task: &t drift\ncurrent: /d.parquet\n", "YAML anchors are not allowed in recipes (anchor 't')"),
    ("base: &b {task: drift}\n<<: *b\ncurrent: /d.parquet\n", "YAML anchors are not allowed in recipes (anchor 'b')"),
    ("<<: {task: drift}\ncurrent: /d.parquet\n", "YAML merge keys are not allowed in recipes"),
])
def test_anchors_and_merge_keys_are_refused_naming_the_line(yaml_text, expected):
    with pytest.raises(RecipeError) as info:
        load_recipe(yaml_text)
    assert expected in str(info.value)
    assert "line " in str(info.value)


def test_recipe_over_64_kib_is_refused_with_its_size():
    text = "task: drift\ncurrent: /d.parquet\nnotify:\n" + "".join(
        f"  k{i}: {'x' * 60}\n" for i in range(1200))
    with pytest.raises(RecipeError, match=r"recipe is \d+ bytes; expected at most 65536 bytes"):
        load_recipe(text)


def test_recipe_file_over_64_kib_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("task: drift\ncurrent: /d.parquet\n# " + "x" * 70_000 + "\n")
    with pytest.raises(RecipeError, match="expected at most 65536 bytes"):
        load_recipe(path)


def test_plain_recipes_still_load():
    assert load_recipe("task: drift\ncurrent: /d.parquet\nrules: [drift_share < 0.3]\n").task == "drift"
    for name in ("classification", "regression", "drift"):
        assert load_recipe(name).name == name


def test_alias_bomb_tag_blocks_the_promotion_quickly_and_changes_nothing():
    client = gated_client()
    version = reference_only_version(client, "bomb")
    with pytest.raises(MlflowException, match="YAML anchors are not allowed"):  # the policy API refuses it
        client.set_registered_model_tag("bomb", T.RECIPE, _alias_bomb())
    # a tag already in the database (written around the plugin) still cannot hang the gate
    inner = mlflow.get_registry_uri().split(":", 1)[1]
    MlflowClient(registry_uri=inner).set_registered_model_tag("bomb", T.RECIPE, _alias_bomb())

    exc = _finishes(lambda: client.set_registered_model_alias("bomb", "champion", version))

    assert isinstance(exc, MlflowException)
    assert "YAML anchors are not allowed in recipes (anchor 'a0')" in exc.message
    assert client.get_registered_model("bomb").aliases == {}


# -- where the server may read data from -----------------------------------------------
@pytest.fixture
def in_server(monkeypatch, tmp_path):
    """This process looks like an ``mlflow server`` worker whose allowed root is tmp/allowed."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", mlflow.get_tracking_uri())
    monkeypatch.setenv("MLFLOW_MONITOR_ALLOWED_DATA_ROOTS", str(allowed))
    return allowed


def _recipe(path: str):
    return load_recipe({"task": "drift", "current": {"path": path}})


def test_server_refuses_a_local_path_outside_the_allowed_roots(in_server, tmp_path):
    outside = write_current(tmp_path, breast_cancer_frames()[1])
    with pytest.raises(CurrentDataError) as info:
        load_current(_recipe(str(outside)), run_id="r")
    msg = str(info.value)
    assert f"recipe current.path '{outside}' is a file on the server host outside the allowed data roots" in msg
    assert str(in_server) in msg and "runs:/" in msg


def test_server_reads_a_local_path_under_an_allowed_root(in_server):
    path = write_current(in_server, breast_cancer_frames()[1])
    assert len(load_current(_recipe(str(path)), run_id="r")) == len(breast_cancer_frames()[1])
    assert len(load_current(_recipe(path.as_uri()), run_id="r")) > 0


def test_server_refuses_dot_dot_and_symlinks_out_of_an_allowed_root(in_server, tmp_path):
    outside = write_current(tmp_path, breast_cancer_frames()[1])
    link = in_server / "link.parquet"
    link.symlink_to(outside)
    for path in (str(in_server / ".." / outside.name), str(link)):
        with pytest.raises(CurrentDataError, match="outside the allowed data roots"):
            load_current(_recipe(path), run_id="r")


@pytest.mark.parametrize("uri, scheme", [("http://127.0.0.1:1/current.csv", "http"),
                                         ("ftp://127.0.0.1/current.csv", "ftp")])
def test_server_refuses_other_schemes(in_server, uri, scheme):
    with pytest.raises(CurrentDataError, match=f"uses scheme '{scheme}', which the gate does not read"):
        load_current(_recipe(uri), run_id="r")


def test_server_refuses_a_runs_uri_whose_run_stores_artifacts_on_the_host(in_server, tmp_path):
    client = MlflowClient()
    exp = client.create_experiment("host-files", artifact_location=str(tmp_path / "elsewhere"))
    run = client.create_run(exp)
    with pytest.raises(CurrentDataError, match=r"artifact location of run .* outside the allowed data roots"):
        load_current(_recipe(f"runs:/{run.info.run_id}/current.parquet"), run_id="r", client=client)


def test_server_refuses_a_dataset_whose_source_is_a_host_file(in_server, tmp_path):
    outside = write_current(tmp_path, breast_cancer_frames()[1])
    with mlflow.start_run() as run:
        ds = mlflow.data.from_pandas(breast_cancer_frames()[1], source=str(outside), name="evaluation")
        mlflow.log_input(ds, context="evaluation")
    recipe = load_recipe({"task": "drift", "current": {"dataset": "evaluation"}})
    with pytest.raises(CurrentDataError, match="source of dataset 'evaluation' .* outside the allowed data roots"):
        load_current(recipe, run_id=run.info.run_id)


def test_client_reads_any_local_path(tmp_path):
    path = write_current(tmp_path, breast_cancer_frames()[1])
    assert len(load_current(_recipe(str(path)), run_id="r")) > 0


# -- no file contents in errors --------------------------------------------------------
def test_block_message_never_echoes_the_current_files_header_row(tmp_path):
    client = gated_client()
    version = reference_only_version(client, "echo")
    path = tmp_path / "current.csv"
    path.write_text(f"{SECRET},other_secret_col\n1,2\n")
    client.set_registered_model_tag("echo", T.RECIPE, recipe_yaml(path))

    with pytest.raises(MlflowException) as info:
        client.set_registered_model_alias("echo", "champion", version)

    msg = info.value.message
    assert "missing from the current data" in msg and "current data has 2 columns" in msg
    assert SECRET not in msg and "other_secret_col" not in msg


@pytest.mark.parametrize("suffix, content", [(".parquet", f"{SECRET} not parquet".encode()),
                                             (".json", f'{{"{SECRET}": [1, 2'.encode()),
                                             (".csv", b"\xff\xfe" + SECRET.encode() + b",\"x\n1")])
def test_unreadable_file_error_never_echoes_its_bytes(tmp_path, suffix, content):
    path = tmp_path / f"current{suffix}"
    path.write_bytes(content)
    with pytest.raises(CurrentDataError) as info:
        load_current(_recipe(str(path)), run_id="r")
    assert "the file is not valid" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.slow  # a real mlflow server subprocess
def test_real_server_refuses_a_host_file_with_http_400_and_no_contents(tmp_path):
    from helpers.servers import MlflowServer

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret_file = tmp_path / "host_secret.csv"
    secret_file.write_text(f"{SECRET},b\n1,2\n")
    srv = MlflowServer(tmp_path / "srv", registry_store_uri=f"monitor:sqlite:///{tmp_path / 'srv' / 'server.db'}",
                       env={"MLFLOW_MONITOR_ALLOWED_DATA_ROOTS": str(allowed),
                            "MLFLOW_MONITOR_HOME": str(tmp_path / "home")})
    srv.start()
    try:
        mlflow.set_tracking_uri(srv.url)
        mlflow.set_registry_uri(srv.url)
        client = MlflowClient(srv.url, srv.url)
        version = reference_only_version(client, "host-file")
        # the operator sets the policy against the database (no REST caller may, without auth)
        MlflowClient(registry_uri=f"sqlite:///{tmp_path / 'srv' / 'server.db'}").set_registered_model_tag(
            "host-file", T.RECIPE, recipe_yaml(secret_file))

        resp = requests.post(srv.url + "/api/2.0/mlflow/registered-models/alias",
                             json={"name": "host-file", "alias": "champion", "version": version}, timeout=120)

        assert resp.status_code == 400
        message = resp.json()["message"]
        assert "outside the allowed data roots" in message and str(allowed) in message
        assert SECRET not in message
        assert client.get_registered_model("host-file").aliases == {}
    finally:
        srv.stop()


def test_server_refuses_a_reference_run_whose_artifacts_are_on_the_host(in_server, tmp_path):
    from mlflow_monitor.gate.data_access import DataLocationRefused
    from mlflow_monitor.gate.decision import Target
    from mlflow_monitor.gate.evaluation import CandidateEvaluator

    client = MlflowClient()
    exp = client.create_experiment("host-reference", artifact_location=str(tmp_path / "host"))
    run = client.create_run(exp)
    mv = type("MV", (), {"run_id": run.info.run_id, "version": "1"})()
    recipe = load_recipe({"task": "drift", "current": "s3://bucket/current.parquet"})

    with pytest.raises(DataLocationRefused, match=r"reference run \(artifact location of run .*\) "
                                                  r".* outside the allowed data roots"):
        CandidateEvaluator(None, mlflow.get_tracking_uri(), recipe).run("m", mv, Target("alias", "champion"))

"""One rule for which MLflow failures are permanent, pinned on real HTTP answers; one Backoff."""

from __future__ import annotations

import pytest
from helpers.servers import free_port
from mlflow.exceptions import MlflowException

from mlflow_monitor.mlflow_compat import rest_call
from mlflow_monitor.retry import Backoff, is_permanent


def _failure(scripted_server, status: int, body=None) -> BaseException:
    scripted_server.answer(status, body)
    with pytest.raises(Exception) as exc:
        rest_call(scripted_server.url, "/api/2.0/mlflow/runs/get", "GET", 5.0, params={"run_id": "r"})
    return exc.value


@pytest.mark.parametrize(
    "status, body, permanent",
    [
        (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad key"}, True),
        (400, "Bad Request", True),
        (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}, True),
        (404, "<html>Not Found</html>", False),  # not the store talking: a proxy or a wrong base path
        (401, "Unauthorized", False),  # credentials get fixed; the points must not be set aside
        (401, {"error_code": "UNAUTHENTICATED", "message": "who are you"}, False),
        (403, {"error_code": "PERMISSION_DENIED", "message": "no"}, False),
        (429, "Too Many Requests", False),
        (500, {"error_code": "INTERNAL_ERROR", "message": "boom"}, False),
        (502, "Bad Gateway", False),
        (503, "Service Unavailable", False),
    ],
)
def test_http_answers_are_permanent_only_when_the_request_itself_is_refused(scripted_server, status, body, permanent):
    exc = _failure(scripted_server, status, body)
    assert isinstance(exc, MlflowException)
    assert is_permanent(exc) is permanent, (status, body, exc.error_code)


def test_connection_refused_is_transient():
    with pytest.raises(Exception) as exc:
        rest_call(f"http://127.0.0.1:{free_port()}", "/api/2.0/mlflow/runs/get", "GET", 2.0)
    assert not is_permanent(exc.value)


def test_plain_errors_are_permanent_only_when_the_value_cannot_be_encoded():
    assert is_permanent(ValueError("metric value 'x' is not a number"))
    assert is_permanent(TypeError("not JSON serialisable"))
    assert not is_permanent(OSError("database is locked"))
    assert not is_permanent(TimeoutError())
    assert not is_permanent(MlflowException("database is locked"))  # INTERNAL_ERROR by default


def test_a_200_answer_comes_back_as_its_json(scripted_server):
    scripted_server.answer(200, {"run": {"info": {"run_id": "r"}}})
    assert rest_call(scripted_server.url, "/api/2.0/mlflow/runs/get", "GET", 5.0) == {"run": {"info": {"run_id": "r"}}}
    assert scripted_server.requests[0]["path"].startswith("/api/2.0/mlflow/runs/get")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_the_wait_up_to_its_maximum_and_a_success_resets_it():
    clock = _Clock()
    backoff = Backoff(0.5, 2.0, clock=clock)
    assert backoff.ready()
    assert [backoff.failed() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert not backoff.ready() and backoff.remaining_s() == 2.0
    clock.now += 2.0
    assert backoff.ready()
    backoff.succeeded()
    assert backoff.failed() == 0.5


def test_backoff_retry_now_makes_the_next_try_due_but_keeps_the_grown_wait():
    clock = _Clock()
    backoff = Backoff(1.0, 8.0, clock=clock)
    backoff.failed()
    backoff.failed()
    backoff.retry_now()
    assert backoff.ready()
    assert backoff.failed() == 4.0


def test_a_fixed_cooldown_is_a_backoff_whose_maximum_is_its_start():
    clock = _Clock()
    cooldown = Backoff(30.0, 30.0, clock=clock)
    assert [cooldown.failed() for _ in range(3)] == [30.0, 30.0, 30.0]
    clock.now += 29.9
    assert not cooldown.ready()
    clock.now += 0.1
    assert cooldown.ready()

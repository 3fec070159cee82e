"""Fixtures for the health tests: the health monitor is off before and after each test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _health_off():
    from mlflow_monitor import health

    health.disable(timeout=1.0)
    yield
    health.disable(timeout=1.0)

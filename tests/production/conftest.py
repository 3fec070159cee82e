"""Fixtures of the production-monitoring tests (shared helpers: ``helpers.production``)."""

from __future__ import annotations

import pytest
from helpers.production import FakeClock


@pytest.fixture
def clock():
    return FakeClock(1_764_583_200.0)  # 2025-12-01T10:00:00Z, a window boundary

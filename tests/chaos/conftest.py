"""The chaos marker: the shortened chaos suite runs with the rest of the tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: the shortened chaos suite (bench/chaos.py; `make chaos` runs it in full)"
    )

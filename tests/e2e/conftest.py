"""Servers over the shared sweep (tests.e2e.shared_sweep), started once for the modules that
look at it: the REST API tests and the browser tests share one `mlflow server`."""

from __future__ import annotations

import pytest

from tests.e2e.shared_sweep import finished_sweep, mlflow_server


@pytest.fixture(scope="session")
def mlflow_ui(tmp_path_factory):
    """(the shared sweep, the base URL of an `mlflow server` over its store)."""
    sweep = finished_sweep(tmp_path_factory)
    with mlflow_server(sweep) as base:
        yield sweep, base

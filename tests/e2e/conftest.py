"""Servers started once for the modules that use them: the REST API tests and the browser tests
share one `mlflow server` over the shared sweep (tests.e2e.shared_sweep), and the tests of
refused commands one preloaded command line (tests.preloaded_cli)."""

from __future__ import annotations

import pytest

from tests.e2e.shared_sweep import finished_sweep, mlflow_server
from tests.preloaded_cli import PreloadedCli


@pytest.fixture(scope="session")
def mlflow_ui(tmp_path_factory):
    """(the shared sweep, the base URL of an `mlflow server` over its store)."""
    sweep = finished_sweep(tmp_path_factory)
    with mlflow_server(sweep) as base:
        yield sweep, base


@pytest.fixture(scope="session")
def preloaded_cli():
    """A :class:`PreloadedCli` for commands that are refused: ``preloaded_cli.run(args, cwd)``."""
    cli = PreloadedCli(("pipeline.sweep", "pipeline.train", "mlflow", "optuna"))
    try:
        yield cli
    finally:
        cli.close()

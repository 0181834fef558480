"""Many workers on one study: 300 instant trials over 8 local workers, on PostgreSQL and through
Optuna's gRPC storage proxy in front of it (issue 19's reduced scale test).

Each run checks what must hold at any scale: exactly the budget (no trial created over it, no
place taken twice), every trial finished, one parent run and one child run per trial.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from pipeline.search.storage import open_grpc_proxy
from tests.workers import (
    POSTGRES_URL,
    TINY,
    assert_budget_exact,
    load_study,
    needs_postgres,
    postgres_password,
    postgres_url,
    run_sweep_cli,
    study_runs,
    unique_name,
)

pytestmark = [pytest.mark.slow, pytest.mark.services, needs_postgres]

N_TRIALS, WORKERS = 300, 8
# Instant trials: 1-2 iterations of a 2-4 unit network, so that the machinery is what runs.
INSTANT = [
    *TINY,
    "search_space.iterations.low=1",
    "search_space.iterations.high=2",
    "search_space.iterations.step=1",
    "search_space.hidden_units.high=4",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def proxy():
    """``python -m pipeline.storage_proxy`` in front of the test database; its grpc:// URL."""
    pytest.importorskip("grpc", reason="grpcio is not installed (pip install -e '.[dev]')")
    port = free_port()
    env = {**os.environ, "PGPASSWORD": postgres_password()}
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.storage_proxy", postgres_url(None), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"grpc://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                open_grpc_proxy(url, timeout=2)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no proxy: {server.stdout.read()}") from None
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("kind", ["postgresql", "grpc"])
def test_eight_workers_make_exactly_the_budget(tmp_path, kind, request):
    name = unique_name(f"scale-{kind}")
    storage = request.getfixturevalue("proxy") if kind == "grpc" else postgres_url(None)
    result = run_sweep_cli(
        [
            "--multirun",
            f"worker=range({WORKERS})",
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={WORKERS}",
            "hydra.sweep.dir=multirun/scale",
            f"study.name={name}",
            f"study.n_trials={N_TRIALS}",
            f"study.storage={storage}",
            *INSTANT,
        ],
        tmp_path,
        timeout=600,
        env={"PGPASSWORD": postgres_password()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr

    study = load_study(POSTGRES_URL, name)  # what the database holds, whichever way it came
    assert_budget_exact(study, N_TRIALS)
    assert len(study.trials) == N_TRIALS  # nothing lost here, so nothing but the budget
    assert len({t.user_attrs["worker"] for t in study.trials}) >= 4, "few workers ran trials"

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    parents, children = study_runs(client, "mlp-sweep", name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(
        range(N_TRIALS)
    )
    assert {c.info.status for c in children} == {"FINISHED"}

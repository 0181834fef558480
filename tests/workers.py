"""Helpers of the multi-worker tests (tests/e2e/test_multirun.py, tests/services/test_cluster.py).

The services come from ``.ci/services.sh`` (``MLP_SWEEP_TEST_POSTGRES_URL``,
``MLP_SWEEP_TEST_MLFLOW_URL``, ``MLP_SWEEP_TEST_SLURM``); a test whose service is absent skips
with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

from pipeline.names import BUDGET_SLOT, FINISHED_STATES, OVER_BUDGET
from pipeline.search.budget import replaced_numbers
from pipeline.search.storage import open_storage

POSTGRES_URL = os.environ.get("MLP_SWEEP_TEST_POSTGRES_URL", "")
MLFLOW_URL = os.environ.get("MLP_SWEEP_TEST_MLFLOW_URL", "")
SLURM = os.environ.get("MLP_SWEEP_TEST_SLURM") == "1"
SLURM_PARTITION = os.environ.get("MLP_SWEEP_TEST_SLURM_PARTITION", "")
HINT = "(bash .ci/services.sh as root starts it, then . .ci/services.env)"

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason=f"MLP_SWEEP_TEST_POSTGRES_URL is not set: no PostgreSQL {HINT}"
)
needs_mlflow_server = pytest.mark.skipif(
    not MLFLOW_URL, reason=f"MLP_SWEEP_TEST_MLFLOW_URL is not set: no mlflow server {HINT}"
)
needs_slurm = pytest.mark.skipif(
    not SLURM, reason=f"MLP_SWEEP_TEST_SLURM is not 1: no SLURM cluster {HINT}"
)

# Tiny trials: iris, 2 folds fitted in the worker's own process, 5..20 iterations, narrow nets.
TINY = [
    "dataset=iris",
    "cv.folds=2",
    "cv.n_jobs=1",
    "search_space.iterations.low=5",
    "search_space.iterations.high=20",
    "search_space.iterations.step=5",
    "search_space.hidden_units.low=2",
    "search_space.hidden_units.high=8",
    "search_space.hidden_layers.high=1",
    "pruner=none",
    "progress_bar=false",
    "tracking.log_trial_models=false",
]


def unique_name(prefix: str) -> str:
    """Studies and experiments on the shared servers outlive a test: give each its own name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def postgres_password() -> str:
    return make_url(POSTGRES_URL).password or ""


def postgres_url(password: str | None) -> str:
    """The test database's URL with ``password`` (None: no password, PGPASSWORD supplies it)."""
    url = make_url(POSTGRES_URL)
    auth = url.username if password is None else f"{url.username}:{password}"
    return f"{url.drivername}://{auth}@{url.host}:{url.port}/{url.database}"


def sweep_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipeline.sweep", *args]


def run_sweep_cli(args, cwd: Path, timeout: float = 420, env: dict | None = None):
    """``python -m pipeline.sweep ARGS`` in ``cwd``; returns the CompletedProcess."""
    return subprocess.run(
        sweep_command(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def load_study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage, 10))


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count to the budget (lost-and-retried and over-budget ones left out)."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    return [t for t in trials if t.number not in replaced]


def assert_budget_exact(study: optuna.Study, n_trials: int) -> None:
    """Exactly ``n_trials`` counted trials, all finished; nothing left running or waiting."""
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "duplicated trial numbers"
    counted = counted_trials(study)
    states = sorted(t.state.name for t in counted)
    assert len(counted) == n_trials, states
    assert all(t.state in FINISHED_STATES for t in counted), states
    leftover = [t.number for t in trials if not t.state.is_finished()]
    assert leftover == [], f"trials left RUNNING or WAITING: {leftover}"
    # No trial over the budget: the only trials besides the counted ones are lost ones, failed.
    extra = [t for t in trials if t.number not in {c.number for c in counted}]
    assert all(t.state.name == "FAIL" and not t.user_attrs.get(OVER_BUDGET) for t in extra), [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in extra
    ]
    places = [t.user_attrs.get(BUDGET_SLOT) for t in counted]
    assert sorted(places) == list(range(n_trials)), "a budget place taken twice or never"


def study_runs(client: MlflowClient, experiment: str, study: str):
    """(parent runs, child runs) of a study in an experiment."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`mlp_sweep.study` = '{study}'", max_results=1000
    )
    parents = [r for r in runs if r.data.tags.get("mlp_sweep.role") == "study"]
    children = [r for r in runs if r.data.tags.get("mlp_sweep.role") == "trial"]
    return parents, children


def rest(server: str, endpoint: str, body: dict | None = None, query: str = "") -> dict:
    """One call of the MLflow REST API (POST with a JSON body, or GET with a query string)."""
    url = f"{server}/api/2.0/mlflow/{endpoint}{query}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def rest_study_runs(server: str, experiment: str, study: str) -> tuple[list[dict], list[dict]]:
    """(parent runs, child runs) of a study, found through the server's REST API."""
    experiment_id = rest(server, "experiments/get-by-name", query=f"?experiment_name={experiment}")[
        "experiment"
    ]["experiment_id"]
    body = {
        "experiment_ids": [experiment_id],
        "filter": f"tags.`mlp_sweep.study` = '{study}'",
        "max_results": 1000,
    }
    runs = rest(server, "runs/search", body).get("runs", [])
    for run in runs:
        run["tags"] = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    parents = [r for r in runs if r["tags"].get("mlp_sweep.role") == "study"]
    children = [r for r in runs if r["tags"].get("mlp_sweep.role") == "trial"]
    return parents, children


def files_containing(folder: Path, secret: str) -> list[str]:
    """Every file under ``folder`` (text or binary: SQLite stores, pickles) holding ``secret``."""
    needle = secret.encode()
    return [
        str(path) for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()
    ]

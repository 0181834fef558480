"""The cluster set-up of the README, for real: a SLURM multirun (submitit) of workers sharing a
PostgreSQL study and logging to an ``mlflow server`` over HTTP, runs checked through the
server's REST API.
"""

from __future__ import annotations

import pytest

from tests.workers import (
    MLFLOW_URL,
    POSTGRES_URL,
    SLURM_PARTITION,
    TINY,
    assert_budget_exact,
    files_containing,
    load_study,
    needs_mlflow_server,
    needs_postgres,
    needs_slurm,
    postgres_password,
    postgres_url,
    rest_study_runs,
    run_sweep_cli,
    unique_name,
)

pytestmark = [pytest.mark.slow, pytest.mark.services]


def assert_one_parent_with_children(parents, children, n_trials: int) -> None:
    assert len(parents) == 1
    assert parents[0]["info"]["status"] == "FINISHED"
    assert len(children) == n_trials
    parent_id = parents[0]["info"]["run_id"]
    assert {c["tags"]["mlflow.parentRunId"] for c in children} == {parent_id}
    assert {c["info"]["status"] for c in children} == {"FINISHED"}
    for child in children:
        assert child["tags"]["mlp_sweep.host"] and child["tags"]["mlp_sweep.worker"] in ("0", "1")


@needs_mlflow_server
def test_multirun_logs_to_an_mlflow_server(tmp_path):
    name, experiment = unique_name("server"), unique_name("exp")
    result = run_sweep_cli(
        [
            "--multirun",
            "worker=range(2)",
            "hydra/launcher=joblib",
            "hydra.sweep.dir=multirun/server",
            f"study.name={name}",
            "study.n_trials=6",
            *TINY,
            f"tracking.uri={MLFLOW_URL}",
            f"tracking.experiment={experiment}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert_budget_exact(load_study(str(tmp_path / "mlruns" / "optuna.journal"), name), 6)
    parents, children = rest_study_runs(MLFLOW_URL, experiment, name)
    assert_one_parent_with_children(parents, children, 6)
    # The server keeps everything: no local MLflow store was made.
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


@needs_slurm
@needs_postgres
@needs_mlflow_server
def test_slurm_multirun_on_postgresql_and_mlflow_server(tmp_path):
    """``hydra/launcher=slurm``: 2 SLURM jobs, the password from the environment through
    ``${oc.env:...}``, so that neither Hydra's files nor submitit's job pickles hold it."""
    secret = postgres_password()
    name, experiment = unique_name("slurm"), unique_name("exp")
    launcher = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
    if SLURM_PARTITION:
        launcher.append(f"hydra.launcher.partition={SLURM_PARTITION}")
    result = run_sweep_cli(
        [
            "--multirun",
            "worker=range(2)",
            *launcher,
            "hydra.sweep.dir=multirun/slurm",
            f"study.name={name}",
            "study.n_trials=8",
            *TINY,
            "study.storage=" + postgres_url("${oc.env:MLP_SWEEP_DB_PASSWORD}"),
            f"tracking.uri={MLFLOW_URL}",
            f"tracking.experiment={experiment}",
        ],
        tmp_path,
        env={"MLP_SWEEP_DB_PASSWORD": secret},
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert_budget_exact(load_study(POSTGRES_URL, name), 8)
    parents, children = rest_study_runs(MLFLOW_URL, experiment, name)
    assert_one_parent_with_children(parents, children, 8)
    job_ids = {c["tags"]["mlp_sweep.slurm_job_id"] for c in children}
    assert job_ids and all(job_id.isdigit() for job_id in job_ids)
    assert list((tmp_path / "multirun" / "slurm" / ".submitit").iterdir())
    assert secret not in result.stdout + result.stderr
    assert files_containing(tmp_path, secret) == []

"""The champion is registered once per study and best trial (pipeline.tracking.models.log_champion):
two identical sweeps started together, and a rerun after a kill that left a registered version
without its alias, each end with one version, the alias on it; the two sweeps share one parent
run (pipeline.phases.prepare.claim_parent_run).

The MLflow server's case is in tests/services/test_secrets_and_registration.py (with PostgreSQL).
"""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage

from tests.helpers import FAST, run_cli

pytestmark = pytest.mark.slow

STUDY = "iris-mlp"
# One fold process each: two sweeps share the 2 cores, and end within a second of each other.
ARGS = [*FAST, "cv.n_jobs=1", "dataset=iris", "pruner=none", "tracking.log_trial_models=false"]


def start_together(args: list[str], cwd, env: dict | None = None) -> list[tuple[int, str, str]]:
    """Start two identical sweeps at once; their exit codes, stdouts and stderrs."""
    command = [sys.executable, "-m", "pipeline.sweep", *args]
    both = [
        subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in both]
    return [
        (p.returncode, out.decode(), err.decode())
        for p, (out, err) in zip(both, outputs, strict=True)
    ]


def champion_versions(client: MlflowClient, name: str) -> list[str]:
    return sorted(v.version for v in client.search_model_versions(f"name = '{name}'"))


def assert_one_champion(client: MlflowClient, name: str, best_trial: int, outputs) -> str:
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err
    versions = champion_versions(client, name)
    assert len(versions) == 1, versions
    (version,) = versions
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == version
    assert champion.tags["mlp_sweep.best_trial"] == str(best_trial)
    for _, out, _ in outputs:
        assert f"champion: registered version {version}" in out
    return version


def test_identical_sweeps_together_and_a_rerun_after_a_kill_register_one_champion(tmp_path):
    outputs = start_together(ARGS, tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    journal = JournalFileBackend(str(tmp_path / "mlruns" / "optuna.journal"))
    study = optuna.load_study(study_name=STUDY, storage=JournalStorage(journal))
    assert len(study.trials) == 3  # the budget is the study's, shared by both
    version = assert_one_champion(client, STUDY, study.best_trial.number, outputs)
    experiment = client.get_experiment_by_name("mlp-sweep").experiment_id
    parents = client.search_runs([experiment], "tags.`mlp_sweep.role` = 'study'")
    assert [run.info.run_id for run in parents] == [study.user_attrs["mlflow_parent_run_id"]]
    children = client.search_runs([experiment], "tags.`mlp_sweep.role` = 'trial'")
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parents[0].info.run_id}

    # A kill right after registering leaves the version without its alias (the alias is set
    # by a second request): the next run finds the version by its tags, and reuses it.
    client.delete_registered_model_alias(STUDY, "champion")
    rerun = run_cli(ARGS, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"registered version {version} (unchanged" in rerun.stdout
    assert_one_champion(client, STUDY, study.best_trial.number, [(0, rerun.stdout, "")])

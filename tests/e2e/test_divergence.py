"""Learning rates up to 1000 with plain gradient descent: diverging trials fail with their reason
on the trial and its MLflow run, never crash the sweep and never become the best trial; a sweep
in which no trial completes says so in one line and exits with code 2."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from tests.helpers import run_cli

pytestmark = pytest.mark.slow

ARGS = [
    "dataset=iris",
    "cv.folds=3",
    "cv.n_jobs=1",
    "model.solver=gd",
    "model.batch_size=null",  # full-batch gradient descent
    "search_space.learning_rate.low=0.01",
    "search_space.learning_rate.high=1000",
    "search_space.activation.choices=[relu]",
    "search_space.iterations.low=30",
    "search_space.iterations.high=60",
    "search_space.hidden_units.high=16",
    "search_space.hidden_layers.high=1",
    "sampler=random",  # seeded: study.seed=0 draws both diverging and sane learning rates
    "pruner=none",
    "tracking.log_trial_models=false",
    "progress_bar=false",
]


def stores(folder):
    storage = JournalStorage(JournalFileBackend(str(folder / "mlruns" / "optuna.journal")))
    study = optuna.load_study(study_name="iris-mlp", storage=storage)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlp-sweep").experiment_id])
    trial_runs = [r for r in runs if r.data.tags.get("mlp_sweep.role") == "trial"]
    parents = [r for r in runs if r.data.tags.get("mlp_sweep.role") == "study"]
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in trial_runs}
    return study, client, by_number, parents


def test_diverging_trials_fail_with_their_reason_and_never_win(tmp_path):
    result = run_cli([*ARGS, "study.n_trials=5"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    study, _, runs, _ = stores(tmp_path)
    failed = study.get_trials(states=(TrialState.FAIL,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert failed and complete, [(t.params["learning_rate"], t.state) for t in study.trials]
    for trial in failed:
        assert "diverged at iteration" in trial.user_attrs["fail_reason"]
        run = runs[trial.number]
        assert run.info.status == "FAILED"
        assert "diverged at iteration" in run.data.tags["optuna.fail_reason"]
        assert run.data.tags["optuna.state"] == "FAIL"
    assert study.best_trial.state == TrialState.COMPLETE
    assert study.best_trial.number not in {t.number for t in failed}
    assert f"{len(failed)} failed" in result.stdout


def test_no_trial_completing_is_one_line_and_exit_2(tmp_path):
    result = run_cli([*ARGS, "study.n_trials=2", "search_space.learning_rate.low=300"], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: search_space: no trial of study 'iris-mlp' completed")
    assert "learning_rate.high" in last
    study, client, _, parents = stores(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert [p.info.status for p in parents] == ["FAILED"]
    assert not client.search_registered_models()

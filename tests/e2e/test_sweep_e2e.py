"""`python -m pipeline.sweep` for real: Hydra CLI, Optuna journal study, joblib folds, MLflow SQLite.

Each test runs the command in its own temp folder, so the default stores (./mlruns) are fresh.
"""

from __future__ import annotations

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sklearn.datasets import load_wine

from tests.helpers import FAST, SEEDED_SWEEP, run_cli

pytestmark = pytest.mark.slow


def load_study(folder, name):
    storage = JournalStorage(JournalFileBackend(str(folder / "mlruns" / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def mlflow_client(folder) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")


def runs_of(client, study_name):
    experiment = client.get_experiment_by_name("mlp-sweep")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlp_sweep.study` = '{study_name}'"
    )
    parents = [r for r in runs if r.data.tags["mlp_sweep.role"] == "study"]
    children = [r for r in runs if r.data.tags["mlp_sweep.role"] == "trial"]
    return parents, children


def assert_ok(result):
    assert result.returncode == 0, result.stderr[-3000:]


def test_sweep_end_to_end_then_resume(tmp_path):
    args = [*FAST, "dataset=iris", "pruner=none"]
    first = run_cli(args, tmp_path)
    assert_ok(first)
    assert "CV accuracy" in first.stdout and "mlflow ui --backend-store-uri" in first.stdout

    study = load_study(tmp_path, "iris-mlp")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    client = mlflow_client(tmp_path)
    parents, children = runs_of(client, "iris-mlp")
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert 0.8 <= parent.data.metrics["test_accuracy"] <= 1.0
    assert parent.data.metrics["refit_seconds"] > 0  # the champion's fit, in its own process
    assert parent.data.metrics["discarded_fit_seconds"] == 0.0  # nothing pruned, nothing failed
    # Some fold was fitting for a part of the parent run's life, and never longer than it.
    lifetime = (parent.info.end_time - parent.info.start_time) / 1000
    assert 0 < parent.data.metrics["fitting_wall_seconds"] < lifetime
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert {
            "learning_rate",
            "hidden_units",
            "hidden_layers",
            "iterations",
            "activation",
            "solver",
        } <= set(child.data.params)
        assert {
            "fold_0_accuracy",
            "fold_1_accuracy",
            "fold_2_accuracy",
            "cv_accuracy_mean",
            "cv_accuracy_std",
            "fit_seconds",
        } <= set(child.data.metrics)
        curve = client.get_metric_history(child.info.run_id, "train_loss")
        assert len(curve) == int(child.data.params["iterations"])
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert "model" in artifacts  # its settings are the parent's config.yaml
        trial = study.trials[int(child.data.tags["optuna.trial_number"])]
        assert child.data.metrics["cv_accuracy_mean"] == pytest.approx(trial.value)

    # The trial's model and the registered champion load without pickle and predict labels.
    X, y = __import__("sklearn.datasets").datasets.load_iris(return_X_y=True)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    trial_model = mlflow.pyfunc.load_model(f"runs:/{children[0].info.run_id}/model")
    assert np.mean(trial_model.predict(pd.DataFrame(X)) == y) > 0.8
    champion = mlflow.pyfunc.load_model("models:/iris-mlp@champion")
    assert np.mean(champion.predict(X) == y) > 0.8
    assert not list((tmp_path / "mlruns").rglob("*.pkl"))

    # Resume: same command, larger budget -> same study and parent run, 5 trials in all.
    second = run_cli([*args, "study.n_trials=5"], tmp_path)
    assert_ok(second)
    study = load_study(tmp_path, "iris-mlp")
    assert len(study.trials) == 5
    assert sorted(t.number for t in study.trials) == list(range(5))
    parents, children = runs_of(client, "iris-mlp")
    assert len(parents) == 1 and parents[0].info.run_id == parent.info.run_id
    assert len(children) == 5
    # Rerunning when the budget is already reached runs no trial, and registers no copy of the
    # same champion: the alias still points at the version of the best trial.
    versions = client.search_model_versions("name = 'iris-mlp'")
    champion_version = client.get_model_version_by_alias("iris-mlp", "champion")
    best = load_study(tmp_path, "iris-mlp").best_trial.number
    assert champion_version.tags["mlp_sweep.best_trial"] == str(best)
    third = run_cli([*args, "study.n_trials=5"], tmp_path)
    assert_ok(third)
    assert len(load_study(tmp_path, "iris-mlp").trials) == 5
    assert f"registered version {champion_version.version} (unchanged" in third.stdout
    assert len(client.search_model_versions("name = 'iris-mlp'")) == len(versions)
    assert client.get_model_version_by_alias("iris-mlp", "champion").version == (
        champion_version.version
    )


def test_csv_with_string_labels(tmp_path):
    X, y = load_wine(return_X_y=True)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    names = np.array(["barolo", "grignolino", "barbera"])
    frame["cultivar"] = names[y]
    frame.to_csv(tmp_path / "wine.csv", index=False)
    result = run_cli(
        [
            *FAST,
            "dataset=csv",
            "dataset.path=wine.csv",
            "dataset.target=cultivar",
            "study.name=wine-csv",
        ],
        tmp_path,
    )
    assert_ok(result)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    champion = mlflow.pyfunc.load_model("models:/wine-csv@champion")
    predictions = champion.predict(frame.drop(columns="cultivar"))
    assert set(predictions) <= set(names)
    # Columns are matched by name, not position (the CSV's order is not the caller's).
    reordered = frame.drop(columns="cultivar").iloc[:, ::-1]
    np.testing.assert_array_equal(champion.predict(reordered), predictions)
    assert np.mean(predictions == frame["cultivar"].to_numpy()) > 0.8


def test_seeded_sweeps_give_the_same_trials_and_scores(tmp_path):
    # benchmarks/repeat_seeded.py runs the same sweep 21 times and compares them all.
    args = SEEDED_SWEEP
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert_ok(run_cli(args, tmp_path / name))
    a, b = (load_study(tmp_path / n, "iris-mlp").trials for n in ("a", "b"))
    assert optuna.trial.TrialState.PRUNED in [t.state for t in a]  # the pruner was asked
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.value for t in a] == [t.value for t in b]
    assert [t.state for t in a] == [t.state for t in b]
    assert [t.intermediate_values for t in a] == [t.intermediate_values for t in b]
    # Pruned inside a fold at a checkpoint epoch, by bars the same in both runs.
    reasons = [t.user_attrs.get("fail_reason") for t in a]
    assert any(" at epoch " in (reason or "") for reason in reasons)
    assert reasons == [t.user_attrs.get("fail_reason") for t in b]


def test_the_next_trial_is_asked_before_the_current_one_ends(tmp_path):
    """study.trials_in_flight=2 (default): trial k+1 starts before trial k is told, so that its
    folds can take the process trial k leaves idle; with 1, trials run one after another."""
    for in_flight in (2, 1):
        folder = tmp_path / str(in_flight)
        folder.mkdir()
        args = [*FAST, "dataset=iris", "study.n_trials=5", f"study.trials_in_flight={in_flight}"]
        assert_ok(run_cli(args, folder))
        trials = load_study(folder, "iris-mlp").trials
        overlaps = [
            later.datetime_start < earlier.datetime_complete
            for earlier, later in zip(trials, trials[1:], strict=False)
        ]
        assert overlaps == [in_flight == 2] * 4


def test_help_and_cfg_job_work(tmp_path):
    helped = run_cli(["--help"], tmp_path)
    assert_ok(helped)
    assert "sampler: gp, grid, qmc, random, tpe" in helped.stdout
    assert "pruner: hyperband, median, none, percentile, wilcoxon" in helped.stdout
    shown = run_cli(["--cfg", "job", "dataset=wine"], tmp_path)
    assert_ok(shown)
    assert "name: wine" in shown.stdout
    assert not (tmp_path / "mlruns").exists()

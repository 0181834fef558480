"""pipeline.results.report: the trials table, Optuna's plots and the champion's pictures on a real
Optuna study, logged to a real MLflow SQLite store."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from pipeline.results.report import fold_spread_figure, log_report, study_figures
from pipeline.results.study_plots import complete_trials
from pipeline.results.trials_csv import trials_table
from pipeline.tracking.store import connect
from tests.helpers import REPORT_PLOTS

FOLDS = 3


def fold_objective(trial: optuna.Trial) -> float:
    """Scores that depend on the parameters; trial 2 is pruned after one fold, 3 fails."""
    lr = trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True)
    units = trial.suggest_int("hidden_units", 4, 64)
    trial.suggest_categorical("activation", ["relu", "tanh"])
    trial.set_user_attr("fit_seconds", 0.1 * trial.number)
    if trial.number == 3:
        raise RuntimeError("diverged")
    scores = [0.5 + 0.3 * np.log10(lr * 1000) / 2 + units / 1000 + 0.01 * f for f in range(FOLDS)]
    for fold, score in enumerate(scores):
        trial.report(score, step=fold)
        if trial.number == 2:
            trial.set_user_attr("fail_reason", "pruned after 1 of 3 folds")
            raise optuna.TrialPruned()
    return float(np.mean(scores))


def make_study(n_trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        study_name="report-test", direction="maximize", sampler=optuna.samplers.RandomSampler(0)
    )
    study.optimize(fold_objective, n_trials=n_trials, catch=(RuntimeError,))
    return study


def test_trials_table_has_one_row_per_trial_with_its_folds():
    study = make_study(6)
    table = trials_table(study)
    assert list(table["number"]) == list(range(6))
    assert list(table["state"][:4]) == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert {"learning_rate", "hidden_units", "activation", "fit_seconds", "trial_seconds"} <= set(
        table.columns
    )
    assert [c for c in table.columns if c.startswith("fold_")] == [
        "fold_0_accuracy",
        "fold_1_accuracy",
        "fold_2_accuracy",
    ]
    first = study.trials[0]
    row = table.iloc[0]
    assert row["cv_accuracy_mean"] == pytest.approx(first.value)
    assert row["cv_accuracy_std"] == pytest.approx(np.std(list(first.intermediate_values.values())))
    pruned = table.iloc[2]
    assert pruned["fold_0_accuracy"] == study.trials[2].intermediate_values[0]
    assert np.isnan(pruned["fold_1_accuracy"])
    assert pruned["fail_reason"].startswith("pruned")
    assert np.isnan(table.iloc[3]["cv_accuracy_mean"])


def test_importances_are_skipped_with_a_note_below_two_complete_trials():
    figures, notes = study_figures(make_study(1))
    assert set(figures) == {"optimization_history", "parallel_coordinate", "slice"}
    assert notes == ["param_importances: needs >= 2 complete trials, the study has 1"]
    figures, notes = study_figures(make_study(5))
    assert "param_importances" in figures and not notes


def test_fold_spread_shows_the_best_complete_trials_first():
    study = make_study(8)
    figure = fold_spread_figure(complete_trials(study), "accuracy", top=3)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = sorted(complete, key=lambda t: -t.value)[:3]
    assert labels == [f"#{t.number}" for t in best]


def test_log_report_writes_pngs_and_csv_on_the_run(tmp_path):
    study = make_study(6)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "mlruns" / "artifacts"), "report-test")
    run_id = client.create_run(experiment_id).info.run_id
    rng = np.random.default_rng(0)
    y_test = rng.integers(0, 3, size=30)
    y_pred = np.where(rng.random(30) < 0.8, y_test, (y_test + 1) % 3)
    written = log_report(
        client,
        run_id,
        study,
        loss_curve=np.geomspace(1.0, 0.05, 40),
        y_test=y_test,
        y_pred=y_pred,
    )
    expected = {f"plots/{name}.png" for name in REPORT_PLOTS}
    assert set(written) == expected | {"trials.csv"}
    listed = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert listed == expected
    for path in expected:  # real images the MLflow UI can show
        local = client.download_artifacts(run_id, path, str(tmp_path / "down"))
        with Image.open(local) as image:
            assert image.format == "PNG" and min(image.size) > 100
    local = client.download_artifacts(run_id, "trials.csv", str(tmp_path / "down"))
    expected_csv = pd.read_csv(io.StringIO(trials_table(study).to_csv(index=False)))
    assert pd.read_csv(local).equals(expected_csv)
    assert MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics["report_seconds"] > 0

"""Regression, a choice of metric and tables of any columns, through the real CLI.

A mixed table (numbers, true/false, text, missing values, an id column) is swept once as a
classification scored by macro F1 and once, as Parquet, as a regression scored by MAE; diabetes
(scikit-learn's bundled regression set) runs with the defaults. Each checks what a user sees:
the line that names the task and metric, the metric's names in MLflow, the champion's test
scores, the report's pictures, the served model reading raw rows, and `pipeline.train run_id=`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sklearn.model_selection import train_test_split

from pipeline.model.metrics import METRICS, task_metrics
from tests.e2e.shared_sweep import VENV_BIN, free_port, http_json, running_server, server_env
from tests.helpers import FAST, run_cli

pytestmark = pytest.mark.slow

SMALL = [o for o in FAST if not o.startswith("study.n_trials")] + ["study.n_trials=4"]


def mixed_table(rows: int = 240) -> pd.DataFrame:
    """People with an id, numbers, a true/false column, text columns with gaps, and two targets
    that depend on them: ``churn`` (text classes) and ``spend`` (a quantity)."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.normal(40, 12, rows).round(),
            "member": rng.random(rows) > 0.5,
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille"], rows),
            "plan": rng.choice(["basic", "pro", None], rows),
        }
    )
    signal = (table.age - 40) / 12 + np.where(table.city == "Paris", 1.2, -0.5)
    table["churn"] = np.where(signal + rng.normal(0, 0.5, rows) > 0.2, "yes", "no")
    table["spend"] = (
        50 + 2 * table.age + np.where(table.plan == "pro", 30, 0) + rng.normal(0, 5, rows)
    )
    table.loc[rng.choice(rows, 20, replace=False), "age"] = np.nan
    table.loc[rng.choice(rows, 15, replace=False), "city"] = None
    return table


@dataclass
class Sweep:
    folder: Path
    stdout: str
    client: MlflowClient
    study: str
    parent: mlflow.entities.Run
    trials: list

    def study_object(self) -> optuna.Study:
        journal = str(self.folder / "mlruns" / "optuna.journal")
        return optuna.load_study(
            study_name=self.study, storage=JournalStorage(JournalFileBackend(journal))
        )


def sweep(folder: Path, args: list[str], study: str) -> Sweep:
    result = run_cli([*SMALL, *args], folder)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlp-sweep")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlp_sweep.study` = '{study}'"
    )
    parent = next(r for r in runs if r.data.tags["mlp_sweep.role"] == "study")
    trials = [r for r in runs if r.data.tags["mlp_sweep.role"] == "trial"]
    return Sweep(folder, result.stdout, client, study, parent, trials)


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("churn")
    mixed_table().to_csv(folder / "people.csv", index=False)
    args = [
        "dataset=csv",
        "dataset.path=people.csv",
        "dataset.target=churn",
        "dataset.drop=[id,spend]",
        "cv.metric=f1_macro",
        "study.name=churn",
    ]
    return sweep(folder, args, "churn")


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("diabetes"), ["dataset=diabetes"], "diabetes-mlp")


def test_the_task_and_metric_are_said_once(churn, diabetes):
    assert churn.stdout.count("task: ") == 1
    assert (
        "task: classification of column 'churn' of people.csv (inferred: text values; set "
        "dataset.task to change); optimising cv.metric=f1_macro (maximize)" in churn.stdout
    )
    assert "task: regression of dataset=diabetes; optimising cv.metric=rmse (minimize)" in (
        diabetes.stdout
    )
    assert "CV f1_macro " in churn.stdout and "test f1_macro " in churn.stdout
    assert "CV rmse " in diabetes.stdout and "test rmse " in diabetes.stdout


def test_mlflow_names_follow_the_metric(churn, diabetes):
    for run, metric in ((churn, "f1_macro"), (diabetes, "rmse")):
        finished = [t for t in run.trials if t.info.status == "FINISHED"]
        assert finished
        for trial in finished:
            names = set(trial.data.metrics)
            assert {f"fold_{i}_{metric}" for i in range(3)} <= names
            assert {f"cv_{metric}_mean", f"cv_{metric}_std"} <= names
            assert not any("accuracy" in n for n in names) or metric == "accuracy"
        study = run.study_object()
        assert study.metric_names == [f"cv_{metric}_mean"]
        assert study.direction.name.lower() == METRICS[metric].direction


def test_the_champion_is_tested_in_every_metric_of_its_task(churn, diabetes):
    for run, task in ((churn, "classification"), (diabetes, "regression")):
        logged = run.parent.data.metrics
        for metric in task_metrics(task):
            assert np.isfinite(logged[f"test_{metric.name}"]), metric.name
    assert 0.6 < churn.parent.data.metrics["test_f1_macro"] <= 1.0
    assert diabetes.parent.data.metrics["test_r2"] > 0.2  # a model that learned something
    assert diabetes.parent.data.metrics["test_rmse"] < 80.0  # the target's std is ~77


def test_the_report_draws_what_fits_the_task(churn, diabetes):
    def plots(run):
        return {a.path for a in run.client.list_artifacts(run.parent.info.run_id, "plots")}

    assert "plots/champion_confusion_matrix.png" in plots(churn)
    regression = plots(diabetes)
    assert {"plots/champion_predicted_vs_actual.png", "plots/champion_residuals.png"} <= regression
    assert "plots/champion_confusion_matrix.png" not in regression
    table = pd.read_csv(
        diabetes.client.download_artifacts(
            diabetes.parent.info.run_id, "trials.csv", str(diabetes.folder)
        )
    )
    assert {"cv_rmse_mean", "fold_0_rmse"} <= set(table.columns)


def test_the_served_model_reads_raw_rows_and_scores_the_test_split_as_logged(churn):
    """The champion takes the table's own rows (text, true/false, gaps, columns in any order)
    and, on the held-out rows, gives the test score the sweep logged."""
    table = mixed_table()
    features = table.drop(columns=["id", "spend", "churn"])
    _, test_rows, _, test_labels = train_test_split(
        features, table["churn"].to_numpy(), test_size=0.2, stratify=table["churn"], random_state=0
    )
    mlflow.set_tracking_uri(f"sqlite:///{churn.folder / 'mlruns' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/churn@champion")
    predicted = model.predict(test_rows[list(reversed(test_rows.columns))])
    classes = np.array(["no", "yes"])
    onehot = (predicted[:, None] == classes).astype(float)
    f1 = METRICS["f1_macro"].score(test_labels, onehot, classes)
    assert f1 == pytest.approx(churn.parent.data.metrics["test_f1_macro"], abs=1e-12)

    odd = test_rows.head(3).copy()
    odd.loc[odd.index[0], "city"] = "Berlin"  # a city never seen in training
    odd.loc[odd.index[1], "age"] = None
    odd.loc[odd.index[2], "plan"] = None
    expected = model.predict(odd)
    assert set(expected) <= {"yes", "no"}

    port = free_port()
    command = [
        f"{VENV_BIN}/mlflow", "models", "serve", "-m", "models:/churn@champion",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    env = server_env(f"sqlite:///{churn.folder / 'mlruns' / 'mlflow.db'}")
    body = {"dataframe_split": json.loads(odd.to_json(orient="split", index=False))}
    with running_server(command, f"{base}/ping", env, churn.folder):
        answer = http_json(f"{base}/invocations", body)
    assert answer["predictions"] == expected.tolist()


def test_a_parquet_regression_is_reproduced_by_train(tmp_path):
    mixed_table().to_parquet(tmp_path / "people.parquet")
    args = [
        "dataset=parquet",
        "dataset.path=people.parquet",
        "dataset.target=spend",
        "dataset.drop=[id,churn]",
        "cv.metric=mae",
        "study.name=spend",
    ]
    run = sweep(tmp_path, args, "spend")
    assert "task: regression of column 'spend' of people.parquet (inferred: decimal numbers" in (
        run.stdout
    )
    finished = [t for t in run.trials if t.info.status == "FINISHED"]
    result = run_cli(["-m", "pipeline.train", f"run_id={finished[0].info.run_id}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fold  mae  recorded" in result.stdout
    assert "reproduced: all 3 recorded folds equal" in result.stdout

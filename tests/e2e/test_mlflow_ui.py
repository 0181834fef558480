"""What the MLflow UI shows of a finished sweep, read through a real `mlflow server`'s REST API
(the same calls the UI's pages make): the experiment, the parent run with its nested trial runs,
their params, metrics and artifacts, the plots on the parent, the registered champion."""

from __future__ import annotations

import urllib.parse

import pytest

from pipeline.model.metrics import task_metrics
from pipeline.results.champion import FINISHING_STEPS
from tests.e2e.shared_sweep import N_TRIALS, STUDY, http_json
from tests.helpers import REPORT_PLOTS

pytestmark = pytest.mark.slow
PLOTS = set(REPORT_PLOTS)
HYPERPARAMETERS = {"learning_rate", "hidden_units", "hidden_layers", "iterations", "activation"}


@pytest.fixture(scope="module")
def api(mlflow_ui):
    """The base URL of /api/2.0/mlflow on a server over the shared sweep's store."""
    sweep, base = mlflow_ui
    return sweep, f"{base}/api/2.0/mlflow"


def get(api_url: str, endpoint: str, **query) -> dict:
    return http_json(f"{api_url}/{endpoint}?{urllib.parse.urlencode(query)}")


def as_dict(entries: list[dict]) -> dict:
    return {entry["key"]: entry["value"] for entry in entries}


def artifact_paths(api_url: str, run_id: str, path: str = "") -> set[str]:
    listed = get(api_url, "artifacts/list", run_id=run_id, path=path)
    return {entry["path"] for entry in listed.get("files", [])}


def search_runs(api_url: str, experiment_id: str, filter_string: str) -> list[dict]:
    body = {"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1000}
    return http_json(f"{api_url}/runs/search", body).get("runs", [])


def test_experiment_parent_and_nested_trial_runs(api):
    sweep, url = api
    experiment = get(url, "experiments/get-by-name", experiment_name="mlp-sweep")["experiment"]
    assert experiment["lifecycle_stage"] == "active"
    parents = search_runs(url, experiment["experiment_id"], "tags.`mlp_sweep.role` = 'study'")
    assert [p["info"]["run_id"] for p in parents] == [sweep.parent_run_id]
    parent = parents[0]
    assert parent["info"]["status"] == "FINISHED"
    assert parent["info"]["run_name"] == STUDY
    metrics = as_dict(parent["data"]["metrics"])
    assert metrics["trials_complete"] + metrics["trials_pruned"] == N_TRIALS
    assert metrics["trials_pruned"] >= 1  # the shared sweep prunes (tests.e2e.shared_sweep)
    assert 0.8 <= metrics["test_accuracy"] <= 1.0
    assert as_dict(parent["data"]["params"])["dataset"] == "iris"

    children = search_runs(
        url, experiment["experiment_id"], f"tags.mlflow.parentRunId = '{sweep.parent_run_id}'"
    )
    assert sorted(c["info"]["run_id"] for c in children) == sorted(sweep.trial_run_ids)
    assert len(children) == N_TRIALS
    states = [as_dict(c["data"]["tags"])["optuna.state"] for c in children]
    assert states.count("COMPLETE") == metrics["trials_complete"]
    assert states.count("PRUNED") == metrics["trials_pruned"]
    for child, state in zip(children, states, strict=True):
        run_id = child["info"]["run_id"]
        # A pruned trial's run is told apart at a glance: KILLED, and named so.
        assert (child["info"]["status"], child["info"]["run_name"].endswith(" (pruned)")) == (
            ("FINISHED", False) if state == "COMPLETE" else ("KILLED", True)
        )
        assert HYPERPARAMETERS <= set(as_dict(child["data"]["params"]))
        metrics = as_dict(child["data"]["metrics"])
        folds = {"fold_0_accuracy", "fold_1_accuracy", "fold_2_accuracy"}
        if state == "COMPLETE":
            assert folds | {"cv_accuracy_mean", "cv_accuracy_std"} <= set(metrics)
            history = get(url, "metrics/get-history", run_id=run_id, metric_key="train_loss")
            steps = [m["step"] for m in history["metrics"]]
            iterations = int(as_dict(child["data"]["params"])["iterations"])
            assert steps == list(range(len(steps))) and len(steps) <= iterations
            # its model; its settings are the parent's config.yaml, not a copy per trial
            assert artifact_paths(url, run_id) == {"model"}
        else:  # the folds it fitted before the pruner stopped it, none if inside its first
            reason = as_dict(child["data"]["tags"])["optuna.fail_reason"]
            inside_first_fold = reason.startswith("pruned in fold 0 at epoch ")
            assert ("fold_0_accuracy" in metrics) != inside_first_fold, reason
            assert not folds <= set(metrics)
            assert "learning_rate" in as_dict(child["data"]["params"])  # logged as it closed


def test_parent_artifacts_show_plots_table_and_config(api):
    sweep, url = api
    top = artifact_paths(url, sweep.parent_run_id)
    assert {"plots", "trials.csv", "best_params.yaml", "config.yaml"} <= top
    plots = artifact_paths(url, sweep.parent_run_id, "plots")
    assert plots == {f"plots/{name}.png" for name in PLOTS}
    listed = get(url, "artifacts/list", run_id=sweep.parent_run_id, path="plots")["files"]
    assert all(int(entry["file_size"]) > 1000 for entry in listed)


def test_registered_model_and_its_champion_alias(api):
    sweep, url = api
    model = get(url, "registered-models/get", name=STUDY)["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    assert set(aliases) == {"champion"}
    version = get(url, "registered-models/alias", name=STUDY, alias="champion")["model_version"]
    assert version["version"] == aliases["champion"]
    assert version["run_id"] == sweep.parent_run_id
    assert version["status"] == "READY"


def test_the_experiment_is_a_training_one_and_only_the_champions_scores_are_its_models(api):
    sweep, url = api
    experiment = get(url, "experiments/get-by-name", experiment_name="mlp-sweep")["experiment"]
    assert as_dict(experiment["tags"])["mlflow.experimentKind"] == "custom_model_development"
    parent = get(url, "runs/get", run_id=sweep.parent_run_id)["run"]
    (output,) = parent["outputs"]["model_outputs"]
    model = http_json(f"{url}/logged-models/{output['model_id']}")["model"]
    owned = {m["key"] for m in model["data"]["metrics"]}
    tests = {f"test_{m.name}" for m in task_metrics("classification")}  # test_accuracy, ...
    assert owned == {"best_cv_accuracy_mean", "best_cv_accuracy_std", *tests}
    study_metrics = set(as_dict(parent["data"]["metrics"])) - owned
    assert {"trials_pruned", "report_seconds", "fitting_wall_seconds"} <= study_metrics


def test_the_steps_after_the_last_trial_are_named_while_they_run(api):
    sweep, _ = api
    # tqdm redraws its bar with carriage returns: each state is one piece of the terminal's text.
    shown = [piece.strip() for piece in sweep.stderr.replace("\r", "\n").splitlines()]
    steps = [next(i for i, p in enumerate(shown) if step in p) for step in FINISHING_STEPS]
    assert steps == sorted(steps)  # in order, after the trials' bar is full
    trials_done = max(i for i, p in enumerate(shown) if f"{N_TRIALS}/{N_TRIALS}" in p)
    assert trials_done < steps[0]

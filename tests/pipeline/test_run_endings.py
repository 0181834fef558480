"""How a sweep's runs look in the MLflow UI: each trial's state as a run status and a word after
its name, the experiment's kind, and the champion's scores as the only metrics of its model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mlflow.entities import Metric
from sklearn.datasets import load_iris

from pipeline.model.ensemble import FittedNetwork, FoldEnsemble, ModelSpec
from pipeline.names import (
    CHAMPION_TRIAL_START_TAG,
    CHAMPION_TRIAL_TAG,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    STATE_TAG,
    STUDY_TAG,
)
from pipeline.tracking.models import log_champion
from pipeline.tracking.runs import TrialRun
from pipeline.tracking.store import connect


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "endings")
    return uri, client, experiment_id


@pytest.mark.parametrize(
    ("state", "status", "name"),
    [
        ("COMPLETE", "FINISHED", "trial-3"),
        ("PRUNED", "KILLED", "trial-3 (pruned)"),
        ("FAIL", "FAILED", "trial-3 (failed)"),
        ("KILLED", "KILLED", "trial-3 (interrupted)"),  # Ctrl-C: the objective's own state
    ],
)
def test_a_trial_state_is_a_run_status_and_a_word_after_the_name(store, state, status, name):
    _, client, experiment_id = store
    run = TrialRun(client, experiment_id, None, "study", 3)
    run.open()
    run.end(state, None if state == "COMPLETE" else "why")
    ended = client.get_run(run.run_id)
    assert (ended.info.status, ended.info.run_name) == (status, name)
    assert ended.data.tags[STATE_TAG] == state


def test_pruned_and_interrupted_runs_differ_though_both_are_killed(store):
    _, client, experiment_id = store
    names = set()
    for number, state in enumerate(("PRUNED", "KILLED")):
        run = TrialRun(client, experiment_id, None, "study", number)
        run.open()
        run.end(state, "why")
        names.add(client.get_run(run.run_id).info.run_name.split(" ", 1)[1])
    assert names == {"(pruned)", "(interrupted)"}


def test_the_experiment_is_a_training_one_also_when_an_older_version_made_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "new")
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    older = client.create_experiment("older")  # as versions before the tag made it
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(older).tags
    _, found = connect(uri, str(tmp_path / "artifacts"), "older")
    assert found == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_only_the_champions_scores_are_attributed_to_its_model(store):
    uri, client, experiment_id = store
    parent = client.create_run(experiment_id).info.run_id
    now = int(time.time() * 1000)
    # The study's own metrics, logged before the champion as a sweep does.
    client.log_batch(
        parent,
        metrics=[Metric("trials_complete", 3.0, now, 0), Metric("fitting_wall_seconds", 1, now, 1)],
    )
    X, y = load_iris(return_X_y=True)
    member = FittedNetwork.fit(ModelSpec.numeric(4), {"hidden_layer_sizes": (4,)}, X, y, 0)
    champion = FoldEnsemble([member])
    scores = [Metric("test_accuracy", 0.9, now, 0), Metric("best_cv_accuracy_mean", 0.8, now, 0)]
    key = {STUDY_TAG: "endings", CHAMPION_TRIAL_TAG: "0", CHAMPION_TRIAL_START_TAG: "then"}
    log_champion(uri, parent, champion, X[:5], "endings-model", key=key, scores=scores)
    client.log_batch(parent, metrics=[Metric("report_seconds", 0.5, now, 0)])

    (model,) = client.search_logged_models([experiment_id])
    assert {m.key for m in model.metrics} == {"test_accuracy", "best_cv_accuracy_mean"}
    logged = client.get_run(parent).data.metrics
    assert {"trials_complete", "fitting_wall_seconds", "report_seconds", "test_accuracy"} <= set(
        logged
    )
    assert np.isclose(logged["test_accuracy"], 0.9)

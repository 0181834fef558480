"""The trials' runs written on the tracking thread (pipeline.tracking.run_writer), on a real
MLflow SQLite store, found again by their tags."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipeline.tracking.background import BackgroundLog
from pipeline.tracking.run_writer import RunWriter
from pipeline.tracking.runs import TrialRun, trial_run_ids
from pipeline.tracking.store import connect


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "writer")
    parent = client.create_run(experiment_id).info.run_id
    return uri, client, experiment_id, parent


def closing(number: int) -> dict:
    return {
        "state": "COMPLETE",
        "reason": None,
        "metric": "accuracy",
        "scores": {0: 0.5 + number / 100, 1: 0.6},
        "fit_seconds": 0.1,
        "loss_curve": np.array([1.0, 0.5]),
        "trial_seconds": 0.2,
        "validation_curve": {10: 0.55},
        "params": {"learning_rate": 0.01 * (number + 1), "hidden_units": 8},
    }


def write_trials(writer: RunWriter, client, experiment_id, parent, numbers) -> None:
    for number in numbers:
        run = TrialRun(client, experiment_id, parent, "study", number)
        writer.open(run)
        writer.close(run, None, closing(number))


def test_each_trial_run_is_written_whole_under_its_parent(store):
    _, client, experiment_id, parent = store
    writer = RunWriter(BackgroundLog())
    write_trials(writer, client, experiment_id, parent, range(5))
    writer.flush()
    runs = trial_run_ids(client, experiment_id, parent)
    assert sorted(runs) == list(range(5))
    for number, run_id in runs.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"trial-{number}"
        assert float(run.data.params["learning_rate"]) == pytest.approx(0.01 * (number + 1))
        assert run.data.metrics["fold_0_accuracy"] == pytest.approx(0.5 + number / 100)
        assert run.data.tags["mlp_sweep.pid"] == str(os.getpid())
    assert trial_run_ids(client, experiment_id, parent, number=3) == {3: runs[3]}
    assert trial_run_ids(client, experiment_id, parent, running=True) == {}


def test_a_failed_write_is_raised_in_the_sweep_by_the_flush_and_the_writer_goes_on(store):
    _, client, experiment_id, parent = store
    writer = RunWriter(BackgroundLog())
    run = TrialRun(client, "12345", parent, "study", 0)  # an experiment the store lacks
    writer.open(run)
    with pytest.raises(Exception, match="No Experiment with id=12345"):
        writer.flush()
    write_trials(writer, client, experiment_id, parent, [1])
    writer.flush()
    assert list(trial_run_ids(client, experiment_id, parent)) == [1]

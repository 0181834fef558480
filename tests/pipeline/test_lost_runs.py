"""Runs left RUNNING by a trial's lost process are closed from the study; live ones are not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import optuna
import pytest

from pipeline.names import FAIL_REASON, OWNER_ATTR
from pipeline.tracking.lost_runs import close_lost_runs
from pipeline.tracking.runs import TrialRun
from pipeline.tracking.store import connect

STUDY = "lost-runs"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def add_trial(study, client, experiment_id, parent, *, state, host, pid, reason=None, scores=()):
    trial = study.ask()
    trial.suggest_float("learning_rate", 0.01, 0.1)
    for fold, score in enumerate(scores):
        trial.report(score, step=fold)
    trial.set_user_attr(OWNER_ATTR, {"host": host, "pid": pid, "worker": 0})
    if reason:
        trial.set_user_attr(FAIL_REASON, reason)
    run = TrialRun(client, experiment_id, parent, STUDY, trial.number)
    run.open()
    value = sum(scores) / len(scores) if state == optuna.trial.TrialState.COMPLETE else None
    study.tell(trial, value, state=state)
    return run.run_id


def test_only_runs_whose_trial_process_is_gone_are_closed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "lost")
    study = optuna.create_study(study_name=STUDY, direction="maximize")
    parent = client.create_run(experiment_id).info.run_id
    here, gone = socket.gethostname(), dead_pid()
    complete = optuna.trial.TrialState.COMPLETE
    failed = optuna.trial.TrialState.FAIL
    lost_complete = add_trial(
        study, client, experiment_id, parent, state=complete, host=here, pid=gone, scores=(0.9, 0.8)
    )
    live_complete = add_trial(
        study,
        client,
        experiment_id,
        parent,
        state=complete,
        host=here,
        pid=os.getpid(),
        scores=(0.7,),
    )
    heartbeat_lost = add_trial(
        study, client, experiment_id, parent, state=failed, host="node-7", pid=1
    )
    live_diverged = add_trial(
        study,
        client,
        experiment_id,
        parent,
        state=failed,
        host="node-7",
        pid=1,
        reason="diverged: ...",
    )

    close_lost_runs(study, client, experiment_id, parent)

    run = client.get_run(lost_complete)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["fold_0_accuracy"] == 0.9
    assert run.data.metrics["cv_accuracy_mean"] == pytest.approx(0.85)
    assert run.data.tags["optuna.state"] == "COMPLETE"
    # Its process died before the closing call that logs them: the study's are logged instead.
    assert float(run.data.params["learning_rate"]) == study.trials[0].params["learning_rate"]
    assert "mlp_sweep.closed_by" in run.data.tags
    run = client.get_run(heartbeat_lost)
    assert run.info.status == "FAILED"
    assert run.info.run_name.endswith(" (failed)")  # told apart from complete ones at a glance
    assert run.data.tags["optuna.fail_reason"].startswith("lost")
    # A live process (this one; or another host's that failed a trial itself) logs its own run.
    assert client.get_run(live_complete).info.status == "RUNNING"
    assert client.get_run(live_diverged).info.status == "RUNNING"


def test_a_finished_trial_whose_process_died_before_its_run_was_created_gets_one(tmp_path):
    """Runs are created on the tracking thread: a process killed with its queue unwritten leaves
    a told trial without any run. The next start writes it, closed, from the study."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "lost")
    study = optuna.create_study(study_name=STUDY, direction="maximize")
    parent = client.create_run(experiment_id).info.run_id
    trial = study.ask()
    trial.suggest_float("learning_rate", 0.01, 0.1)
    trial.report(0.75, step=0)
    trial.set_user_attr(OWNER_ATTR, {"host": socket.gethostname(), "pid": dead_pid(), "worker": 3})
    study.tell(trial, 0.75)
    live = study.ask()  # this process's own trial, told, its run not written yet: left alone
    live.set_user_attr(OWNER_ATTR, {"host": socket.gethostname(), "pid": os.getpid(), "worker": 0})
    study.tell(live, 0.5)

    close_lost_runs(study, client, experiment_id, parent)
    close_lost_runs(study, client, experiment_id, parent)  # once only

    (run,) = client.search_runs([experiment_id], "tags.`mlp_sweep.role` = 'trial'")
    assert run.data.tags["optuna.trial_number"] == str(trial.number)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["mlp_sweep.worker"] == "3"
    assert run.info.status == "FINISHED"
    assert run.data.metrics["cv_accuracy_mean"] == 0.75
    assert "learning_rate" in run.data.params


def test_the_closed_runs_of_an_earlier_sweep_are_read_in_one_query_not_one_per_trial(tmp_path):
    """Every trial of an earlier sweep on this host has a gone process; asking MLflow once per
    trial whether its run was closed took minutes at thousands of trials."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "lost")
    study = optuna.create_study(study_name=STUDY, direction="maximize")
    parent = client.create_run(experiment_id).info.run_id
    here, gone = socket.gethostname(), dead_pid()
    for _ in range(30):
        run_id = add_trial(
            study, client, experiment_id, parent, state=optuna.trial.TrialState.COMPLETE,
            host=here, pid=gone, scores=(0.9,),
        )  # fmt: skip
        client.set_terminated(run_id)  # closed by its own process
    searches = []
    search_runs = client.search_runs
    client.search_runs = lambda *args, **kwargs: (
        searches.append(args) or search_runs(*args, **kwargs)
    )

    close_lost_runs(study, client, experiment_id, parent)

    assert len(searches) == 2  # the RUNNING runs, then every trial run of the study
    runs = client.search_runs([experiment_id], "tags.`mlp_sweep.closed_by` != ''")
    assert runs == []  # none closed a second time

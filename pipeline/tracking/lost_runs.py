"""MLflow runs that their trial's process can no longer write, closed (or made) from the study.

A trial's process writes its run on its tracking thread: it creates it as the trial starts and
closes it just after the trial ends in Optuna (pipeline.tracking.run_writer); a process killed
in between, or a trial failed as lost, leaves its run RUNNING, or never created. The lead worker
closes or creates such runs when it starts and before it finalises the study.
"""

from __future__ import annotations

import time

import optuna
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from pipeline.names import CLOSED_BY_TAG, FAIL_REASON, FINISHED_STATES
from pipeline.search.recovery import owner_gone, owner_of
from pipeline.search.study import study_metric
from pipeline.tracking.runs import (
    TrialRun,
    ending,
    fold_score_metrics,
    params_of,
    trial_run_ids,
    trial_run_name,
    worker_tags,
)


def close_lost_runs(study: optuna.Study, client: MlflowClient, experiment_id: str, parent_id: str):
    """Close the MLflow runs of finished trials whose process can no longer close them, and
    write the runs it never created.

    A trial's process writes its run on its tracking thread (created as the trial starts, closed
    as it ends; pipeline.tracking.run_writer). A finished trial whose run is still RUNNING, or
    has none, therefore either belongs to a live process still writing it (left alone) or lost
    its process: a FAIL trial failed as lost (by heartbeat on RDB storages, by whichever worker
    noticed; or by pid), or any finished trial whose recorded process on this host is gone.
    Such a run gets the trial's state, parameters and the fold scores the study holds, and is
    closed; so every finished trial keeps a run.
    """
    lost = [
        trial
        for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES)
        if lost_process(trial)
    ]
    if not lost:
        return
    running = trial_run_ids(client, experiment_id, parent_id, running=True)
    # Every trial of an earlier sweep on this host is a candidate (its process is gone) and
    # nearly all of them have a closed run: the study's runs are read once, not one query per
    # trial (minutes at thousands of trials).
    closed = {}
    if any(trial.number not in running for trial in lost):
        closed = trial_run_ids(client, experiment_id, parent_id)
    metric = study_metric(study)
    for trial in lost:
        run_id = running.get(trial.number)
        if run_id is None:
            if trial.number in closed:
                continue  # closed by its own process
            run_id = recreated_run(client, experiment_id, parent_id, study.study_name, trial)
        close_from_study(client, run_id, trial, metric)


def lost_process(trial: FrozenTrial) -> bool:
    """Whether the finished ``trial``'s process can no longer write its run."""
    reason = trial.user_attrs.get(FAIL_REASON)
    lost_failure = trial.state == TrialState.FAIL and (reason or "lost").startswith("lost")
    return lost_failure or owner_gone(trial)


def recreated_run(
    client: MlflowClient, experiment_id: str, parent_id: str, study_name: str, trial: FrozenTrial
) -> str:
    """The run of ``trial``, whose process died before its tracking thread created it, with the
    tags it would have had (its owner's host and pid)."""
    owner = owner_of(trial)
    worker = (owner.worker if owner else None) or 0
    tags = worker_tags(worker, owner.host, owner.pid) if owner else None
    run = TrialRun(client, experiment_id, parent_id, study_name, trial.number, worker, tags=tags)
    run.open()
    return run.run_id


def close_from_study(client: MlflowClient, run_id: str, trial: FrozenTrial, metric: str) -> None:
    """Log what the study knows of ``trial`` (state, reason, parameters, fold scores in
    ``metric``) and close its run."""
    now = int(time.time() * 1000)
    metrics = fold_score_metrics(metric, trial.intermediate_values, now)
    state = trial.state.name
    reason = trial.user_attrs.get(FAIL_REASON)
    if state == "FAIL" and not reason:
        reason = "lost: its process ended mid-trial"
    status, tags = ending(trial_run_name(trial.number), state, reason)
    tags.append(RunTag(CLOSED_BY_TAG, "a later start: the trial's process ended before its run"))
    client.log_batch(run_id, metrics=metrics, params=params_of(trial.params), tags=tags)
    client.set_terminated(run_id, status=status)

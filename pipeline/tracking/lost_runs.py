"""MLflow runs that their trial's process can no longer close, found and closed from the study.

A trial's process closes its run just after the trial ends in Optuna (the logging runs in the
background, see pipeline.tracking.background); a process killed in between, or a trial failed
as lost, leaves its run RUNNING. The lead worker closes such runs when it starts and before it
finalises the study.
"""

from __future__ import annotations

import time

import optuna
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from pipeline.names import CLOSED_BY_TAG, FAIL_REASON, FINISHED_STATES
from pipeline.search.recovery import owner_gone
from pipeline.search.study import study_metric
from pipeline.tracking.runs import (
    ending,
    fold_score_metrics,
    params_of,
    trial_run_ids,
    trial_run_name,
)


def close_lost_runs(study: optuna.Study, client: MlflowClient, experiment_id: str, parent_id: str):
    """Close the MLflow runs of finished trials whose process can no longer close them.

    A trial's process closes its run just after the trial ends in Optuna (the logging runs in
    the background, see pipeline.tracking.background). A finished trial whose run is still
    RUNNING therefore either belongs to a live process still logging it (left alone) or lost
    its process: a FAIL trial failed as lost (by heartbeat on RDB storages, by whichever worker
    noticed; or by pid), or any finished trial whose recorded process on this host is gone.
    Such a run gets the trial's state and the fold scores the study holds, and is closed.
    """
    running = trial_run_ids(client, experiment_id, parent_id, running=True)
    if not running:
        return
    for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES):
        run_id = running.get(trial.number)
        if run_id is None:
            continue
        reason = trial.user_attrs.get(FAIL_REASON)
        lost_failure = trial.state == TrialState.FAIL and (reason or "lost").startswith("lost")
        if not (lost_failure or owner_gone(trial)):
            continue
        close_from_study(client, run_id, trial, study_metric(study))


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

"""The runs of a sweep: one parent run per study, one child run per trial (or per train run).

Only :class:`mlflow.MlflowClient` calls with explicit run ids are used during the search (the
fluent API keeps a global active run and is not thread-safe); metrics go in batches because one
``log_metric`` costs milliseconds on a database store.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from pipeline.folds.fitting_time import FittingTime
from pipeline.model.ensemble import FoldEnsemble
from pipeline.names import (
    FAIL_REASON_TAG,
    FIT_SECONDS,
    PARENT_RUN_TAG,
    ROLE_TAG,
    RUN_NAME_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
    cv_mean,
    cv_std,
    fold_metric,
    validation_curve_metric,
)
from pipeline.redaction import redact
from pipeline.tracking.models import save_pyfunc

BATCH_LIMIT = 1000  # LogBatch accepts at most 1000 metrics per call

# How a trial's Optuna state shows in the MLflow UI: its run's status, and a word after its name.
# The UI's run table marks FINISHED runs alone green and draws FAILED and KILLED with the same
# red mark, so the word tells a pruned trial (KILLED: stopped on purpose, not broken) from one
# stopped by Ctrl-C (the objective's state "KILLED").
RUN_ENDINGS = {
    "COMPLETE": ("FINISHED", None),
    "PRUNED": ("KILLED", "pruned"),
    "FAIL": ("FAILED", "failed"),
}
INTERRUPTED_ENDING = ("KILLED", "interrupted")


def trial_run_name(trial_number: int | None) -> str:
    return f"trial-{trial_number}"


def ending(name: str, state: str, reason: str | None) -> tuple[str, list[RunTag]]:
    """The run status and the tags that close the run ``name`` of a trial in ``state``: the
    state itself, the reason, and the name with its state's word (``trial-12 (pruned)``)."""
    status, word = RUN_ENDINGS.get(state, INTERRUPTED_ENDING)
    tags = [RunTag(STATE_TAG, state)]
    if reason:
        tags.append(RunTag(FAIL_REASON_TAG, reason[:5000]))
    if word:
        tags.append(RunTag(RUN_NAME_TAG, f"{name} ({word})"))
    return status, tags


def worker_tags(worker: int, host: str | None = None, pid: int | None = None) -> dict[str, str]:
    """Where a run executes (this process, unless ``host`` and ``pid`` say another): host,
    worker index, pid and, under SLURM, the job id."""
    tags = {
        "mlp_sweep.host": host or socket.gethostname(),
        "mlp_sweep.worker": str(worker),
        "mlp_sweep.pid": str(pid or os.getpid()),
    }
    if "SLURM_JOB_ID" in os.environ:
        tags["mlp_sweep.slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def create_parent_run(
    client: MlflowClient,
    experiment_id: str,
    study_name: str,
    params: Mapping[str, Any],
    config_yaml: str,
) -> str:
    """The study's parent run: settings that never change as params, the config as artifact."""
    run = client.create_run(
        experiment_id, run_name=study_name, tags={STUDY_TAG: study_name, ROLE_TAG: "study"}
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, redact(str(v))[:6000]) for k, v in params.items()])
    client.log_text(run_id, redact(config_yaml), "config.yaml")
    return run_id


class TrialRun:
    """The child run of one trial, created when the trial starts so that a crash leaves a trace.

    Without a parent, study and trial number it is the run of one configuration trained on its
    own (``python -m pipeline.train``), logged the same way; ``tags`` are added or replace ours.
    Nothing is written until :meth:`log_start`, which the sweep calls on its tracking thread
    (pipeline.tracking.background): the run's id is then known there only, and the run finds
    its trial by its tags (:func:`trial_run_ids`).
    """

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        parent_run_id: str | None = None,
        study_name: str | None = None,
        trial_number: int | None = None,
        worker: int = 0,
        *,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ):
        self.client, self.experiment_id = client, experiment_id
        found = {
            PARENT_RUN_TAG: parent_run_id,
            STUDY_TAG: study_name,
            ROLE_TAG: "trial",
            TRIAL_NUMBER_TAG: None if trial_number is None else str(trial_number),
            **worker_tags(worker),
            **(tags or {}),
        }
        self.tags = {k: v for k, v in found.items() if v is not None}
        self.name = run_name or trial_run_name(trial_number)
        self.run_id: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Sent to a writer process (pipeline.tracking.run_writer) without the client, which
        does not pickle: the process has its own."""
        return {**self.__dict__, "client": None}

    def open(self) -> None:
        """Create the run, with its tags only: a sweep's trial logs its parameters when it
        closes (one call to the store less per trial), and its settings are the parent run's
        ``config.yaml`` (pipeline.config.from_run)."""
        run = self.client.create_run(self.experiment_id, run_name=self.name, tags=self.tags)
        self.run_id = run.info.run_id

    def log_start(self, params: Mapping[str, Any], config_yaml: str) -> None:
        """Create the run, then log its parameters and its own config (a run without a parent,
        of ``pipeline.train``)."""
        self.open()
        self.client.log_batch(self.run_id, params=params_of(params))
        self.client.log_text(self.run_id, redact(config_yaml), "config.yaml")

    def log_model(self, ensemble: FoldEnsemble, X_example: np.ndarray) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = save_pyfunc(ensemble, Path(tmp), X_example)
            self.client.log_artifacts(self.run_id, str(path), "model")

    def finish(self, model: tuple | None, closing: Mapping[str, Any]) -> None:
        """Log ``model`` (``(ensemble, X_example)``, or None), then :meth:`close` with the
        keywords ``closing``: a sweep's trial ends so, wherever its run is written
        (pipeline.tracking.run_writer)."""
        if model is not None:
            self.log_model(*model)
        self.close(**closing)

    def close(
        self,
        state: str,
        reason: str | None,
        metric: str,
        scores: Mapping[int, float],
        fit_seconds: float,
        loss_curve: np.ndarray | None,
        trial_seconds: float,
        validation_curve: Mapping[int, float] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """The fold scores in ``metric``, their mean and std, the times, the learning curve,
        the validation curve ({epoch: mean validation score}) and ``params`` (those not logged
        at the start), with :meth:`end`, in one call to the store (two if the learning curve
        is long)."""
        metrics = fold_metrics(metric, scores, fit_seconds, loss_curve, trial_seconds)
        now = int(time.time() * 1000)
        name = validation_curve_metric(metric)
        metrics += [Metric(name, v, now, epoch) for epoch, v in (validation_curve or {}).items()]
        self.end(state, reason, metrics, params)

    def end(
        self,
        state: str,
        reason: str | None = None,
        metrics: list[Metric] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the Optuna state as a tag (with ``metrics`` and ``params``, in one call when
        the metrics fit in one) and close the run as :func:`ending` says."""
        status, tags = ending(self.name, state, reason)
        metrics = list(metrics)
        if len(metrics) + len(tags) > BATCH_LIMIT:
            log_metrics(self.client, self.run_id, metrics)
            metrics = []
        self.client.log_batch(
            self.run_id, metrics=metrics, params=params_of(params or {}), tags=tags
        )
        self.client.set_terminated(self.run_id, status=status)


def params_of(params: Mapping[str, Any]) -> list[Param]:
    """Parameters as MLflow's, their values as text."""
    return [Param(k, str(v)) for k, v in params.items()]


def log_fitting_time(client: MlflowClient, parent_id: str, fitting: FittingTime, worker: int):
    """The parent run's metrics (step = worker) ``discarded_fit_seconds``, fitting that pruning
    threw away (the folds still running when their trial was pruned or failed), and
    ``fitting_wall_seconds``, the wall time during which some fold was fitting
    (pipeline.folds.fitting_time)."""
    now = int(time.time() * 1000)
    metrics = [
        Metric("discarded_fit_seconds", fitting.discarded_seconds, now, worker),
        Metric("fitting_wall_seconds", fitting.wall_seconds(), now, worker),
    ]
    log_metrics(client, parent_id, metrics)


def fold_metrics(
    metric: str,
    scores: Mapping[int, float],
    fit_seconds: float,
    loss_curve: np.ndarray | None,
    trial_seconds: float,
) -> list[Metric]:
    """A trial's metrics: fold scores in ``metric``, their mean and std, times, the mean
    learning curve."""
    now = int(time.time() * 1000)
    metrics = fold_score_metrics(metric, scores, now)
    metrics += [
        Metric(FIT_SECONDS, fit_seconds, now, 0),
        Metric("trial_seconds", trial_seconds, now, 0),
        Metric("folds_fitted", float(len(scores)), now, 0),
    ]
    if loss_curve is not None:
        metrics += [
            Metric("train_loss", float(v), now, step)
            for step, v in enumerate(loss_curve)
            if np.isfinite(v)
        ]
    return metrics


def fold_score_metrics(metric: str, scores: Mapping[int, float], timestamp: int) -> list[Metric]:
    """Each fold's score in ``metric``, and their mean and std over the folds fitted (none if no
    fold was)."""
    metrics = [
        Metric(fold_metric(fold, metric), score, timestamp, 0)
        for fold, score in sorted(scores.items())
    ]
    if scores:
        values = np.fromiter(scores.values(), dtype=np.float64)
        metrics += [
            Metric(cv_mean(metric), float(values.mean()), timestamp, 0),
            Metric(cv_std(metric), float(values.std()), timestamp, 0),
        ]
    return metrics


def log_metrics(client: MlflowClient, run_id: str, metrics: Iterable[Metric]) -> None:
    metrics = list(metrics)
    for start in range(0, len(metrics), BATCH_LIMIT):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH_LIMIT])


def trial_run_ids(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    *,
    number: int | None = None,
    running: bool = False,
) -> dict[int, str]:
    """The run ids of a study's trials by trial number, read from their tags: the trial runs
    under ``parent_run_id``, only trial ``number``'s if given, only the RUNNING ones with
    ``running`` (one query per 1000 runs)."""
    conditions = [f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'", f"tags.`{ROLE_TAG}` = 'trial'"]
    if number is not None:
        conditions.append(f"tags.`{TRIAL_NUMBER_TAG}` = '{int(number)}'")
    if running:
        conditions.append("attributes.status = 'RUNNING'")
    found, token = {}, None
    while True:
        page = client.search_runs(
            [experiment_id], " and ".join(conditions), max_results=1000, page_token=token
        )
        found |= {int(run.data.tags[TRIAL_NUMBER_TAG]): run.info.run_id for run in page}
        token = page.token
        if not token:
            return found

"""MLflow side of a sweep: one parent run per study, one child run per trial, the champion.

Only :class:`mlflow.MlflowClient` calls with explicit run ids are used during the search (the
fluent API keeps a global active run and is not thread-safe); metrics go in batches because one
``log_metric`` costs milliseconds on a database store.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import sqlalchemy
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient

from pipeline.errors import UserInputError
from pipeline.fitted_model import FoldEnsemble
from pipeline.fitting_time import FittingTime
from pipeline.redaction import redact
from pipeline.store_template import provide_sqlite_store

PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")
CHAMPION_TRIAL_TAG = "mlp_sweep.best_trial"  # on a registered version: the trial it refits
MODEL_REQUIREMENTS = ["mlflow", "numpy", "pandas", "scikit-learn"]
BATCH_LIMIT = 1000  # LogBatch accepts at most 1000 metrics per call
STUDY_TAG = "mlp_sweep.study"
TRIAL_RUN_ATTR = "mlflow_run_id"  # the Optuna trial's user attribute naming its MLflow run
# Copying a model's few files is instant; MLflow's per-copy progress bars only flood the terminal.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
ROLE_TAG = "mlp_sweep.role"


def connect(uri: str, artifact_location: str, experiment: str) -> tuple[MlflowClient, str]:
    """Open the tracking store (creating a local SQLite file's folder) and the experiment."""
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        provide_sqlite_store(uri)  # a migrated copy instead of 2 s of migrations
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return client, found.experiment_id
        location = artifact_location
        if uri.startswith(("http://", "https://")) and "://" not in (location or ""):
            # A tracking server keeps the artifacts (mlflow server --artifacts-destination); a
            # path would be a folder on whichever node created the experiment.
            location = ""
        if location and "://" not in location:
            folder = Path(location).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            location = folder.as_uri()
        return client, _create_experiment(client, experiment, location or None)
    # MLflow's own errors, and SQLAlchemy's that it lets through (a database that went away
    # since the check before the study, pipeline.preflight): both mean "cannot use the store".
    except (mlflow.exceptions.MlflowException, sqlalchemy.exc.SQLAlchemyError) as error:
        reason = redact(str(error).splitlines()[0]) if str(error) else type(error).__name__
        raise UserInputError(
            f"tracking.uri={redact(uri)}: cannot use the store ({reason})"
        ) from None


def _create_experiment(client: MlflowClient, name: str, location: str | None) -> str:
    """Create the experiment; if another worker created it at the same instant, use theirs."""
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def worker_tags(worker: int) -> dict[str, str]:
    """Where a run executes: host, worker index and, under SLURM, the job id."""
    tags = {
        "mlp_sweep.host": socket.gethostname(),
        "mlp_sweep.worker": str(worker),
        "mlp_sweep.pid": str(os.getpid()),
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
    """The child run of one trial, opened when the trial starts so that a crash leaves a trace.

    Without a parent, study and trial number it is the run of one configuration trained on its
    own (``python -m pipeline.train``), logged the same way; ``tags`` are added or replace ours.
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
        self.client = client
        found = {
            "mlflow.parentRunId": parent_run_id,
            STUDY_TAG: study_name,
            ROLE_TAG: "trial",
            "optuna.trial_number": None if trial_number is None else str(trial_number),
            **worker_tags(worker),
            **(tags or {}),
        }
        run = client.create_run(
            experiment_id,
            run_name=run_name or f"trial-{trial_number}",
            tags={k: v for k, v in found.items() if v is not None},
        )
        self.run_id = run.info.run_id

    def log_start(self, params: Mapping[str, Any], config_yaml: str) -> None:
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        self.client.log_text(self.run_id, redact(config_yaml), "config.yaml")

    def log_folds(
        self,
        scores: Mapping[int, float],
        fit_seconds: float,
        loss_curve: np.ndarray | None,
        trial_seconds: float,
    ) -> None:
        """Each fold's accuracy, mean and std over finished folds, times, the learning curve."""
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"fold_{fold}_accuracy", score, now, 0) for fold, score in sorted(scores.items())
        ]
        if scores:
            values = np.fromiter(scores.values(), dtype=np.float64)
            metrics += [
                Metric("cv_accuracy_mean", float(values.mean()), now, 0),
                Metric("cv_accuracy_std", float(values.std()), now, 0),
            ]
        metrics += [
            Metric("fit_seconds", fit_seconds, now, 0),
            Metric("trial_seconds", trial_seconds, now, 0),
            Metric("folds_fitted", float(len(scores)), now, 0),
        ]
        if loss_curve is not None:
            metrics += [
                Metric("train_loss", float(v), now, step)
                for step, v in enumerate(loss_curve)
                if np.isfinite(v)
            ]
        log_metrics(self.client, self.run_id, metrics)

    def log_model(self, ensemble: FoldEnsemble, X_example: np.ndarray) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = save_pyfunc(ensemble, Path(tmp), X_example)
            self.client.log_artifacts(self.run_id, str(path), "model")

    def end(self, state: str, reason: str | None = None) -> None:
        """Record the Optuna state as a tag and close the run (FINISHED, FAILED or KILLED)."""
        tags = [RunTag("optuna.state", state)]
        if reason:
            tags.append(RunTag("optuna.fail_reason", reason[:5000]))
        self.client.log_batch(self.run_id, tags=tags)
        status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}.get(
            state, "KILLED"
        )
        self.client.set_terminated(self.run_id, status=status)


def log_fitting_time(client: MlflowClient, parent_id: str, fitting: FittingTime, worker: int):
    """The parent run's metrics (step = worker) ``discarded_fit_seconds``, fitting that pruning
    threw away (the folds still running when their trial was pruned or failed), and
    ``fitting_wall_seconds``, the wall time during which some fold was fitting
    (pipeline.fitting_time)."""
    now = int(time.time() * 1000)
    metrics = [
        Metric("discarded_fit_seconds", fitting.discarded_seconds, now, worker),
        Metric("fitting_wall_seconds", fitting.wall_seconds(), now, worker),
    ]
    log_metrics(client, parent_id, metrics)


def log_metrics(client: MlflowClient, run_id: str, metrics: Iterable[Metric]) -> None:
    metrics = list(metrics)
    for start in range(0, len(metrics), BATCH_LIMIT):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH_LIMIT])


def model_signature(ensemble: FoldEnsemble, X_example: np.ndarray) -> ModelSignature:
    """The outputs' schema only (labels, from ``X_example``'s predictions).

    An input schema would make MLflow convert the input before the model sees it: a tensor one
    reads a DataFrame's columns by position (so reordered columns predicted silently wrong), a
    column one refuses arrays. Without it the model takes both (pipeline.pyfunc_model): a
    DataFrame by column name, an array by position, each checked against the training columns.
    """
    return ModelSignature(outputs=infer_signature(X_example, ensemble.predict(X_example)).outputs)


def save_pyfunc(ensemble: FoldEnsemble, folder: Path, X_example: np.ndarray) -> Path:
    """Write an MLflow pyfunc model (models-from-code, ``.npz`` weights) under ``folder``."""
    weights = folder / "ensemble"
    ensemble.save(weights)
    path = folder / "model"
    with quiet_model_logging():
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(PYFUNC_MODEL_FILE),
            artifacts={"ensemble": str(weights)},
            pip_requirements=MODEL_REQUIREMENTS,
            signature=model_signature(ensemble, X_example),
        )
    return path


@contextmanager
def quiet_model_logging() -> Iterator[None]:
    """MLflow advises an input example; the signature given already says it all, and an input
    example would make MLflow load and run every trial's model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*An input example was not provided")
        yield


def log_champion(
    uri: str,
    parent_run_id: str,
    ensemble: FoldEnsemble,
    X_example: np.ndarray,
    registered_model: str,
    best_trial: int,
) -> str:
    """Log the champion on the parent run, register it (tagged with ``best_trial``, the number
    of the trial it refits) and point the alias ``champion`` at it.

    Returns the registered model version.
    """
    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=parent_run_id):
        weights = Path(tmp) / "ensemble"
        ensemble.save(weights)
        with quiet_model_logging():
            info = mlflow.pyfunc.log_model(
                name="champion",
                python_model=str(PYFUNC_MODEL_FILE),
                artifacts={"ensemble": str(weights)},
                pip_requirements=MODEL_REQUIREMENTS,
                signature=model_signature(ensemble, X_example),
                registered_model_name=registered_model,
            )
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri=uri)
    client.set_model_version_tag(registered_model, version, CHAMPION_TRIAL_TAG, str(best_trial))
    client.set_registered_model_alias(registered_model, "champion", version)
    return version


def registered_champion(
    client: MlflowClient, registered_model: str, parent_run_id: str, best_trial: int
) -> str | None:
    """The version the alias ``champion`` points at if it is this study's refit of ``best_trial``
    (logged on ``parent_run_id``); else None (none yet, another study's, an older best)."""
    try:
        version = client.get_model_version_by_alias(registered_model, "champion")
    except mlflow.exceptions.MlflowException:  # no such model or alias yet
        return None
    if version.run_id != parent_run_id or version.tags.get(CHAMPION_TRIAL_TAG) != str(best_trial):
        return None
    return str(version.version)

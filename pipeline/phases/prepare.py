"""Phase 1 of a sweep: every check, the data split, the study opened and the tracking started.

In a multirun every job is an Optuna worker of the same study: worker 0 leads (creates the study
and the MLflow parent run, recovers lost trials), the others wait for it and then share the
trials. MLflow is imported and connected on a thread: its imports then overlap the first trial's
folds instead of preceding them.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import optuna
from omegaconf import DictConfig

from pipeline.config.checks import check_network_fits, validate_config
from pipeline.config.schema import study_name
from pipeline.config.search_space import search_distributions
from pipeline.config.settings import comparable_settings, config_yaml, large_study, sweep_params
from pipeline.config.stores import check_stores
from pipeline.config.task import check_metric_defined, model_spec, resolve_task, task_line
from pipeline.data import Dataset, Split, check_targets, load_dataset, split_train_test
from pipeline.errors import SQLITE_DISK_FULL, UserInputError, is_disk_full
from pipeline.folds.pool import resolve_n_jobs, start_fold_workers, worker_cores
from pipeline.model.ensemble import ModelSpec
from pipeline.names import PARENT_RUN_ATTR, SQLITE_PREFIX
from pipeline.quiet import quiet_libraries
from pipeline.search.budget import Reservations, budget_used
from pipeline.search.objective import TrainingDiverged
from pipeline.search.recovery import quiet_failed_trials, recover_lost_trials
from pipeline.search.storage import local_file, open_storage
from pipeline.search.strategy import build_pruner, build_sampler
from pipeline.search.study import (
    check_direction,
    check_search_space,
    check_settings,
    find_study,
    open_study,
    record_settings,
)
from pipeline.tracking.background import BackgroundLog, run_in_thread
from pipeline.tracking.run_writer import ProcessRunWriter, RunWriter, choose_run_writer

# How long a new parent run waits for a second sweep of the same study, started together, to
# record its own (pipeline.phases.prepare.claim_parent_run).
PARENT_SETTLE_SECONDS = 1.0
# MLflow's module that logs every database error, with its traceback, before raising it.
MLFLOW_DB_LOGGER = "mlflow.store.db.utils"


class Tracking(NamedTuple):
    """The sweep's MLflow side, once connected."""

    client: object  # mlflow.MlflowClient
    experiment_id: str
    parent_run_id: str


@dataclass
class PreparedSweep:
    """What the search and the end of a sweep work with."""

    cfg: DictConfig
    data: Dataset
    split: Split
    spec: ModelSpec  # what each fold learns and how it is scored
    study: optuna.Study
    tracking: Future  # of Tracking: ready while the first trial already runs
    background: BackgroundLog  # work overlapping the trials (imports for the end)
    runs: RunWriter | ProcessRunWriter  # writes each trial's run, overlapping the next trials


def prepare(cfg: DictConfig) -> PreparedSweep:
    """Check everything, then open the stores: a failing check leaves no half-created study."""
    validate_config(cfg)
    quiet_optuna()  # before any thread starts: see pipeline.quiet
    # The fold processes import while this process loads the data and opens its stores.
    start_fold_workers(cfg.cv.n_jobs, cfg.cv.folds)
    quiet_mlflow_disk_full()
    data = load_dataset(cfg.dataset, cfg.study.seed)
    check_targets(data, cfg.cv.folds, cfg.cv.test_size)
    resolve_task(cfg, data)
    space = cfg.search_space
    check_network_fits(
        f"search_space.hidden_units.high={space.hidden_units.high}",
        (space.hidden_units.high,) * space.hidden_layers.high,
        resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds),
        (data.X.shape[0], data.n_inputs, data.n_outputs),
        cfg.model,
        "search_space.hidden_units.high or search_space.hidden_layers.high",
    )
    split = split_train_test(data, cfg.cv.test_size, cfg.study.seed)
    check_metric_defined(cfg, data, split)
    if cfg.worker == 0:
        print(task_line(cfg, data), flush=True)
    sampler, pruner = build_sampler(cfg), build_pruner(cfg)
    check_stores(cfg)
    storage = open_storage(cfg.study.storage, cfg.study.heartbeat_interval)
    check_settings(storage, study_name(cfg), comparable_settings(cfg))
    check_direction(storage, study_name(cfg), cfg.study.direction)
    check_search_space(storage, study_name(cfg), search_distributions(cfg.search_space))
    if cfg.worker == 0:
        study, tracking = lead(cfg, storage, sampler, pruner)
    else:
        study, tracking = follow(cfg, storage, sampler, pruner)
    background = BackgroundLog()
    if cfg.worker == 0:
        # The end's modules (plots: matplotlib, pandas) are imported during the trials.
        tracking.add_done_callback(lambda _: background.submit(import_finalisation))
    spec = model_spec(cfg, data)
    runs = run_writer(cfg, background)
    return PreparedSweep(cfg, data, split, spec, study, tracking, background, runs)


def run_writer(cfg: DictConfig, background: BackgroundLog):
    """The trials' run writer that ``tracking.writer`` and the study's size choose."""
    if choose_run_writer(cfg.tracking.writer, large_study(cfg), worker_cores()) == "process":
        return ProcessRunWriter(cfg.tracking.uri)
    return RunWriter(background)


class DiskFullReported(logging.Filter):
    """MLflow logs a database error with its traceback before raising it; a full disk is then
    reported by the sweep in one line (pipeline.errors.disk_full_as_one_line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (is_disk_full(error) or SQLITE_DISK_FULL in record.getMessage())


def quiet_mlflow_disk_full() -> None:
    logger = logging.getLogger(MLFLOW_DB_LOGGER)
    if not any(isinstance(f, DiskFullReported) for f in logger.filters):
        logger.addFilter(DiskFullReported())


def quiet_optuna() -> None:
    """Optuna's per-trial info lines and experimental-feature warnings stay out of the terminal;
    a diverged trial is reported in one line (its reason is on the trial and its run)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_libraries()
    quiet_failed_trials(expected=(TrainingDiverged,))


def lead(cfg: DictConfig, storage, sampler, pruner) -> tuple[optuna.Study, Future]:
    """Worker 0: create or resume the study, recover its lost trials, start the tracking."""
    study = open_study(
        storage, study_name(cfg), cfg.study.direction, cfg.cv.metric, sampler, pruner
    )
    record_settings(study, comparable_settings(cfg))
    recover_lost_trials(study)
    # Before any worker asks.
    Reservations(
        study, cfg.study.n_trials, lead=True, storage_file=local_file(cfg.study.storage)
    ).reserve()
    resuming = budget_used(study) < cfg.study.n_trials
    return study, start_tracking(cfg, lambda: lead_tracking(cfg, study, resuming))


def follow(cfg: DictConfig, storage, sampler, pruner) -> tuple[optuna.Study, Future]:
    """Other workers: wait until worker 0 has created the study and its parent run.

    They connect only then: processes creating a fresh MLflow SQLite store at the same instant
    crash in its schema migration.
    """
    name = study_name(cfg)
    deadline = time.monotonic() + cfg.study.leader_wait_seconds
    while time.monotonic() < deadline:
        existing = find_study(storage, name)
        if existing is not None and PARENT_RUN_ATTR in existing.user_attrs:
            check_settings(storage, name, comparable_settings(cfg))  # recorded by worker 0
            study = open_study(storage, name, cfg.study.direction, cfg.cv.metric, sampler, pruner)
            parent_id = existing.user_attrs[PARENT_RUN_ATTR]
            return study, start_tracking(cfg, partial(follow_tracking, cfg, parent_id))
        time.sleep(0.5)
    raise UserInputError(
        f"worker={cfg.worker}: worker 0 did not create study {name!r} within "
        f"{cfg.study.leader_wait_seconds:.0f} s (study.leader_wait_seconds); start worker 0"
    )


def start_tracking(cfg: DictConfig, setup) -> Future:
    """``setup()`` on a thread. Only a local SQLite store (checked by pipeline.config.stores) is
    left to finish while the first trial runs: a server's errors come before any trial."""
    tracking = run_in_thread(setup)
    if not str(cfg.tracking.uri).startswith(SQLITE_PREFIX):
        tracking.result()
    return tracking


def connect_tracking(cfg: DictConfig) -> tuple:
    from pipeline.tracking.store import connect

    return connect(cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment)


def follow_tracking(cfg: DictConfig, parent_id: str) -> Tracking:
    return Tracking(*connect_tracking(cfg), parent_id)


def lead_tracking(cfg: DictConfig, study: optuna.Study, resuming: bool) -> Tracking:
    """Worker 0: find or create the study's parent run, close what a dead run left."""
    from pipeline.tracking.lost_runs import close_lost_runs

    client, experiment_id = connect_tracking(cfg)
    parent_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent_id is None or not _run_exists(client, parent_id):
        parent_id = claim_parent_run(client, experiment_id, cfg, study)
    elif resuming:
        client.update_run(parent_id, status="RUNNING")
    close_lost_runs(study, client, experiment_id, parent_id)
    return Tracking(client, experiment_id, parent_id)


def claim_parent_run(client, experiment_id: str, cfg: DictConfig, study: optuna.Study) -> str:
    """Create the study's parent run and record it on the study; of two sweeps of one study
    started together (each its own worker 0), the last to record wins and the other deletes its
    run, so that the study has one parent.

    Neither Optuna nor MLflow can create-if-absent, so each contender records its run, waits
    for longer than the other needed to create and record its own, and reads the study again.
    """
    from pipeline.tracking.runs import create_parent_run

    started = time.monotonic()
    created = create_parent_run(
        client, experiment_id, study.study_name, sweep_params(cfg), config_yaml(cfg)
    )
    study.set_user_attr(PARENT_RUN_ATTR, created)
    time.sleep(max(PARENT_SETTLE_SECONDS, 2 * (time.monotonic() - started)))
    recorded = study.user_attrs[PARENT_RUN_ATTR]  # read from the storage again
    if recorded != created:  # another sweep of this study recorded its parent run after ours
        client.delete_run(created)
    return recorded


def _run_exists(client, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:
        return False


def import_finalisation() -> None:
    import pipeline.results.champion  # noqa: F401

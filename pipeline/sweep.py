"""``python -m pipeline.sweep``: one command from a config to a tuned, tested, registered model.

Hydra composes ``conf/`` and the command line; :func:`run_sweep` does the work. In a multirun
(``-m worker='range(N)'``) every job is an Optuna worker on the same study: worker 0 leads (creates
the study and the MLflow parent run, recovers lost trials, finalises the champion), the others
wait for it and then share the trials.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # The command line is checked before the heavy imports below (MLflow alone takes seconds):
    # Hydra would report a bad key or type over several lines from inside @hydra.main.
    from pipeline.config.command_line import exit_if_bad

    _checked = exit_if_bad(sys.argv[1:])
    if _checked is not None:
        # The fold processes start and import while this one imports scikit-learn, Optuna and
        # the rest (~1.6 s): ready when the first folds come instead of ~0.4 s after.
        from pipeline.folds.pool import start_fold_workers

        start_fold_workers(_checked.cv.n_jobs, _checked.cv.folds)

import logging
import time
import warnings
from concurrent.futures import Future
from typing import NamedTuple

import hydra
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pipeline.config.checks import validate_config
from pipeline.config.command_line import exit_without_teardown, user_errors_as_one_line
from pipeline.config.schema import register_configs, registered_model_name, study_name
from pipeline.config.stores import check_stores
from pipeline.data import check_class_counts, load_dataset, split_train_test
from pipeline.errors import UserInputError
from pipeline.folds.fitting_time import FittingTime
from pipeline.folds.interruption import InterruptGuard
from pipeline.folds.pool import (
    limit_worker_threads,
    resolve_n_jobs,
    start_fold_workers,
    stop_fold_workers,
)
from pipeline.names import SQLITE_PREFIX
from pipeline.redaction import redact
from pipeline.search.budget import budget_used, claim_budget
from pipeline.search.objective import Objective, TrainingDiverged, TrialEvaluation
from pipeline.search.recovery import quiet_failed_trials, recover_lost_trials, requeue_interrupted
from pipeline.search.storage import open_storage
from pipeline.search.study import (
    check_direction,
    check_settings,
    find_study,
    open_study,
    record_settings,
)
from pipeline.search.trial_loop import run_trials
from pipeline.tracking.background import BackgroundLog, run_in_thread

# MLflow (pipeline.tracking, .lost_runs, .champion) is imported on the tracking thread, not
# here: its 2 s of imports then overlap the first trial's folds instead of preceding them.

log = logging.getLogger("pipeline.sweep")
PARENT_RUN_ATTR = "mlflow_parent_run_id"
WORKER_ATTR = "worker"

register_configs()


def comparable_settings(cfg: DictConfig) -> dict:
    """What a trial's score depends on besides its hyperparameters, by config key: the data set,
    the hold-out split and the folds (both seeded by ``study.seed``), the fixed training
    settings. A study is resumed only with the same (:func:`pipeline.search.study.check_settings`);
    the search space, sampler, pruner and budget may change."""
    nodes = {"dataset": cfg.dataset, "model": cfg.model}
    settings = {
        f"{group}.{key}": value
        for group, node in nodes.items()
        for key, value in OmegaConf.to_container(node, resolve=True).items()
    }
    settings.update({"cv.folds": cfg.cv.folds, "cv.test_size": cfg.cv.test_size})
    settings["study.seed"] = cfg.study.seed
    return settings


def fixed_model_params(cfg: DictConfig) -> dict:
    """The training settings that are not searched (solver, batch size, L2, init, dtype)."""
    return OmegaConf.to_container(cfg.model, resolve=True)


def build_sampler(cfg: DictConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler; each worker gets its own seed (QMC keeps one shared sequence)."""
    overrides = {}
    if "seed" in cfg.sampler and "QMCSampler" not in cfg.sampler._target_:
        overrides["seed"] = cfg.sampler.seed + cfg.worker
    try:
        return instantiate(cfg.sampler, **overrides)
    except Exception as error:
        raise UserInputError(
            f"sampler: cannot build {cfg.sampler._target_} ({error.__cause__ or error})"
        ) from None


def build_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    try:
        return instantiate(cfg.pruner)
    except Exception as error:
        raise UserInputError(
            f"pruner: cannot build {cfg.pruner._target_} ({error.__cause__ or error})"
        ) from None


def config_yaml(cfg: DictConfig) -> str:
    return redact(OmegaConf.to_yaml(cfg, resolve=True))


def sweep_params(cfg: DictConfig) -> dict:
    """Settings of the whole study, logged once as the parent run's params."""
    return {
        "dataset": cfg.dataset.name,
        "cv.folds": cfg.cv.folds,
        "cv.test_size": cfg.cv.test_size,
        "study.seed": cfg.study.seed,
        "study.direction": cfg.study.direction,
        "sampler": cfg.sampler._target_,
        "pruner": cfg.pruner._target_,
        **{f"model.{k}": v for k, v in fixed_model_params(cfg).items()},
    }


class Tracking(NamedTuple):
    """The sweep's MLflow side, once connected."""

    client: object  # mlflow.MlflowClient
    experiment_id: str
    parent_run_id: str


def connect_tracking(cfg: DictConfig) -> tuple:
    from pipeline.tracking.store import connect

    return connect(cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment)


def lead_tracking(cfg: DictConfig, study: optuna.Study, resuming: bool) -> Tracking:
    """Worker 0: find or create the study's parent run, close what a dead run left."""
    from pipeline.tracking.lost_runs import close_lost_runs
    from pipeline.tracking.runs import create_parent_run

    client, experiment_id = connect_tracking(cfg)
    parent_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent_id is None or not _run_exists(client, parent_id):
        parent_id = create_parent_run(
            client, experiment_id, study.study_name, sweep_params(cfg), config_yaml(cfg)
        )
        study.set_user_attr(PARENT_RUN_ATTR, parent_id)
    elif resuming:
        client.update_run(parent_id, status="RUNNING")
    close_lost_runs(study, client, experiment_id)
    return Tracking(client, experiment_id, parent_id)


def start_tracking(cfg: DictConfig, setup) -> Future:
    """``setup()`` on a thread. Only a local SQLite store (checked by pipeline.config.stores) is
    left to finish while the first trial runs: a server's errors come before any trial."""
    tracking = run_in_thread(setup)
    if not str(cfg.tracking.uri).startswith(SQLITE_PREFIX):
        tracking.result()
    return tracking


def follow_study(cfg, storage, sampler, pruner) -> tuple[optuna.Study, str]:
    """Other workers: wait until worker 0 has created the study and its parent run."""
    name = study_name(cfg)
    deadline = time.monotonic() + cfg.study.leader_wait_seconds
    while time.monotonic() < deadline:
        existing = find_study(storage, name)
        if existing is not None and PARENT_RUN_ATTR in existing.user_attrs:
            check_settings(storage, name, comparable_settings(cfg))  # recorded by worker 0
            study = open_study(storage, name, cfg.study.direction, sampler, pruner)
            return study, existing.user_attrs[PARENT_RUN_ATTR]
        time.sleep(0.5)
    raise UserInputError(
        f"worker={cfg.worker}: worker 0 did not create study {name!r} within "
        f"{cfg.study.leader_wait_seconds:.0f} s (study.leader_wait_seconds); start worker 0"
    )


def import_finalisation() -> None:
    import pipeline.results.champion  # noqa: F401


def _run_exists(client, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:
        return False


def run_sweep(cfg: DictConfig) -> dict:
    """Run (or resume) the study of ``cfg`` and, in worker 0, finalise the champion.

    Returns a dict with the study, the parent run id and the summary (None for other workers).
    """
    validate_config(cfg)
    # The fold processes import while this process loads the data and opens its stores.
    start_fold_workers(cfg.cv.n_jobs, cfg.cv.folds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # WilcoxonPruner and friends are "experimental" only in the sense of a changeable interface.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    quiet_failed_trials(expected=(TrainingDiverged,))
    data = load_dataset(cfg.dataset, cfg.study.seed)
    check_class_counts(data.y, cfg.cv.folds, cfg.cv.test_size, data.label_source)
    split = split_train_test(data, cfg.cv.test_size, cfg.study.seed)
    sampler, pruner = build_sampler(cfg), build_pruner(cfg)
    # Every check before any store is written: a failing one leaves no half-created study.
    check_stores(cfg)
    storage = open_storage(cfg.study.storage, cfg.study.heartbeat_interval)
    check_direction(storage, study_name(cfg), cfg.study.direction)
    check_settings(storage, study_name(cfg), comparable_settings(cfg))
    if cfg.worker == 0:
        study = open_study(storage, study_name(cfg), cfg.study.direction, sampler, pruner)
        record_settings(study, comparable_settings(cfg))
        recover_lost_trials(study)
        resuming = budget_used(study) < cfg.study.n_trials
        tracking = start_tracking(cfg, lambda: lead_tracking(cfg, study, resuming))
    else:
        # Connect only once worker 0 has created the tracking store: processes creating a fresh
        # MLflow SQLite store at the same instant crash in its schema migration.
        study, parent_id = follow_study(cfg, storage, sampler, pruner)
        tracking = start_tracking(cfg, lambda: Tracking(*connect_tracking(cfg), parent_id))
    yaml_text = config_yaml(cfg)

    background = BackgroundLog()  # each trial's logging overlaps the next trial's folds
    if cfg.worker == 0:
        # The end's modules (plots: matplotlib, pandas; 0.6 s) are imported during the trials.
        tracking.add_done_callback(lambda _: background.submit(import_finalisation))

    def open_run(trial: optuna.Trial, params: dict, wait: bool):
        if not (wait or tracking.done()):
            return None  # asked again as the trial's folds arrive
        from pipeline.names import TRIAL_RUN_ATTR
        from pipeline.tracking.runs import TrialRun

        client, experiment_id, parent_id = tracking.result()
        run = TrialRun(client, experiment_id, parent_id, study.study_name, trial.number, cfg.worker)
        trial.set_user_attr(TRIAL_RUN_ATTR, run.run_id)
        run.log_start({**params, **fixed_model_params(cfg)}, yaml_text)
        return run

    objective = Objective(
        split.X_train,
        split.y_train,
        fixed_params=fixed_model_params(cfg),
        search_space=cfg.search_space,
        folds=cfg.cv.folds,
        seed=cfg.study.seed,
        n_jobs=resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds),
        open_run=open_run,
        log_models=cfg.tracking.log_trial_models,
        background=background,
        feature_names=data.feature_names,
    )
    limit_worker_threads(resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds))

    def begin(trial: optuna.Trial) -> TrialEvaluation:
        claim_budget(trial, cfg.study.n_trials)
        trial.set_user_attr(WORKER_ATTR, cfg.worker)
        return objective.begin(trial)

    fitting = FittingTime()  # of every run_trials call below

    def optimize(n_trials: int) -> None:
        loop_fitting = run_trials(
            study,
            begin,
            n_trials=n_trials,
            workers=objective.workers,
            catch=(TrainingDiverged,),
            # Ask no more once the study's budget is taken (other workers' trials included) or
            # Ctrl-C came during bookkeeping (the loop then stops at its next wait for folds).
            stop=lambda: guard.requested or budget_used(study) >= cfg.study.n_trials,
            in_flight=cfg.study.trials_in_flight if objective.workers > 1 else 1,
            progress_bar=cfg.progress_bar,
        )
        fitting.merge(loop_fitting)
        guard.raise_if_requested()

    remaining = cfg.study.n_trials - budget_used(study)
    guard = InterruptGuard()  # Ctrl-C stops at safe points only (see pipeline.folds.interruption)
    try:
        with guard:
            if remaining > 0:
                optimize(remaining)
            # Worker 0 waits for the others' trials; a lost one found meanwhile is re-enqueued
            # and run here, so that the study still ends with its whole budget.
            while cfg.worker == 0:
                wait_for_running_trials(study, check=guard.raise_if_requested)
                remaining = cfg.study.n_trials - budget_used(study)
                if remaining <= 0:
                    break
                optimize(remaining)
    except KeyboardInterrupt:
        stop_fold_workers()
        background.flush(raise_error=False)  # every trial's run closed, KILLED ones included
        requeue_interrupted(study)
        if tracking.done() and tracking.exception() is None:  # else no parent run to close
            client, _, parent_id = tracking.result()
            client.set_terminated(parent_id, status="KILLED")
        raise
    except BaseException:
        background.flush(raise_error=False)
        raise
    background.flush()
    client, experiment_id, parent_id = tracking.result()
    from pipeline.tracking.runs import log_fitting_time

    log_fitting_time(client, parent_id, fitting, cfg.worker)
    result = {"study": study, "parent_run_id": parent_id, "summary": None}
    if cfg.worker != 0:
        return result
    from pipeline.results.champion import finalize
    from pipeline.results.summary import format_summary
    from pipeline.tracking.lost_runs import close_lost_runs

    close_lost_runs(study, client, experiment_id)
    summary = finalize(
        study,
        split,
        fixed_params=fixed_model_params(cfg),
        seed=cfg.study.seed,
        uri=cfg.tracking.uri,
        parent_run_id=parent_id,
        registered_model=registered_model_name(cfg),
        processes=resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds),
        feature_names=data.feature_names,
    )
    result["summary"] = summary
    print(format_summary(summary, redact(cfg.tracking.uri)))
    if summary.best_params is None:
        # Nothing to refit or register: the sweep failed, and says why in one line (exit 2).
        client.set_terminated(parent_id, status="FAILED")
        c = summary.counts
        raise UserInputError(
            f"search_space: no trial of study {study.study_name!r} completed ({c['failed']} "
            f"failed, {c['pruned']} pruned); see each trial's fail_reason, e.g. for divergence "
            "lower search_space.learning_rate.high"
        )
    client.set_terminated(parent_id, status="FINISHED")
    return result


def wait_for_running_trials(
    study: optuna.Study, poll_seconds: float = 1.0, check=lambda: None
) -> None:
    """Worker 0 finalises only once the other workers' trials have ended (or been found lost).

    ``check()`` runs at every poll (it raises to stop waiting, e.g. on Ctrl-C).
    """
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        check()
        recover_lost_trials(study)
        time.sleep(poll_seconds)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        with user_errors_as_one_line():
            result = run_sweep(cfg)
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    summary = result["summary"]
    return summary.cv_mean if summary is not None else None


if __name__ == "__main__":
    main()
    exit_without_teardown()

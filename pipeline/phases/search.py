"""Phase 2 of a sweep: the trials, until the study's budget is used (or Ctrl-C).

Each trial's MLflow run is opened once the tracking store is ready, and written by the sweep's
run writer (pipeline.tracking.run_writer) while the next trials run. Ctrl-C stops the sweep at
safe points only (pipeline.folds.interruption): the trials in flight end as interrupted, their
parameters are enqueued again, and the parent run is closed as KILLED, so that the same command
resumes.
"""

from __future__ import annotations

import time
from collections import Counter

import optuna

from pipeline.config.settings import fixed_model_params, large_study
from pipeline.errors import UserInputError
from pipeline.folds.fitting_time import FittingTime
from pipeline.folds.interruption import InterruptGuard
from pipeline.folds.pool import limit_worker_threads, resolve_n_jobs, stop_fold_workers
from pipeline.phases.prepare import PreparedSweep
from pipeline.search.budget import Reservations, budget_used
from pipeline.search.checkpoint_bars import checkpoint_rule
from pipeline.search.objective import (
    ALL_MODELS_UP_TO,
    Objective,
    TrainingDiverged,
    TrialFailed,
)
from pipeline.search.recovery import recover_lost_trials, requeue_interrupted
from pipeline.search.storage import local_file
from pipeline.search.trial_loop import run_trials


def search(prepared: PreparedSweep) -> FittingTime:
    """Run the study's remaining trials; returns the folds' fitting time. Worker 0 also waits for
    the other workers' trials, and runs any trial of theirs found lost meanwhile."""
    trials = SweepTrials(prepared)
    try:
        with trials.guard:
            trials.run()
        prepared.runs.flush()
    except KeyboardInterrupt:
        trials.interrupted()
        raise
    except BaseException:
        prepared.runs.flush(raise_error=False)
        raise
    finally:
        prepared.runs.shutdown()
    return trials.fitting


class SweepTrials:
    """The sweep's trials: the objective over the training split, each trial's run and budget."""

    def __init__(self, prepared: PreparedSweep):
        self.prepared = prepared
        cfg, split = prepared.cfg, prepared.split
        self.n_jobs = resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds)
        self.objective = Objective(
            split.X_train,
            split.y_train,
            spec=prepared.spec,
            fixed_params=fixed_model_params(cfg),
            search_space=cfg.search_space,
            folds=cfg.cv.folds,
            seed=cfg.study.seed,
            n_jobs=self.n_jobs,
            open_run=self.open_run,
            log_models=cfg.tracking.log_trial_models,
            all_models_up_to=0 if large_study(cfg) else ALL_MODELS_UP_TO,
            writer=prepared.runs,
            checkpoint_epochs=cfg.cv.checkpoints,
            checkpoint_rule=checkpoint_rule(cfg.pruner),
            worker=cfg.worker,
        )
        limit_worker_threads(self.n_jobs)
        self.fitting = FittingTime()  # of every run_trials call
        self.failures = FailureStreak(cfg.study.max_failures_in_a_row)
        self.guard = InterruptGuard()  # Ctrl-C stops at safe points only
        self.reservations = Reservations(
            prepared.study,
            cfg.study.n_trials,
            lead=cfg.worker == 0,
            storage_file=local_file(cfg.study.storage),
        )

    def run(self) -> None:
        study, cfg = self.prepared.study, self.prepared.cfg
        remaining = cfg.study.n_trials - budget_used(study)
        if remaining > 0:
            self.optimize(remaining)
        # Worker 0 waits for the others' trials; a lost one found meanwhile is re-enqueued and
        # run here (a chain of reservations it broke is mended), so that the study still ends
        # with its whole budget.
        while cfg.worker == 0:
            wait_for_running_trials(study, check=self.guard.raise_if_requested)
            self.reservations.reserve()
            remaining = cfg.study.n_trials - budget_used(study)
            if remaining <= 0:
                return
            self.optimize(remaining)

    def optimize(self, n_trials: int) -> None:
        cfg = self.prepared.cfg
        fitting = run_trials(
            self.prepared.study,
            self.objective.begin,
            n_trials=n_trials,
            workers=self.objective.workers,
            catch=(TrainingDiverged, TrialFailed),
            stop=self.stop,
            in_flight=cfg.study.trials_in_flight if self.objective.workers > 1 else 1,
            progress_bar=cfg.progress_bar,
            after_trial=self.failures.count,
            ask=self.reservations.take,
        )
        self.fitting.merge(fitting)
        self.guard.raise_if_requested()

    def stop(self) -> bool:
        """Ask no more once Ctrl-C came during bookkeeping (the loop then stops at its next wait
        for folds); the end of the budget is when no reserved trial is left to take."""
        return self.guard.requested

    def open_run(self, trial: optuna.Trial, params: dict, wait: bool):
        """The trial's MLflow run, or None while the store is not ready and ``wait`` is False
        (asked again as the trial's folds arrive). The run is created on the tracking thread,
        before anything else is logged to it (in order); its parameters go in when it closes."""
        prepared = self.prepared
        if not (wait or prepared.tracking.done()):
            return None
        # The store first: it is connected on the tracking thread, which imports MLflow, and
        # importing MLflow's modules here at the same time fails in its circular imports.
        client, experiment_id, parent_id = prepared.tracking.result()
        from pipeline.tracking.runs import TrialRun  # loaded by now, on the tracking thread

        study_name = prepared.study.study_name
        worker = prepared.cfg.worker
        run = TrialRun(client, experiment_id, parent_id, study_name, trial.number, worker)
        prepared.runs.open(run)
        return run

    def interrupted(self) -> None:
        """After Ctrl-C: stop the folds, close every trial's run and re-enqueue the interrupted
        trials (the parent run is closed by pipeline.phases.finalise.end_parent_run)."""
        prepared = self.prepared
        stop_fold_workers()
        prepared.runs.flush(raise_error=False)  # every trial's run closed, KILLED included
        requeue_interrupted(prepared.study)


class FailureStreak:
    """Trials in a row that failed by an error other than divergence: past ``limit`` (0: no
    limit) something is wrong with every trial, not with one configuration, and the sweep stops
    with the most frequent reason. A complete or pruned trial ends the streak; a diverged one
    (a learning rate too high for its network) neither counts nor ends it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.reasons: list[str] = []

    def count(self, trial: optuna.Trial, error: BaseException | None) -> None:
        if isinstance(error, TrainingDiverged):
            return
        if not isinstance(error, TrialFailed):
            self.reasons.clear()
            return
        self.reasons.append(str(error).split(": ", 1)[-1])  # without the fold's number
        if self.limit and len(self.reasons) >= self.limit:
            reason, times = Counter(self.reasons).most_common(1)[0]
            raise UserInputError(
                f"study.max_failures_in_a_row={self.limit}: the last {len(self.reasons)} trials "
                f"failed ({times} of them: {reason}); see each trial's fail_reason"
            )


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

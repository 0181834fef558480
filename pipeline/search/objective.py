"""The Optuna objective: one trial = suggest, k-fold CV with per-fold pruning, MLflow child run.

The data is held by the callable object, so it is loaded once per sweep, not per trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import optuna

from pipeline.config.search_space import network_params, suggest_params
from pipeline.folds.interruption import interruptible
from pipeline.folds.pool import resolve_n_jobs
from pipeline.folds.scheduler import FoldScheduler, fold_tasks
from pipeline.folds.worker import FoldResult
from pipeline.model.ensemble import FoldEnsemble
from pipeline.names import FAIL_REASON
from pipeline.search.recovery import INTERRUPTED, record_owner
from pipeline.tracking.background import BackgroundLog


class TrainingDiverged(Exception):
    """A trial's training produced a non-finite loss; Optuna records the trial as FAIL."""


@dataclass
class FoldOutcome:
    """What the folds of one trial produced so far."""

    scores: dict[int, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    curves: list[np.ndarray] = field(default_factory=list)
    models: dict[int, Any] = field(default_factory=dict)

    def add(self, result: FoldResult) -> None:
        self.fit_seconds += result.fit_seconds
        self.curves.append(result.loss_curve)
        if result.score is not None:
            self.scores[result.fold] = result.score
            self.models[result.fold] = result.model

    def mean_curve(self) -> np.ndarray | None:
        """The folds' mean training loss per iteration (the shortest curve's length)."""
        curves = [c for c in self.curves if len(c)]
        if not curves:
            return None
        length = min(len(c) for c in curves)
        return np.mean([c[:length] for c in curves], axis=0)

    def ensemble(self, feature_names: tuple[str, ...] | None = None) -> FoldEnsemble:
        return FoldEnsemble([self.models[fold] for fold in sorted(self.models)], feature_names)


def evaluate_folds(
    trial: optuna.Trial | None,
    network_kwargs: dict[str, Any],
    X,
    y,
    *,
    folds: int,
    seed: int,
    n_jobs: int,
    outcome: FoldOutcome | None = None,
) -> FoldOutcome:
    """Run the folds; report each score to the trial's pruner, in fold order.

    ``outcome`` (a new one if None) is filled in place, so that a caller still has the folds
    done when a prune or a failure is raised.

    Folds finish in whatever order the processes happen to take; they are handled in fold order
    (a fold that finishes early waits for the ones before it), so that the pruner sees the same
    sequence of reports, and the trial ends the same way, in every run with the same seed.

    Raises ``optuna.TrialPruned`` or :class:`TrainingDiverged`; either way the folds not yet
    started are never started, and those running are cancelled at once, rather than whenever
    the garbage collector gets to the pruned trial's frame.
    """
    outcome = FoldOutcome() if outcome is None else outcome
    workers = resolve_n_jobs(n_jobs, folds)
    scheduler, owner = FoldScheduler(workers), object()
    scheduler.add(owner, fold_tasks(network_kwargs, X, y, folds=folds, seed=seed))
    arrived: dict[int, FoldResult] = {}
    try:
        while len(outcome.curves) < folds:
            with interruptible():  # Ctrl-C stops the trial only here, not mid-write to a store
                for _, result in scheduler.wait():
                    arrived[result.fold] = result
            while len(outcome.curves) in arrived:
                _handle_fold(trial, outcome, arrived.pop(len(outcome.curves)), folds, workers)
    finally:
        scheduler.remove(owner)
    return outcome


def _handle_fold(trial, outcome: FoldOutcome, result: FoldResult, folds: int, workers: int):
    """Record one fold, report it, and raise if the trial must stop here."""
    outcome.add(result)
    if result.error is not None:
        raise TrainingDiverged(f"fold {result.fold}: {result.error}")
    if trial is None:
        return
    trial.report(result.score, step=result.fold)
    # Pruning cancels only folds not yet started; once every remaining fold already runs, a
    # prune would waste that work and hide a complete score from the sampler. (Counted from the
    # folds handled, not those finished, so that the decision does not depend on timing.)
    if not received_all_but_running(len(outcome.curves), folds, workers) and trial.should_prune():
        raise optuna.TrialPruned(
            f"pruned after {len(outcome.scores)} of {folds} folds "
            f"(mean {np.mean(list(outcome.scores.values())):.4f})"
        )


def received_all_but_running(received: int, folds: int, workers: int) -> bool:
    """True when each fold not yet received is already running on one of ``workers`` processes."""
    return received + workers >= folds


class Objective:
    """The sweep's trials: each one's parameters, the mean CV accuracy of its network, its run.

    ``open_run(trial, params, wait)`` returns the trial's tracking handle, or None while the
    tracking store is not ready yet and ``wait`` is False: it is asked again as folds arrive,
    and with ``wait=True`` when the folds are done, so that the sweep's first folds need not
    wait for MLflow's start-up. With ``background`` (a
    :class:`~pipeline.tracking.background.BackgroundLog`), the logging at the end of a trial runs
    there, while the next trial's folds run.

    :meth:`begin` hands out each trial as a :class:`TrialEvaluation`, for the driver that keeps
    several in flight (pipeline.search.trial_loop).
    """

    def __init__(
        self,
        X,
        y,
        *,
        fixed_params: dict[str, Any],
        search_space,
        folds: int,
        seed: int,
        n_jobs: int,
        open_run: Callable | None = None,
        log_models: bool = True,
        background: BackgroundLog | None = None,
        feature_names: tuple[str, ...] | None = None,
    ):
        self.X, self.y = X, y
        self.feature_names = feature_names  # of X's columns, kept with each logged model
        self.fixed_params = fixed_params
        self.search_space = search_space
        self.folds, self.seed, self.n_jobs = folds, seed, n_jobs
        self.workers = resolve_n_jobs(n_jobs, folds)
        self.open_run = open_run
        self.log_models = log_models
        self.background = background

    def begin(self, trial: optuna.Trial) -> TrialEvaluation:
        """Suggest the trial's parameters; its folds are then the caller's to schedule."""
        return TrialEvaluation(self, trial)

    def _close_run(
        self, run, outcome: FoldOutcome, state: str, reason: str | None, seconds: float
    ) -> None:
        """Fold metrics, learning curve, the model of a complete trial, state; close the run."""
        run.log_folds(outcome.scores, outcome.fit_seconds, outcome.mean_curve(), seconds)
        if state == "COMPLETE" and self.log_models:
            run.log_model(outcome.ensemble(self.feature_names), self.X[:5])
        run.end(state, reason)


class TrialEvaluation:
    """One trial in flight: its parameters, its folds (``tasks``) and their results, its run.

    The driver schedules ``tasks``, hands each result to :meth:`receive` and calls
    :meth:`advance`, which reports the folds to the pruner in fold order (a fold that finishes
    early waits for the ones before it, so the pruner sees the same sequence in every run with
    the same seed) and raises ``optuna.TrialPruned`` or :class:`TrainingDiverged` when the trial
    must stop. It ends with :meth:`complete` (returns the value) or :meth:`fail`.
    """

    def __init__(self, objective: Objective, trial: optuna.Trial):
        self.objective, self.trial = objective, trial
        self.started = time.perf_counter()
        record_owner(trial)
        self.params = suggest_params(trial, objective.search_space)
        network_kwargs = {**objective.fixed_params, **network_params(self.params)}
        self.tasks = fold_tasks(
            network_kwargs, objective.X, objective.y, folds=objective.folds, seed=objective.seed
        )
        self.outcome = FoldOutcome()
        self._arrived: dict[int, FoldResult] = {}
        self._runs: list = []  # the trial's run, opened while its folds run

    def receive(self, result: FoldResult) -> None:
        self._arrived[result.fold] = result

    def advance(self) -> bool:
        """Handle the folds received so far, in fold order; True once all are handled."""
        objective, outcome = self.objective, self.outcome
        while len(outcome.curves) in self._arrived:
            result = self._arrived.pop(len(outcome.curves))
            _handle_fold(self.trial, outcome, result, objective.folds, objective.workers)
        return len(outcome.curves) == objective.folds

    def complete(self) -> float:
        """The mean of the fold scores; records them and closes the trial's run."""
        scores = self.outcome.scores
        self.trial.set_user_attr("fold_scores", [scores[f] for f in sorted(scores)])
        self.trial.set_user_attr("cv_std", float(np.std(list(scores.values()))))
        self._end("COMPLETE", None)
        return float(np.mean(list(scores.values())))

    def fail(self, error: BaseException) -> None:
        """Record why the trial stops (pruned, diverged, interrupted, crashed); close its run."""
        if isinstance(error, optuna.TrialPruned):
            state, reason = "PRUNED", str(error)
        elif isinstance(error, TrainingDiverged):
            state, reason = "FAIL", f"diverged: {error}"
        elif isinstance(error, KeyboardInterrupt):
            state, reason = "KILLED", INTERRUPTED  # the sweep re-enqueues its params
        else:
            state, reason = "FAIL", repr(error)
        self.trial.set_user_attr(FAIL_REASON, reason)
        self._end(state, reason)

    def open_run(self, wait: bool = False) -> None:
        """Open the trial's run if the tracking store is ready (or once it is, with ``wait``);
        the drivers ask while the folds run."""
        open_run = self.objective.open_run
        if open_run is not None and not self._runs:
            run = open_run(self.trial, self.params, wait)
            if run is not None:
                self._runs.append(run)

    def _end(self, state: str, reason: str | None) -> None:
        self.trial.set_user_attr("fit_seconds", self.outcome.fit_seconds)
        if state != "KILLED":
            self.open_run(wait=True)  # a trial shorter than the tracking store's start-up
        seconds = time.perf_counter() - self.started
        objective = self.objective
        for run in self._runs:
            close = partial(objective._close_run, run, self.outcome, state, reason, seconds)
            if objective.background is None:
                close()
            else:
                objective.background.submit(close)

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

from pipeline.background_logging import BackgroundLog
from pipeline.cross_validation import iter_fold_results, resolve_n_jobs
from pipeline.fitted_model import FoldEnsemble
from pipeline.fold_worker import FoldResult
from pipeline.interruption import INTERRUPTED, interruptible
from pipeline.search_space import network_params, suggest_params
from pipeline.study import FAIL_REASON, record_owner


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

    def ensemble(self) -> FoldEnsemble:
        return FoldEnsemble([self.models[fold] for fold in sorted(self.models)])


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
    on_progress: Callable[[], None] | None = None,
) -> FoldOutcome:
    """Run the folds; report each score to the trial's pruner, in fold order.

    ``outcome`` (a new one if None) is filled in place, so that a caller still has the folds
    done when a prune or a failure is raised. ``on_progress()`` is called once the first folds
    are running in the pool, then after each fold received (short work for this process that
    can overlap the folds).

    Folds finish in whatever order the processes happen to take; they are handled in fold order
    (a fold that finishes early waits for the ones before it), so that the pruner sees the same
    sequence of reports, and the trial ends the same way, in every run with the same seed.

    Raises ``optuna.TrialPruned`` or :class:`TrainingDiverged`; either way the folds not yet
    started are never started. The fold iterator is closed explicitly, at once, rather than
    whenever the garbage collector gets to the pruned trial's frame.
    """
    outcome = FoldOutcome() if outcome is None else outcome
    results = iter_fold_results(network_kwargs, X, y, folds=folds, seed=seed, n_jobs=n_jobs)
    workers = resolve_n_jobs(n_jobs, folds)
    arrived: dict[int, FoldResult] = {}
    try:
        if on_progress is not None:
            on_progress()
        while len(outcome.curves) < folds:
            with interruptible():  # Ctrl-C stops the trial only here, not mid-write to a store
                result = next(results)
            arrived[result.fold] = result
            if on_progress is not None:
                on_progress()
            while len(outcome.curves) in arrived:
                _handle_fold(trial, outcome, arrived.pop(len(outcome.curves)), folds, workers)
    finally:
        results.close()
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
    """Callable for ``study.optimize``: returns the mean CV accuracy of the trial's network.

    ``open_run(trial, params, wait)`` returns the trial's tracking handle, or None while the
    tracking store is not ready yet and ``wait`` is False: it is asked again as folds arrive,
    and with ``wait=True`` when the folds are done, so that the sweep's first folds need not
    wait for MLflow's start-up. With ``background`` (a
    :class:`~pipeline.background_logging.BackgroundLog`), the logging at the end of a trial runs
    there, while the next trial's folds run.
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
    ):
        self.X, self.y = X, y
        self.fixed_params = fixed_params
        self.search_space = search_space
        self.folds, self.seed, self.n_jobs = folds, seed, n_jobs
        self.open_run = open_run
        self.log_models = log_models
        self.background = background

    def __call__(self, trial: optuna.Trial) -> float:
        started = time.perf_counter()
        record_owner(trial)
        params = suggest_params(trial, self.search_space)
        outcome = FoldOutcome()
        state, reason = "FAIL", None
        tracked = []  # the trial's run, opened while its folds run

        def open_run(wait: bool = False) -> None:
            if self.open_run is not None and not tracked:
                run = self.open_run(trial, params, wait)
                if run is not None:
                    tracked.append(run)

        try:
            evaluate_folds(
                trial,
                {**self.fixed_params, **network_params(params)},
                self.X,
                self.y,
                folds=self.folds,
                seed=self.seed,
                n_jobs=self.n_jobs,
                outcome=outcome,
                on_progress=open_run,
            )
            state = "COMPLETE"
            value = float(np.mean(list(outcome.scores.values())))
            trial.set_user_attr("fold_scores", [outcome.scores[f] for f in sorted(outcome.scores)])
            trial.set_user_attr("cv_std", float(np.std(list(outcome.scores.values()))))
            return value
        except optuna.TrialPruned as pruned:
            state, reason = "PRUNED", str(pruned)
            trial.set_user_attr(FAIL_REASON, reason)
            raise
        except TrainingDiverged as error:
            reason = f"diverged: {error}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise
        except BaseException as error:  # KeyboardInterrupt included: the run must not stay open
            if isinstance(error, KeyboardInterrupt):
                state, reason = "KILLED", INTERRUPTED
                trial.set_user_attr(FAIL_REASON, reason)  # the sweep re-enqueues its params
            else:
                state, reason = "FAIL", repr(error)
            raise
        finally:
            trial.set_user_attr("fit_seconds", outcome.fit_seconds)
            if state != "KILLED":
                open_run(wait=True)  # a trial shorter than the tracking store's start-up
            for run in tracked:
                seconds = time.perf_counter() - started
                if self.background is None:
                    self._close_run(run, outcome, state, reason, seconds)
                else:
                    self.background.submit(
                        partial(self._close_run, run, outcome, state, reason, seconds)
                    )

    def _close_run(
        self, run, outcome: FoldOutcome, state: str, reason: str | None, seconds: float
    ) -> None:
        """Fold metrics, learning curve, the model of a complete trial, state; close the run."""
        run.log_folds(outcome.scores, outcome.fit_seconds, outcome.mean_curve(), seconds)
        if state == "COMPLETE" and self.log_models:
            run.log_model(outcome.ensemble(), self.X[:5])
        run.end(state, reason)

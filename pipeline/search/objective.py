"""The Optuna objective: one trial = suggest, k-fold CV with per-fold pruning, MLflow child run;
and :func:`drive_folds`, the one driver of a configuration's folds, which the sweep's trials
(pipeline.search.trial_loop) and ``pipeline.train`` (:func:`evaluate_folds`) share.

The data is held by the :class:`Objective`, so it is loaded once per sweep, not per trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from pipeline.compat import trials_seen_at_start
from pipeline.config.search_space import network_params, suggest_params
from pipeline.folds.checkpoints import Checkpoints, scores_at_checkpoints
from pipeline.folds.interruption import interruptible
from pipeline.folds.pool import resolve_n_jobs
from pipeline.folds.scheduler import FoldScheduler, fold_tasks
from pipeline.folds.worker import FoldResult
from pipeline.model.ensemble import FoldEnsemble, ModelSpec
from pipeline.names import (
    CHECKPOINT_SCORES_ATTR,
    FAIL_REASON,
    FIT_SECONDS,
)
from pipeline.search.checkpoint_bars import CheckpointColumns, CheckpointRule
from pipeline.search.recovery import INTERRUPTED, record_owner

# A complete trial's model is logged for every one of the study's first trials, and past them
# only when it beats the worker's best (Objective.keeps_model; docs/mlflow.md). A large study
# (pipeline.config.settings.large_study) gives 0: new bests only.
ALL_MODELS_UP_TO = 100


class TrainingDiverged(Exception):
    """A fold's training produced a non-finite loss; a trial that raises it is recorded as FAIL."""


class TrialFailed(Exception):
    """A fold failed in another way (an error in training or scoring, memory that could not be
    allocated); the trial is recorded as FAIL with the reason, and the sweep goes on."""


@dataclass
class FoldOutcome:
    """What the folds of one configuration produced so far."""

    scores: dict[int, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    curves: list[np.ndarray] = field(default_factory=list)
    models: dict[int, Any] = field(default_factory=dict)
    checkpoint_scores: dict[int, dict[int, float]] = field(default_factory=dict)  # fold -> ...

    def add(self, result: FoldResult) -> None:
        self.fit_seconds += result.fit_seconds
        self.curves.append(result.loss_curve)
        self.checkpoint_scores[result.fold] = result.checkpoint_scores
        if result.score is not None:
            self.scores[result.fold] = result.score
            self.models[result.fold] = result.model

    def validation_curve(self) -> dict[int, float]:
        """The folds' mean validation score at each checkpoint epoch all of them trained to."""
        by_fold = [scores for scores in self.checkpoint_scores.values() if scores]
        if not by_fold:
            return {}
        epochs = sorted(set.intersection(*(set(scores) for scores in by_fold)))
        return {epoch: float(np.mean([s[epoch] for s in by_fold])) for epoch in epochs}

    def checkpoint_table(self, epochs: Sequence[int]) -> dict[str, list[float]]:
        """``{"<epoch>": [score of each fold]}`` (CHECKPOINT_SCORES_ATTR) of a complete trial:
        past the epoch where a fold stopped, its final score."""
        folds = sorted(self.scores)
        columns = [
            scores_at_checkpoints(epochs, self.checkpoint_scores[f], self.scores[f]) for f in folds
        ]
        return {str(e): [column[i] for column in columns] for i, e in enumerate(epochs)}

    def mean_curve(self) -> np.ndarray | None:
        """The folds' mean training loss per iteration (the shortest curve's length)."""
        curves = [c for c in self.curves if len(c)]
        if not curves:
            return None
        length = min(len(c) for c in curves)
        return np.mean([c[:length] for c in curves], axis=0)

    def ensemble(self) -> FoldEnsemble:
        return FoldEnsemble([self.models[fold] for fold in sorted(self.models)])


class FoldEvaluation:
    """One configuration's folds: the tasks to schedule, the results received, and the outcome
    of the folds handled so far.

    :func:`drive_folds` hands each result to :meth:`receive` and calls :meth:`advance`, which
    handles the folds in fold order: a fold that finishes early waits for the ones before it,
    so that each fold is handled (by a :class:`TrialEvaluation`: reported to the pruner) in the
    same sequence, and the evaluation ends the same way, in every run with the same seed.
    """

    label = "the configuration"  # what the driver's errors name

    def __init__(self, tasks: list[tuple], metric: str = "", rule: str = ""):
        self.tasks, self.folds = tasks, len(tasks)
        self.metric, self.rule = metric, rule  # what a fold pruned at a checkpoint is told
        self.outcome = FoldOutcome()
        self._arrived: dict[int, FoldResult] = {}

    def receive(self, result: FoldResult) -> None:
        self._arrived[result.fold] = result

    def advance(self) -> bool:
        """Handle the folds received so far, in fold order; True once all are handled.

        Raises :class:`TrainingDiverged` at a fold whose training diverged,
        :class:`TrialFailed` at a fold that failed otherwise, and what :meth:`_handled` raises.
        """
        outcome = self.outcome
        while len(outcome.curves) in self._arrived:
            result = self._arrived.pop(len(outcome.curves))
            outcome.add(result)
            if result.error is not None:
                failure = TrainingDiverged if result.diverged else TrialFailed
                raise failure(f"fold {result.fold}: {result.error}")
            if result.pruned is not None:
                epoch, score, bar = result.pruned
                raise optuna.TrialPruned(
                    f"pruned in fold {result.fold} at epoch {epoch}: validation "
                    f"{self.metric} {score:.4f} missed {bar:.4f}, the bar of {self.rule}"
                )
            self._handled(result)
        return len(outcome.curves) == self.folds

    def _handled(self, result: FoldResult) -> None:
        """``result``, a fold that trained, is now in the outcome; without a trial, nothing to do."""

    def after_wait(self) -> None:
        """Asked by the driver after each wait for folds; without a trial, nothing to do."""


def drive_folds(scheduler: FoldScheduler, flight: Sequence[FoldEvaluation]) -> None:
    """Wait for folds until the oldest evaluation on ``scheduler``, ``flight[0]``, has handled
    all of its own.

    The younger ones in ``flight`` receive their results meanwhile, and handle them once they
    are the oldest: a trial's folds are reported only after the trials before it have ended.
    Raises what the oldest's :meth:`~FoldEvaluation.advance` raises (a fold diverged, the trial
    is pruned); the caller then removes it from ``scheduler``, which cancels its folds.
    """
    oldest = flight[0]
    while not oldest.advance():
        with interruptible():  # Ctrl-C stops the folds only here, not mid-write to a store
            finished = scheduler.wait()
        if not finished:  # a fold neither running nor queued: would wait forever
            raise RuntimeError(f"{oldest.label}: its folds were lost")
        for evaluation, result in finished:
            evaluation.receive(result)
        for evaluation in flight:
            evaluation.after_wait()


def evaluate_folds(
    spec: ModelSpec,
    network_kwargs: dict[str, Any],
    X,
    y,
    *,
    folds: int,
    seed: int,
    n_jobs: int,
    checkpoint_epochs: Sequence[int] = (),
) -> FoldOutcome:
    """Cross-validate one configuration: its folds run as a sweep's trial runs them (by
    :func:`drive_folds`), with no trial to report to, so nothing is pruned (the folds score
    their validation rows at ``checkpoint_epochs`` all the same, for the validation curve).

    Raises :class:`TrainingDiverged`; then, as on Ctrl-C, the folds not yet started are never
    started and those running are cancelled at once.
    """
    checkpoints = Checkpoints(tuple(checkpoint_epochs))
    tasks = fold_tasks(spec, network_kwargs, X, y, folds=folds, seed=seed, checkpoints=checkpoints)
    evaluation = FoldEvaluation(tasks)
    scheduler = FoldScheduler(resolve_n_jobs(n_jobs, folds))
    scheduler.add(evaluation, evaluation.tasks)
    try:
        drive_folds(scheduler, [evaluation])
    finally:
        scheduler.remove(evaluation)
    return evaluation.outcome


def received_all_but_running(received: int, folds: int, workers: int) -> bool:
    """True when each fold not yet received is already running on one of ``workers`` processes."""
    return received + workers >= folds


class Objective:
    """The sweep's trials: each one's parameters, the mean CV score of its network (``spec``
    says what it learns and how it is scored), its run.

    ``open_run(trial, params, wait)`` returns the trial's tracking handle, or None while the
    tracking store is not ready yet and ``wait`` is False: it is asked again as folds arrive,
    and with ``wait=True`` when the folds are done, so that the sweep's first folds need not
    wait for MLflow's start-up. With ``writer`` (the sweep gives its
    :class:`~pipeline.tracking.run_writer.RunWriter`), the logging at the end of a trial runs
    there, while the next trial's folds run; without, at once.

    :meth:`begin` hands out each trial as a :class:`TrialEvaluation`, for the driver that keeps
    several in flight (pipeline.search.trial_loop).
    """

    def __init__(
        self,
        X,
        y,
        *,
        spec: ModelSpec,
        fixed_params: dict[str, Any],
        search_space,
        folds: int,
        seed: int,
        n_jobs: int,
        open_run: Callable | None = None,
        log_models: bool = True,
        all_models_up_to: int = ALL_MODELS_UP_TO,
        writer: Any = None,  # pipeline.tracking.run_writer: closes runs later, in order
        checkpoint_epochs: Sequence[int] = (),
        checkpoint_rule: CheckpointRule | None = None,
        worker: int = 0,
    ):
        self.X, self.y = X, y
        self.spec = spec
        self.fixed_params = fixed_params
        self.search_space = search_space
        self.folds, self.seed, self.n_jobs = folds, seed, n_jobs
        self.workers = resolve_n_jobs(n_jobs, folds)
        self.open_run = open_run
        self.log_models = log_models
        self.all_models_up_to = all_models_up_to
        self.writer = writer
        self.checkpoint_epochs = tuple(checkpoint_epochs)
        self.checkpoint_rule = checkpoint_rule
        self.worker = worker  # the multirun worker index, recorded with each trial's owner
        self._best_value: float | None = None  # of this worker's complete trials
        # The complete trials' checkpoint scores, read once each (trials finish, never change).
        self._checkpoint_columns = CheckpointColumns(self.checkpoint_epochs, folds)

    @property
    def judges_checkpoints(self) -> bool:
        """Whether the pruner stops folds at checkpoint epochs (then complete trials keep their
        scores there, from which the bars are drawn)."""
        return self.checkpoint_rule is not None and bool(self.checkpoint_epochs)

    def checkpoints(self, study: optuna.Study) -> Checkpoints:
        """The checkpoints of a trial that begins now, with the bars of the study's complete
        trials so far (pipeline.search.checkpoint_bars)."""
        if not self.judges_checkpoints:
            return Checkpoints(self.checkpoint_epochs)
        self._checkpoint_columns.look(trials_seen_at_start(study))
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        return self._checkpoint_columns.bars(self.checkpoint_rule, maximize)

    def begin(self, trial: optuna.Trial) -> TrialEvaluation:
        """Suggest the trial's parameters; its folds are then the caller's to schedule."""
        return TrialEvaluation(self, trial)

    def keeps_model(self, trial: optuna.Trial, value: float) -> bool:
        """Whether a complete trial's model is logged: every one of the study's first
        ``all_models_up_to`` trials, and past them only one that beats this worker's best so
        far, so that a study of thousands of trials logs tens of models, not thousands."""
        maximize = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
        best = self._best_value
        improves = best is None or (value > best if maximize else value < best)
        if improves:
            self._best_value = value
        return self.log_models and (trial.number < self.all_models_up_to or improves)


class TrialEvaluation(FoldEvaluation):
    """One trial in flight: its parameters, its folds (see :class:`FoldEvaluation`), its run.

    Each fold handled is reported to the trial's pruner; :meth:`advance` raises
    ``optuna.TrialPruned`` when the trial must stop. It ends with :meth:`complete` (returns the
    value) or :meth:`fail`.
    """

    def __init__(self, objective: Objective, trial: optuna.Trial):
        self.objective, self.trial = objective, trial
        self.started = time.perf_counter()
        record_owner(trial, objective.worker)
        self.params = suggest_params(trial, objective.search_space)
        network_kwargs = {**objective.fixed_params, **network_params(self.params)}
        X, y = objective.X, objective.y
        checkpoints = objective.checkpoints(trial.study)
        tasks = fold_tasks(
            objective.spec, network_kwargs, X, y,
            folds=objective.folds, seed=objective.seed, checkpoints=checkpoints,
        )  # fmt: skip
        super().__init__(tasks, objective.spec.metric, checkpoints.rule)
        self.label = f"trial {trial.number}"
        self._runs: list = []  # the trial's run, opened while its folds run

    def _handled(self, result: FoldResult) -> None:
        """Report the fold; raise ``optuna.TrialPruned`` if the pruner stops the trial here."""
        self.trial.report(result.score, step=result.fold)
        handled, scores = len(self.outcome.curves), self.outcome.scores
        # Pruning cancels only folds not yet started; once every remaining fold already runs, a
        # prune would waste that work and hide a complete score from the sampler. (Counted from
        # the folds handled, not those finished, so that the decision does not depend on timing.)
        if received_all_but_running(handled, self.folds, self.objective.workers):
            return
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after {len(scores)} of {self.folds} folds "
                f"(mean {np.mean(list(scores.values())):.4f})"
            )

    def after_wait(self) -> None:
        """Open the trial's run if the tracking store has become ready meanwhile."""
        self.open_run()

    def complete(self) -> float:
        """The mean of the fold scores (each one already recorded: the trial's intermediate
        values); closes the trial's run."""
        scores = self.outcome.scores
        if self.objective.judges_checkpoints:  # else nobody reads them: one write less
            table = self.outcome.checkpoint_table(self.objective.checkpoint_epochs)
            self.trial.set_user_attr(CHECKPOINT_SCORES_ATTR, table)
        value = float(np.mean(list(scores.values())))
        self._end("COMPLETE", None, self.objective.keeps_model(self.trial, value))
        return value

    def fail(self, error: BaseException) -> None:
        """Record why the trial stops (pruned, diverged, interrupted, crashed); close its run."""
        if isinstance(error, optuna.TrialPruned):
            state, reason = "PRUNED", str(error)
        elif isinstance(error, TrainingDiverged):
            state, reason = "FAIL", f"diverged: {error}"
        elif isinstance(error, TrialFailed):
            state, reason = "FAIL", f"failed: {error}"
        elif isinstance(error, KeyboardInterrupt):
            state, reason = "KILLED", INTERRUPTED  # the sweep re-enqueues its params
        else:
            state, reason = "FAIL", repr(error)
        self.trial.set_user_attr(FAIL_REASON, reason)
        self._end(state, reason)

    def open_run(self, wait: bool = False) -> None:
        """Open the trial's run if the tracking store is ready (or once it is, with ``wait``);
        asked as the trial begins and while its folds run (:meth:`after_wait`)."""
        open_run = self.objective.open_run
        if open_run is not None and not self._runs:
            run = open_run(self.trial, self.params, wait)
            if run is not None:
                self._runs.append(run)

    def _end(self, state: str, reason: str | None, with_model: bool = False) -> None:
        """Close the trial's run: the model of a complete trial, then its parameters (with the
        fixed model settings), fold metrics (in ``spec.metric``), learning and validation
        curves and state."""
        self.trial.set_user_attr(FIT_SECONDS, self.outcome.fit_seconds)
        if state != "KILLED":
            self.open_run(wait=True)  # a trial shorter than the tracking store's start-up
        if not self._runs:
            return
        objective, outcome = self.objective, self.outcome
        model = (outcome.ensemble(), objective.X[:5]) if with_model else None
        closing = {
            "state": state,
            "reason": reason,
            "metric": objective.spec.metric,
            "scores": outcome.scores,
            "fit_seconds": outcome.fit_seconds,
            "loss_curve": outcome.mean_curve(),
            "trial_seconds": time.perf_counter() - self.started,
            "validation_curve": outcome.validation_curve(),
            "params": {**self.params, **objective.fixed_params},
        }
        for run in self._runs:
            if objective.writer is None:
                run.finish(model, closing)
            else:
                objective.writer.close(run, model, closing)

"""Pruning inside a fold: the bars a fold's validation score must clear at checkpoint epochs.

Each fold scores its validation rows at the epochs of ``cv.checkpoints`` while it trains. The
pruner's rule, applied across trials at equal checkpoints (the same fold, the same epoch), gives
one bar per (fold, epoch): a fold below its bar stops there, and its trial is pruned, so a poor
configuration stops in its first fold's first epochs instead of training it to the end.

The bars are computed once, when a trial begins, from the complete trials of the study at that
moment, and travel with the trial's folds to their processes: the decision is the fold's own,
never a race between processes, so a seeded sweep repeats itself (the trial loop begins trial
k+1 right after telling trial k-1: the same trials are complete every time).

A fold that stopped converging before a checkpoint holds its final score there: its model at
that epoch is its final one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from pipeline.folds.checkpoints import Checkpoints
from pipeline.names import CHECKPOINT_SCORES_ATTR
from pipeline.search.newly_finished import NewlyFinished

# Bars need this many complete trials at a checkpoint when the pruner does not say
# (HyperbandPruner has no startup trials): a bar drawn from one or two trials is noise.
DEFAULT_STARTUP_TRIALS = 5


@dataclass(frozen=True)
class CheckpointRule:
    """How the configured pruner judges a fold at a checkpoint: it must reach the score of the
    best ``keep_percent`` % of the complete trials there, once ``startup_trials`` are complete."""

    keep_percent: float
    startup_trials: int

    def describe(self) -> str:
        return f"the best {self.keep_percent:g}% of complete trials"


def checkpoint_rule(pruner: DictConfig) -> CheckpointRule | None:
    """The rule of the ``pruner`` group's config, or None for a pruner that judges whole folds
    only (WilcoxonPruner compares a trial's fold scores with the best trial's; none prunes).

    PercentilePruner keeps its ``percentile``, MedianPruner half, HyperbandPruner and
    SuccessiveHalvingPruner ``1 / reduction_factor`` (successive halving's share promoted from
    one rung to the next, the checkpoints being the rungs).
    """
    kind = str(pruner.get("_target_", "")).rsplit(".", 1)[-1]
    startup = int(pruner.get("n_startup_trials", DEFAULT_STARTUP_TRIALS))
    if kind == "PercentilePruner":
        return CheckpointRule(float(pruner.percentile), startup)
    if kind == "MedianPruner":
        return CheckpointRule(50.0, startup)
    if kind in ("HyperbandPruner", "SuccessiveHalvingPruner"):
        return CheckpointRule(100.0 / float(pruner.get("reduction_factor", 3)), startup)
    return None


# How many trials after it began a trial that has not finished is still awaited by the bars
# (pipeline.search.newly_finished): far more than the trials in flight in any study.
UNFINISHED_HORIZON = 2000


class CheckpointColumns:
    """The complete trials' scores at each checkpoint epoch, gathered as trials complete.

    A complete trial's scores never change, so each trial is read once, when it is first seen
    complete: the bars of a trial that begins cost the same at the 10,000th trial as at the
    100th, up to the percentiles themselves (a few arrays of one float per complete trial).
    """

    def __init__(self, epochs: Sequence[int], folds: int):
        self.epochs, self.folds = tuple(epochs), folds
        # Per epoch, one row of ``folds`` scores per complete trial that has them all there:
        # ``_rows[epoch][:_count[epoch]]``, grown by doubling.
        self._rows = {epoch: np.empty((16, folds)) for epoch in self.epochs}
        self._count = dict.fromkeys(self.epochs, 0)
        self._finished = NewlyFinished(UNFINISHED_HORIZON)

    def look(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Add the complete trials among ``trials`` (every trial of the study, in number order)
        that finished since the last look."""
        self.add(t for t in self._finished.look(trials)[0] if t.state == TrialState.COMPLETE)

    def add(self, complete: Iterable[optuna.trial.FrozenTrial]) -> None:
        """Add these complete trials (those of another ``cv.checkpoints`` count at the epochs
        they share)."""
        for trial in complete:
            recorded = trial.user_attrs.get(CHECKPOINT_SCORES_ATTR) or {}
            for epoch in self.epochs:
                fold_scores = recorded.get(str(epoch))
                if fold_scores is not None and len(fold_scores) == self.folds:
                    self._append(epoch, fold_scores)

    def _append(self, epoch: int, fold_scores: Sequence[float]) -> None:
        rows, count = self._rows[epoch], self._count[epoch]
        if count == len(rows):
            rows = self._rows[epoch] = np.concatenate([rows, np.empty_like(rows)])
        rows[count] = fold_scores
        self._count[epoch] = count + 1

    def bars(self, rule: CheckpointRule | None, maximize: bool) -> Checkpoints:
        """The bars of a trial that begins now: at each (fold, epoch), the ``rule``'s
        percentile of the scores there."""
        if rule is None or not self.epochs:
            return Checkpoints(self.epochs, {}, maximize)
        # Keeping the best p % when maximising means clearing the (100 - p)th percentile.
        q = 100.0 - rule.keep_percent if maximize else rule.keep_percent
        bars = {}
        for epoch in self.epochs:
            count = self._count[epoch]
            if count < max(1, rule.startup_trials):
                continue
            table = self._rows[epoch][:count]  # (n_trials, folds)
            for fold in range(self.folds):
                values = table[:, fold]
                values = values[np.isfinite(values)]
                if values.size:
                    bars[(fold, epoch)] = float(np.percentile(values, q))
        return Checkpoints(self.epochs, bars, maximize, rule.describe())


def bars_from(
    trials: Iterable[optuna.trial.FrozenTrial],
    rule: CheckpointRule | None,
    epochs: Sequence[int],
    folds: int,
    maximize: bool,
) -> Checkpoints:
    """The bars drawn from ``trials`` (complete trials) at once: see :class:`CheckpointColumns`,
    which a sweep keeps from one trial to the next."""
    columns = CheckpointColumns(epochs, folds)
    columns.add(trials)
    return columns.bars(rule, maximize)

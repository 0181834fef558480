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

from pipeline.folds.checkpoints import Checkpoints
from pipeline.names import CHECKPOINT_SCORES_ATTR

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


def bars_from(
    trials: Iterable[optuna.trial.FrozenTrial],
    rule: CheckpointRule | None,
    epochs: Sequence[int],
    folds: int,
    maximize: bool,
) -> Checkpoints:
    """The bars of a trial that begins now: at each (fold, epoch), the ``rule``'s percentile of
    the scores there of ``trials`` (the study's complete trials; those of another
    ``cv.checkpoints`` count at the epochs they share)."""
    epochs = tuple(epochs)
    if rule is None or not epochs:
        return Checkpoints(epochs, {}, maximize)
    columns: dict[int, list[list[float]]] = {epoch: [] for epoch in epochs}
    for trial in trials:
        recorded = trial.user_attrs.get(CHECKPOINT_SCORES_ATTR) or {}
        for epoch in epochs:
            fold_scores = recorded.get(str(epoch))
            if fold_scores is not None and len(fold_scores) == folds:
                columns[epoch].append(fold_scores)
    # Keeping the best p % when maximising means clearing the (100 - p)th percentile.
    q = 100.0 - rule.keep_percent if maximize else rule.keep_percent
    bars = {}
    for epoch, rows in columns.items():
        if len(rows) < max(1, rule.startup_trials):
            continue
        table = np.asarray(rows, dtype=np.float64)  # (n_trials, folds)
        for fold in range(folds):
            values = table[:, fold]
            values = values[np.isfinite(values)]
            if values.size:
                bars[(fold, epoch)] = float(np.percentile(values, q))
    return Checkpoints(epochs, bars, maximize, rule.describe())

"""Checkpoints: the epochs at which a fold scores its validation rows while it trains, and the
bars its score must clear there (computed by pipeline.search.checkpoint_bars when its trial
begins). Free of Optuna, like everything a fold process imports (pipeline.folds.worker)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Checkpoints:
    """What a fold process needs: the ``epochs`` at which to score its validation rows, and
    the bars (``bars[(fold, epoch)]``) a score must clear there (higher or equal when
    ``maximize``, else lower or equal); no bar, no pruning. ``rule`` names the bars' origin."""

    epochs: tuple[int, ...] = ()
    bars: dict[tuple[int, int], float] = field(default_factory=dict)
    maximize: bool = True
    rule: str = ""

    def bar_missed(self, fold: int, epoch: int, score: float) -> float | None:
        """The bar ``score`` misses at ``(fold, epoch)``, or None if it clears it (or none)."""
        bar = self.bars.get((fold, epoch))
        if bar is None:
            return None
        cleared = score >= bar if self.maximize else score <= bar
        return None if cleared else bar


def scores_at_checkpoints(
    epochs: Sequence[int], measured: dict[int, float], final_score: float
) -> list[float]:
    """A fold that trained to the end: its score at each of ``epochs``, measured there or, past
    its last epoch (it converged first, or its cap was lower), its final score."""
    return [measured.get(epoch, final_score) for epoch in epochs]

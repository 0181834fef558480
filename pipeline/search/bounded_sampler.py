"""TPE whose cost per trial stays bounded as the study grows.

Optuna's TPESampler reads every finished trial of the study at every suggestion, so its cost
grows with the study (linearly here: docs/benchmarks.md#scale), and at thousands of trials it
outweighs everything else a trial costs. :class:`BoundedTPESampler` gives TPE the last
``history`` finished trials, the ``keep_best`` best of all of them and the running ones: a
fixed amount of work per suggestion. TPE splits the trials it sees into the good ones (the
best ``min(ceil(0.1 n), 25)``) and the rest; with ``keep_best >= 25`` and ``history >= 250``
its good group is exactly plain TPE's, and only the density of the rest is drawn from the recent
trials instead of all of them. With ``history=None`` it is TPESampler.
"""

from __future__ import annotations

import heapq
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.compat import StudyTrialsView
from pipeline.search.newly_finished import NewlyFinished

# How many ``history``s back a trial not finished when first seen is still looked for
# (pipeline.search.newly_finished).
UNSEEN_HORIZON = 4


class BoundedTPESampler(optuna.samplers.TPESampler):
    """``optuna.samplers.TPESampler(**kwargs)`` that sees at most ``history`` + ``keep_best``
    finished trials (and the trials running)."""

    def __init__(self, *, history: int | None = 500, keep_best: int = 25, **kwargs: Any):
        super().__init__(**kwargs)
        if history is not None and history < 1:
            raise ValueError(f"history must be at least 1 or None, not {history}")
        self.history, self.keep_best = history, keep_best
        self._best: list[tuple[float, int, FrozenTrial]] = []  # a heap: the worst kept first
        # The ranking reads only the trials finished since its last call.
        self._finished = NewlyFinished(horizon=UNSEEN_HORIZON * (history or 1))

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return super().sample_independent(self._view(study), trial, param_name, param_distribution)

    def _view(self, study: optuna.Study):
        if self.history is None:
            return study
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        return StudyTrialsView(study, lambda trials, states: self._select(trials, sign, states))

    def _select(
        self, trials: list[FrozenTrial], sign: float, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """The trials of ``states`` (None: all) TPE sees, in number order: the last ``history``
        finished ones, the best ``keep_best`` of the complete ones, the running ones.
        ``trials``: every trial of the study, in number order.

        The cost does not grow with the study: the ranking reads the trials it has not seen,
        and the recent ones are read from the end; no pass over every trial, not even to
        filter them by state.
        """
        wanted = (lambda t: True) if states is None else (lambda t: t.state in states)
        if len(trials) <= self.history:
            return [t for t in trials if wanted(t)]
        chosen = {t.number: t for t in self._rank(trials, sign) if wanted(t)}  # the running
        kept = 0
        for trial in reversed(trials):
            if kept == self.history:
                break
            if trial.state != TrialState.RUNNING and wanted(trial):
                chosen[trial.number] = trial
                kept += 1
        for _, number, best in self._best:
            if wanted(best):
                chosen.setdefault(number, best)
        return [chosen[number] for number in sorted(chosen)]

    def _rank(self, trials: list[FrozenTrial], sign: float) -> list[FrozenTrial]:
        """Keep the ``keep_best`` best complete trials, adding those finished since the last
        call. Returns the running trials, which are all the running ones of ``trials`` within
        the horizon: any other was seen finished."""
        new, unfinished = self._finished.look(trials)
        for trial in new:
            if trial.state != TrialState.COMPLETE:
                continue
            entry = (sign * trial.value, trial.number, trial)
            if len(self._best) < self.keep_best:
                heapq.heappush(self._best, entry)
            elif entry[:2] > self._best[0][:2]:
                heapq.heapreplace(self._best, entry)
        return [t for t in unfinished if t.state == TrialState.RUNNING]

"""The trials of a study that finished since the last look, found without a pass over every trial.

What is drawn from a study's finished trials (the bounded TPE's best trials, the pruning bars at
the checkpoints) is kept and added to as trials finish: a finished trial never changes again, so
each is read once. Finding the new ones must not cost a pass over the study either: the trials
numbered past the last look are read from the end of the list, and the few that were not finished
then (running in other workers, waiting) are looked for by number, by bisection.
"""

from __future__ import annotations

import bisect

from optuna.trial import FrozenTrial


class NewlyFinished:
    """Successive looks at a study's trials; each returns the finished trials the last ones did
    not. A trial still unfinished ``horizon`` trials after it was first listed is no longer
    looked for: looking for every one (a trial that never ends, its process killed with no
    heartbeat to fail it) would grow with the study."""

    def __init__(self, horizon: int):
        self.horizon = horizon
        # Every finished trial numbered up to ``seen_up_to`` has been returned, except the
        # ``unseen`` numbers (trials running, waiting or not yet listed then).
        self.seen_up_to = -1
        self.unseen: set[int] = set()

    def look(self, trials: list[FrozenTrial]) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """``trials``: every trial of the study, in number order. Returns the trials finished
        since the last look, and the unfinished ones among those looked at (every running trial
        within the horizon: any other was returned finished)."""
        finished, unfinished = [], []
        top = self.seen_up_to
        for trial in reversed(trials):
            if trial.number <= self.seen_up_to:
                break
            top = max(top, trial.number)
            (finished if trial.state.is_finished() else unfinished).append(trial)
        for number in sorted(self.unseen):
            at = bisect.bisect_left(trials, number, key=lambda t: t.number)
            if at < len(trials) and trials[at].number == number:
                (finished if trials[at].state.is_finished() else unfinished).append(trials[at])
        # Numbers up to the newest one that are not finished yet: looked for again next time,
        # within the horizon.
        unseen = self.unseen | set(range(self.seen_up_to + 1, top + 1))
        self.unseen = {n for n in unseen if n > top - self.horizon} - {t.number for t in finished}
        self.seen_up_to = top
        return finished, unfinished

"""How a sweep's fold processes spent their time fitting, as its trial loop saw them.

Two figures a sweep logs on its MLflow parent run (pipeline.tracking.log_fitting_time), what
pruning and the orchestration cost measured where they happen:

- ``discarded_fit_seconds``: fitting thrown away, the folds still running when their trial was
  pruned (or failed), cut short;
- ``fitting_wall_seconds``: the wall-clock seconds during which at least one fold was being
  fitted, the union of every fold's fit span (discarded ones included). A sweep's wall time
  minus this is the time in which it did nothing but start up, compose its config, ask and tell
  Optuna, log to MLflow, refit and report: the serial overhead that fitting did not hide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.folds.worker import FoldResult

# Spans kept before they are first merged into disjoint ones: a long sweep fits many thousand
# folds, mostly overlapping (the processes work side by side), so the merged list stays short.
COMPACT_AFTER = 1024


@dataclass
class FittingTime:
    """Fold fit spans (wall clock, seconds since the epoch) and the fitting thrown away."""

    discarded_seconds: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)
    _compact_at: int = field(default=COMPACT_AFTER, repr=False, compare=False)

    def add(self, result: FoldResult, *, discarded: bool = False) -> None:
        """Count one returned fold; ``discarded``: its trial had already been removed."""
        self.spans.append((result.fit_started, result.fit_started + result.fit_seconds))
        if discarded:
            self.discarded_seconds += result.fit_seconds
        if len(self.spans) > self._compact_at:
            # A fold may return long after others that started later: only merging (never
            # summing and forgetting) keeps the union exact. Doubling the threshold keeps the
            # cost linear even when gaps leave many disjoint spans.
            self.spans = merged(self.spans)
            self._compact_at = max(COMPACT_AFTER, 2 * len(self.spans))

    def merge(self, other: FittingTime) -> None:
        """Add what another trial loop (of the same process) counted."""
        self.discarded_seconds += other.discarded_seconds
        self.spans = merged(self.spans + other.spans)

    def wall_seconds(self) -> float:
        """Seconds during which at least one fold was fitting."""
        return sum(stop - start for start, stop in merged(self.spans))


def merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``spans`` as disjoint (start, stop) spans in time order."""
    union: list[tuple[float, float]] = []
    for start, stop in sorted(spans):
        if union and start <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], stop))
        else:
            union.append((start, stop))
    return union

"""Who writes the trials' MLflow runs while the sweep goes on: the sweep's tracking thread.

Each trial's run is created as the trial starts and closed (its model, parameters, metrics and
state) as it ends, both on the thread of :class:`~pipeline.tracking.background.BackgroundLog`,
in the order given, so that neither holds the trial loop up; a write that raises is raised in
the sweep's thread by the next call or by :meth:`RunWriter.flush`. The runs that a killed sweep
leaves RUNNING are closed by its next start (pipeline.tracking.lost_runs).

MLflow's client spends milliseconds of Python per call to its store, and on a thread those hold
the interpreter lock that the trial loop needs: the writing still costs the loop time on a
machine with cores to spare (docs/benchmarks.md#scale says how much, and what a process of its
own measured).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pipeline.tracking.background import BackgroundLog


class RunWriter:
    """Trial runs written on the ``background`` log's thread."""

    def __init__(self, background: BackgroundLog):
        self.background = background

    def open(self, run) -> None:
        """Create ``run`` (a :class:`~pipeline.tracking.runs.TrialRun`) on the thread."""
        self.background.submit(run.open)

    def close(self, run, model: tuple | None, closing: dict[str, Any]) -> None:
        """Log ``model`` and close ``run`` with ``closing`` on the thread (TrialRun.finish)."""
        self.background.submit(partial(run.finish, model, closing))

    def flush(self, raise_error: bool = True) -> None:
        """Wait until every write has run; then raise the first error (or drop it)."""
        self.background.flush(raise_error)

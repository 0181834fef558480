"""What a sweep does when its user presses Ctrl-C (SIGINT) in the middle of a trial.

The trial that was running is failed by Optuna (it sees the ``KeyboardInterrupt``); the objective
has already closed its MLflow run as KILLED and marked it :data:`INTERRUPTED`. Here its
parameters are enqueued again (like a lost trial's), so the next run of the same command tries
them and the interrupted trial does not count to ``study.n_trials``. The terminal gets one line
from the command, not Optuna's warning with a traceback.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.folds.worker import SWEEP_PID_ENV


class InterruptGuard:
    """Ctrl-C raises ``KeyboardInterrupt`` only at safe points of the sweep.

    Raised anywhere, it can land inside Optuna's bookkeeping of a finished trial (seen here:
    ``UnboundLocalError`` in ``_run_trial``) or in a half-written store record. So while the
    guard is installed, SIGINT interrupts at once only while the sweep waits for fold results
    (:func:`interruptible`); otherwise it is remembered, and the sweep stops at the next safe
    point: the next wait for folds (pipeline.search.trial_loop asks for no new trial meanwhile).
    A second Ctrl-C interrupts at once, wherever the sweep is.
    """

    active: InterruptGuard | None = None

    def __init__(self):
        self.requested = False
        self.waiting = False
        self.previous = None

    def __enter__(self) -> InterruptGuard:
        os.environ[SWEEP_PID_ENV] = str(os.getpid())
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
            InterruptGuard.active = self
        return self

    def __exit__(self, *exc) -> None:
        if InterruptGuard.active is self:
            signal.signal(signal.SIGINT, self.previous)
            InterruptGuard.active = None

    def _handle(self, signum, frame) -> None:
        again = self.requested
        self.requested = True
        if self.waiting or again:
            raise KeyboardInterrupt

    def raise_if_requested(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def interruptible() -> Iterator[None]:
    """The region where Ctrl-C may interrupt at once: waiting for fold results."""
    guard = InterruptGuard.active
    if guard is None:
        yield
        return
    guard.raise_if_requested()
    guard.waiting = True
    try:
        yield
    finally:
        guard.waiting = False

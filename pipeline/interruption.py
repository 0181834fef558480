"""What a sweep does when its user presses Ctrl-C (SIGINT) in the middle of a trial.

The trial that was running is failed by Optuna (it sees the ``KeyboardInterrupt``); the objective
has already closed its MLflow run as KILLED and marked it :data:`INTERRUPTED`. Here its
parameters are enqueued again (like a lost trial's), so the next run of the same command tries
them and the interrupted trial does not count to ``study.n_trials``. The terminal gets one line
from the command, not Optuna's warning with a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

from pipeline.fold_worker import SWEEP_PID_ENV
from pipeline.study import FAIL_REASON, OWNER_PID, RETRY_OF, replaced_numbers

INTERRUPTED = "interrupted by the user (SIGINT); its parameters are enqueued again"
# Optuna logs a failed trial from this module, with the exception's traceback.
OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"


class QuietFailedTrials(logging.Filter):
    """Drop Optuna's report of a trial failed by Ctrl-C, and shorten the report of a trial whose
    failure we expect (divergence) to its one line: the reason is on the trial and its run."""

    def __init__(self, expected: tuple[type[BaseException], ...]):
        super().__init__()
        self.expected = expected

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, KeyboardInterrupt):
            return False
        # Optuna's second line about a trial whose objective raised: the first said it all.
        if record.getMessage().endswith("failed with value None."):
            return False
        if isinstance(error, self.expected):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_failed_trials(expected: tuple[type[BaseException], ...]) -> None:
    """Install :class:`QuietFailedTrials` once on Optuna's trial logger."""
    logger = logging.getLogger(OPTUNA_TRIAL_LOGGER)
    if not any(isinstance(f, QuietFailedTrials) for f in logger.filters):
        logger.addFilter(QuietFailedTrials(expected))


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue again the parameters of this process's trials that Ctrl-C failed.

    Returns the numbers of the trials re-enqueued.
    """
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    numbers = []
    for trial in trials:
        if (
            trial.state == TrialState.FAIL
            and trial.user_attrs.get(FAIL_REASON) == INTERRUPTED
            and trial.user_attrs.get(OWNER_PID) == os.getpid()
            and trial.number not in replaced
        ):
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
            numbers.append(trial.number)
    return numbers


class InterruptGuard:
    """Ctrl-C raises ``KeyboardInterrupt`` only at safe points of the sweep.

    Raised anywhere, it can land inside Optuna's bookkeeping of a finished trial (seen here:
    ``UnboundLocalError`` in ``_run_trial``) or in a half-written store record. So while the
    guard is installed, SIGINT interrupts at once only while the sweep waits for fold results
    (:func:`interruptible`); otherwise it is remembered, and the sweep stops at the next safe
    point: the next wait for folds (pipeline.trial_loop asks for no new trial meanwhile).
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

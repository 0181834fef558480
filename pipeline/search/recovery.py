"""Trials whose process will never end them: lost with a killed process, or stopped by Ctrl-C.

A lost trial is failed and its parameters enqueued again: RDB storages find it by heartbeat; the
journal file store (no heartbeats in Optuna) by its recorded host and pid, checked when a worker
starts. A trial stopped by Ctrl-C is failed as interrupted, and its parameters are enqueued
again too, so that the next run of the same command tries them and neither kind counts to
``study.n_trials``.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from typing import NamedTuple

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from pipeline.compat import OPTUNA_TRIAL_LOGGER, study_storage, trial_id
from pipeline.folds.processes import process_alive
from pipeline.names import FAIL_REASON, OWNER_ATTR, OWNER_HOST, OWNER_PID, RETRY_OF
from pipeline.search.budget import replaced_numbers, slot_attrs


def record_owner(trial: optuna.Trial, worker: int) -> None:
    """Remember which process runs the trial (and its multirun ``worker``), so that a later
    start can tell if it died."""
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "worker": worker}
    trial.set_user_attr(OWNER_ATTR, owner)


class Owner(NamedTuple):
    """The process recorded as running a trial (``worker`` None for versions before it)."""

    host: str
    pid: int
    worker: int | None = None


def owner_of(trial: FrozenTrial) -> Owner | None:
    """The process recorded as running ``trial``; None if none was (yet)."""
    owner = trial.user_attrs.get(OWNER_ATTR)
    if isinstance(owner, dict):
        return Owner(owner["host"], int(owner["pid"]), owner.get("worker"))
    if OWNER_PID in trial.user_attrs:  # a trial of a version that kept them apart
        return Owner(trial.user_attrs.get(OWNER_HOST), int(trial.user_attrs[OWNER_PID]))
    return None


def owned_here(trial: FrozenTrial) -> bool:
    """True when this very process runs (or ran) ``trial``."""
    owner = owner_of(trial)
    return owner is not None and (owner.host, owner.pid) == (socket.gethostname(), os.getpid())


def owner_gone(trial: FrozenTrial) -> bool:
    """True when the trial's recorded process ran on this host and exists no longer."""
    owner = owner_of(trial)
    if owner is None or owner.host != socket.gethostname():
        return False
    return owner.pid != os.getpid() and not process_alive(owner.pid)


# A worker records its pid on a trial within moments of taking it (and, on RDB storages, its
# first heartbeat): a trial RUNNING this long with neither lost its process in between.
UNCLAIMED_SECONDS = 60.0


def unclaimed(trial: FrozenTrial, now: datetime | None = None) -> bool:
    """True for a RUNNING trial that no process ever recorded as its own, started more than
    :data:`UNCLAIMED_SECONDS` ago: its worker was killed between taking it and recording its
    pid, so neither the pid check nor the heartbeat check (no heartbeat was ever written) would
    find it, and the study would wait for it forever."""
    if owner_of(trial) is not None or trial.datetime_start is None:
        return False
    now = now or datetime.now()
    return (now - trial.datetime_start).total_seconds() > UNCLAIMED_SECONDS


def recover_lost_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Fail RUNNING trials whose process is gone and enqueue their parameters again.

    RDB storages: Optuna's heartbeat check (``fail_stale_trials``) does it and the retry callback
    re-enqueues. Any storage: a trial recorded as owned by a dead pid on this host, or one that no
    process recorded as its own long after it was taken (:func:`unclaimed`), is failed here.
    Returns the trials that were failed.
    """
    storage = study_storage(study)
    lost = []
    if isinstance(storage, RDBStorage):
        before = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        lost += [t for t in study.get_trials(states=(TrialState.FAIL,)) if t.number in before]
    for trial in study.get_trials(states=(TrialState.RUNNING,)):
        if owner_gone(trial):
            host, pid, _ = owner_of(trial)
            reason = f"lost: its process {pid} on {host} ended while the trial ran"
        elif unclaimed(trial):
            reason = (
                f"lost: no process recorded it as its own within {UNCLAIMED_SECONDS:.0f} s "
                "of taking it"
            )
        else:
            continue
        storage.set_trial_user_attr(trial_id(trial), FAIL_REASON, reason)
        if storage.set_trial_state_values(trial_id(trial), TrialState.FAIL):
            study.enqueue_trial(
                trial.params, user_attrs={RETRY_OF: trial.number, **slot_attrs(trial)}
            )
            lost.append(trial)
    return lost


INTERRUPTED = "interrupted by the user (SIGINT); its parameters are enqueued again"


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
            and owned_here(trial)
            and trial.number not in replaced
        ):
            study.enqueue_trial(
                trial.params, user_attrs={RETRY_OF: trial.number, **slot_attrs(trial)}
            )
            numbers.append(trial.number)
    return numbers

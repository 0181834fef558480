"""``study.n_trials`` as the total a study reaches, however many times the command is rerun and
however many workers share it, without a trial ever created over it.

A worker never creates a trial: it takes one of the study's reserved (WAITING) trials, and when
none is left the budget is used. Each reserved trial holds a place of the budget
(:data:`~pipeline.names.BUDGET_SLOT`, ``0..n_trials-1``). Reserving them all up front would keep
thousands of WAITING trials, which Optuna's RDB cache reads again on every call, so only
``ahead`` of them wait at a time, in chains: whoever takes place ``p`` first reserves place
``p + ahead``. Taking is Optuna's own WAITING-to-RUNNING change, which only one process wins on
every storage, so each place is reserved exactly once and no lock is needed. The leading worker
starts the chains and mends one that a process killed between taking and reserving has broken.

Optuna's ``MaxTrialsCallback`` (and this project's check before it) created a trial first and
found it over budget after, leaving a pruned trial in the study per late worker.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.compat import pop_waiting_trial, retried_trial_number
from pipeline.names import BUDGET_SLOT, FAIL_REASON, FINISHED_STATES, OVER_BUDGET, RETRY_OF

# Reserved trials waiting at a time: enough that every worker finds one while the one it took
# reserves the next; each one costs every RDB cache refresh a row.
RESERVED_AHEAD = 32


def is_retry(trial: FrozenTrial) -> bool:
    """A re-enqueued lost or interrupted trial (ours or Optuna's heartbeat callback's)."""
    return RETRY_OF in trial.user_attrs or retried_trial_number(trial) is not None


def replaced_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials that do not count to the budget: lost trials that have been
    re-enqueued, and trials found over budget (made by versions before reservations)."""
    numbers = set()
    for trial in trials:
        if trial.user_attrs.get(OVER_BUDGET):
            numbers.add(trial.number)
        retried = retried_trial_number(trial)
        if retried is not None:
            numbers.add(int(retried))
        if RETRY_OF in trial.user_attrs:
            numbers.add(int(trial.user_attrs[RETRY_OF]))
    return numbers


def budget_used(study: optuna.Study) -> int:
    """Trials that count to ``study.n_trials``: finished or running, minus replaced lost ones."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    return sum(
        1
        for t in trials
        if t.number not in replaced
        and (t.state in FINISHED_STATES or t.state == TrialState.RUNNING)
    )


def places_to_reserve(trials: list[FrozenTrial], n_trials: int, ahead: int) -> list[int]:
    """The places the leader reserves: each place below ``n_trials`` that nobody reserved and
    nobody will, i.e. the head of a chain (its place - ``ahead`` is not one of the budget's) or
    one whose predecessor was taken and has ended without reserving it.

    A study made before reservations has trials without a place; they fill the first places.
    """
    replaced = replaced_numbers(trials)
    first = sum(1 for t in trials if BUDGET_SLOT not in t.user_attrs and t.number not in replaced)
    reserved: dict[int, TrialState] = {}
    for trial in trials:
        if BUDGET_SLOT in trial.user_attrs and not is_retry(trial):
            reserved.setdefault(int(trial.user_attrs[BUDGET_SLOT]), trial.state)
    places = []
    for place in range(first, n_trials):
        if place in reserved:
            continue
        before = place - ahead
        # A predecessor waiting, running or itself missing: its taker reserves this place.
        if before >= first and not reserved.get(before, TrialState.WAITING).is_finished():
            continue
        places.append(place)
        reserved[place] = TrialState.WAITING
    return places


class Reservations:
    """The reserved trials of ``study``, taken one at a time by :meth:`take` (the trial loop's
    ``ask``). ``lead``: this worker starts and mends the chains (worker 0)."""

    def __init__(
        self,
        study: optuna.Study,
        n_trials: int,
        *,
        lead: bool,
        ahead: int = RESERVED_AHEAD,
        wait_seconds: float = 30.0,
        storage_file: Path | None = None,
    ):
        self.study, self.n_trials, self.lead, self.ahead = study, n_trials, lead, ahead
        self.wait_seconds = wait_seconds
        self.storage_file = storage_file
        self._none_waiting_below = 0  # no trial numbered lower waits (seen at the last take)

    def reserve(self) -> int:
        """Reserve the places nobody else will (see :func:`places_to_reserve`); returns how many.
        Only a leader calls it, so that no place is reserved twice; two leaders of one study on
        one machine (the same command started twice) take turns (:func:`one_leader_at_a_time`)."""
        with one_leader_at_a_time(self.storage_file):
            trials = self.study.get_trials(deepcopy=False)
            places = places_to_reserve(trials, self.n_trials, self.ahead)
            for place in places:
                self.study.enqueue_trial({}, user_attrs={BUDGET_SLOT: place})
        return len(places)

    def take(self) -> optuna.Trial | None:
        """A reserved (or re-enqueued) trial, now RUNNING for this worker; None once the budget
        is used.

        When none waits but the budget is not used yet, the next ones are on their way (another
        worker is reserving them, or the leader will): wait for them, up to ``wait_seconds``.
        """
        deadline = time.monotonic() + self.wait_seconds
        mended = 0.0
        while True:
            popped = pop_waiting_trial(self.study, self._none_waiting_below)
            if popped is not None:
                trial, frozen, self._none_waiting_below = popped
                trial = self._claim(trial, frozen)
                if trial is not None:
                    return trial
                continue
            if budget_used(self.study) >= self.n_trials or time.monotonic() > deadline:
                return None
            if self.lead and time.monotonic() - mended > 1.0:
                # A chain broken by a killed worker is mended once its trial is failed as lost.
                optuna.storages.fail_stale_trials(self.study)
                self.reserve()
                mended = time.monotonic()
            time.sleep(0.05)

    def _claim(self, trial: optuna.Trial, frozen: FrozenTrial) -> optuna.Trial | None:
        """Reserve the place after ``trial``'s; None (the trial ended) if its place is beyond a
        budget lowered since it was reserved."""
        place = frozen.user_attrs.get(BUDGET_SLOT)
        if place is None or is_retry(frozen):
            return trial
        if place >= self.n_trials:
            trial.set_user_attr(OVER_BUDGET, True)
            trial.set_user_attr(FAIL_REASON, f"over budget: study.n_trials={self.n_trials}")
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        if place + self.ahead < self.n_trials:
            self.study.enqueue_trial({}, user_attrs={BUDGET_SLOT: place + self.ahead})
        return trial


@contextmanager
def one_leader_at_a_time(storage_file: Path | None) -> Iterator[None]:
    """Hold a lock beside a storage file while reserving: two leaders that read the trials at
    the same instant would both reserve every place (the study then held twice its budget, the
    extra trials left WAITING). A storage on a server (``storage_file`` None) has one leader,
    worker 0 of its multirun."""
    if storage_file is None:
        yield
        return
    with open(f"{storage_file}.reserving.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def slot_attrs(trial: FrozenTrial) -> dict:
    """The place of ``trial`` as user attributes, for its retry (which takes its place)."""
    return {BUDGET_SLOT: trial.user_attrs[BUDGET_SLOT]} if BUDGET_SLOT in trial.user_attrs else {}

"""The Optuna side: storage, the named study, the trial budget and recovery of lost trials.

``study.n_trials`` is the total the study reaches, however many times the command is rerun and
however many workers share it. A trial lost with its process (killed, node gone) is failed and
retried: RDB storages find it by heartbeat; the journal file store (no heartbeats in Optuna)
by its recorded host and pid, checked when a worker starts.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from pipeline.errors import UserInputError
from pipeline.preflight import cannot_open_database

OWNER_HOST = "host"
OWNER_PID = "pid"
FAIL_REASON = "fail_reason"
RETRY_OF = "retry_of"  # user attr of a re-enqueued lost trial: the number it replaces
# User attr of a trial that started after other workers had already used the whole budget.
OVER_BUDGET = "over_budget"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Study user attr: the settings its trials were scored with ({"cv.folds": 5, ...}).
SETTINGS_ATTR = "settings"


def open_storage(location: str, heartbeat_interval: int) -> optuna.storages.BaseStorage:
    """A database URL gives an RDB storage with heartbeats; anything else is a journal file."""
    if "://" in location:
        engine_kwargs = {}
        if location.startswith("sqlite"):
            # Several writers on one SQLite file wait for the lock instead of failing at once.
            engine_kwargs = {"connect_args": {"timeout": 60}}
            if location.startswith("sqlite:///"):  # SQLite makes the file, not its folders
                Path(location.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            return _rdb_storage_with_retries(
                with_installed_driver(location),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=4 * heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        except Exception as error:  # SQLAlchemy raises many kinds; all mean "cannot use it"
            raise cannot_open_database("study.storage", location, error) from None
    path = Path(location)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise UserInputError(
            f"study.storage={location}: cannot write there ({error.strerror})"
        ) from None


def with_installed_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; the project installs psycopg2
    (``psycopg2-binary``), so without this the documented URL fails with "No module named
    'psycopg'". An explicit ``postgresql+driver://`` is left alone.
    """
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _rdb_storage_with_retries(url: str, attempts: int = 4, **kwargs) -> RDBStorage:
    """RDBStorage, retried: workers opening a fresh database at the same instant race to create
    its tables, and the losers fail with a duplicate-key error (PostgreSQL's catalog)."""
    for attempt in range(attempts):
        try:
            return RDBStorage(url, **kwargs)
        except Exception as error:
            if attempt == attempts - 1 or not _is_creation_race(error):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _is_creation_race(error: Exception) -> bool:
    text = str(error).lower()
    return "duplicate key" in text or "already exists" in text or "unique constraint" in text


def check_direction(storage, name: str, direction: str) -> None:
    """An existing study of that name must have ``direction``; checked before anything is written."""
    existing = find_study(storage, name)
    if existing is None:
        return
    found = existing.direction.name.lower()
    if found != direction:
        raise UserInputError(
            f"study.direction={direction}: study {name!r} already exists with direction "
            f"{found}; use another study.name or study.direction={found}"
        )


def check_settings(storage, name: str, settings: dict[str, Any]) -> None:
    """An existing study of that name was made with these ``settings``; checked before anything
    is written.

    ``settings`` are what a trial's score depends on besides its hyperparameters (the data, the
    hold-out split, the folds, the fixed training settings; see :data:`SETTINGS_ATTR`). Resumed
    with others, a study would rank trials scored on different data or folds against each other
    and refit its champion on data it was never chosen on. A study made before the settings were
    recorded has nothing to compare with; it gets them when it is next opened.
    """
    existing = find_study(storage, name)
    recorded = None if existing is None else existing.user_attrs.get(SETTINGS_ATTR)
    if recorded is None:
        return
    differing = [key for key in sorted(settings.keys() | recorded.keys())
                 if settings.get(key) != recorded.get(key)]  # fmt: skip
    if differing:
        key, more = differing[0], differing[1:]
        also = f" (also {', '.join(more)})" if more else ""
        raise UserInputError(
            f"{key}={settings.get(key)}: study {name!r} was made with {key}="
            f"{recorded.get(key)}{also}, so their scores would not compare; resume with the "
            "study's settings or give another study.name"
        )


def record_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Keep ``settings`` on a study that has none yet (a new one, or one made before they were
    recorded), for :func:`check_settings` when it is resumed."""
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, settings)


def open_study(storage, name: str, direction: str, sampler, pruner) -> optuna.Study:
    """Create the study or load the existing one of that name (then its direction must match)."""
    check_direction(storage, name, direction)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    existing = study.direction.name.lower()
    if existing != direction:
        raise UserInputError(
            f"study.direction={direction}: study {name!r} already exists with direction "
            f"{existing}; use another study.name or study.direction={existing}"
        )
    return study


def find_study(storage, name: str) -> optuna.Study | None:
    """The study if it already exists, without creating it."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def replaced_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials that do not count to the budget: lost trials that have been
    re-enqueued, and trials that started after the budget was used up (see claim_budget)."""
    numbers = set()
    for trial in trials:
        if trial.user_attrs.get(OVER_BUDGET):
            numbers.add(trial.number)
        if "failed_trial" in trial.system_attrs:  # RetryHeartbeatStaleTrialCallback's marker
            numbers.add(int(trial.system_attrs["failed_trial"]))
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


class BudgetReached(optuna.TrialPruned):
    """This trial started after the study's budget was used up; it ends without work.

    A subclass of ``TrialPruned`` so that Optuna ends the trial quietly (a caught exception
    would log a warning with a traceback); the :data:`OVER_BUDGET` mark leaves it out of the
    budget and of the summary's pruned count.
    """


def claim_budget(trial: optuna.Trial, n_trials: int) -> None:
    """Let ``trial`` run only if it is among the first ``n_trials`` trials that count.

    Workers check the budget before asking for a trial, but two of them can both see one trial
    left and both ask. Trial numbers are handed out in one order by the storage, so each trial
    counts the trials numbered before it (finished, running, or waiting to be run, like an
    enqueued retry) and the one that comes too late is marked :data:`OVER_BUDGET` and raises
    :class:`BudgetReached` before any work or MLflow run (pipeline.trial_loop then asks no
    more). Without a lock that every storage shares, this is what makes the total exact:
    Optuna's MaxTrialsCallback overshoots by up to workers - 1 (seen here with 2 workers on 10
    trials).
    """
    trials = trial.study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    earlier = sum(
        1
        for t in trials
        if t.number < trial.number
        and t.number not in replaced
        and (t.state in FINISHED_STATES or t.state in (TrialState.RUNNING, TrialState.WAITING))
    )
    if earlier >= n_trials:
        trial.set_user_attr(OVER_BUDGET, True)
        trial.set_user_attr(FAIL_REASON, f"over budget: {n_trials} trials were already taken")
        raise BudgetReached(f"study budget of {n_trials} trials reached by other workers")


def record_owner(trial: optuna.Trial) -> None:
    """Remember which process runs the trial, so that a later start can tell if it died."""
    trial.set_user_attr(OWNER_HOST, socket.gethostname())
    trial.set_user_attr(OWNER_PID, os.getpid())


def owner_gone(trial: FrozenTrial) -> bool:
    """True when the trial's recorded process ran on this host and exists no longer."""
    pid = trial.user_attrs.get(OWNER_PID)
    if trial.user_attrs.get(OWNER_HOST) != socket.gethostname() or pid is None:
        return False
    return int(pid) != os.getpid() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process whose parent has not reaped it yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux) or gone meanwhile
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def recover_lost_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Fail RUNNING trials whose process is gone and enqueue their parameters again.

    RDB storages: Optuna's heartbeat check (``fail_stale_trials``) does it and the retry callback
    re-enqueues. Any storage: a trial recorded as owned by a dead pid on this host is failed here.
    Returns the trials that were failed.
    """
    storage = study._storage
    lost = []
    if isinstance(storage, RDBStorage):
        before = {t.number for t in study.get_trials(states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        lost += [t for t in study.get_trials(states=(TrialState.FAIL,)) if t.number in before]
    for trial in study.get_trials(states=(TrialState.RUNNING,)):
        if not owner_gone(trial):
            continue
        pid, host = trial.user_attrs[OWNER_PID], trial.user_attrs[OWNER_HOST]
        reason = f"lost: its process {pid} on {host} ended while the trial ran"
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
            lost.append(trial)
    return lost

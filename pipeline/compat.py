"""Every use of a library's private API, in one place, each pinned by a test.

Each function names what it reaches into and why no public way does the same;
``tests/pipeline/test_compat.py`` fails when an upgrade of Optuna, Hydra, MLflow or Python changes
it. The libraries are imported inside the functions: the command-line check and the multirun
callback use this module before the heavy imports, and must not pay for MLflow's.
"""

from __future__ import annotations

import argparse
import atexit
from typing import Any

# Optuna logs a trial whose objective raised from this (private) module, with the traceback.
OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"


def study_storage(study) -> Any:
    """The storage an ``optuna.Study`` was opened with: Optuna has no public accessor, and the
    lost-trial recovery and heartbeats need the storage's own calls."""
    return study._storage


def trial_id(trial) -> int:
    """A trial's id in its storage (``Trial`` or ``FrozenTrial``); the storage's calls take it,
    and only its private attribute holds it."""
    return trial._trial_id


def retried_trial_number(trial) -> int | None:
    """The number of the stale trial that ``trial`` retries, as Optuna's
    ``RetryHeartbeatStaleTrialCallback`` marks it; None for any other trial. The callback's own
    ``retried_trial_number`` reads the same system attribute, but warns as experimental on every
    call, and the budget asks it for every trial of the study."""
    number = trial.system_attrs.get("failed_trial")
    return None if number is None else int(number)


def pop_waiting_trial(study, from_number: int = 0) -> tuple[Any, Any, int] | None:
    """A trial of ``study`` that was waiting (enqueued), now RUNNING and owned by the caller: the
    trial, its ``FrozenTrial`` as it was popped, and a number below which no trial waits (pass it
    as ``from_number`` next time); None when no trial waits.

    ``Study.ask()`` does the same but creates a new trial when none waits, which is how a
    worker that came too late used to leave a trial over the budget in the study
    (pipeline.search.budget). The pop itself is Optuna's: it sets WAITING to RUNNING in the
    storage, which only one process wins, on every storage.

    The trials are read once, into the study's per-ask cache, which the sampler then reads too
    (Optuna's own pop reads every waiting trial on top of that: on a journal file, a pass over
    every trial of the study). A trial never waits again once taken (a retry is a new trial,
    with a higher number), so the search starts at ``from_number``.
    """
    import bisect

    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study._thread_local.cached_all_trials = None  # as ask() does: read the storage afresh
    trials = study._get_trials(deepcopy=False, use_cache=True)
    first_waiting = None
    for index in range(
        bisect.bisect_left(trials, from_number, key=lambda t: t.number), len(trials)
    ):
        frozen = trials[index]
        if frozen.state != TrialState.WAITING:
            continue
        if first_waiting is None:
            first_waiting = frozen.number
        try:
            if not study._storage.set_trial_state_values(
                frozen._trial_id, state=TrialState.RUNNING
            ):
                continue
        except UpdateFinishedTrialError:
            continue
        trial = optuna.Trial(study, frozen._trial_id)
        # The cache as after Optuna's ask(), in a copy: an in-memory storage lends its own list.
        cache = list(trials)
        cache[index] = trial._cached_frozen_trial
        study._thread_local.cached_all_trials = cache
        return trial, trial._cached_frozen_trial, first_waiting
    return None


def trials_seen_at_start(study) -> list:
    """Every trial of ``study``, in number order, as this thread's trial saw them when it was
    taken: the study's per-ask cache, which ``ask`` and :func:`pop_waiting_trial` fill (read
    from the storage only if empty). What a trial draws from the study costs no more reads."""
    return study._get_trials(deepcopy=False, states=None, use_cache=True)


class StudyTrialsView:
    """A study as a sampler sees it, with the trials it reads chosen by ``select``.

    Optuna's samplers read a study's trials through its private ``_get_trials`` (and write
    through ``_storage``, reached here as on the study); there is no public way to give a
    sampler fewer trials than the study holds, which is what keeps TPE's cost bounded
    (pipeline.search.bounded_sampler). ``select(trials, states)`` gets every trial, sorted by
    number, and the states asked for, and filters only what it reads.

    Every read comes from the study's cache of its trials, which ``ask`` (and
    :func:`pop_waiting_trial`) empties, so the storage is read once per trial. Optuna's TPE
    with ``constant_liar`` asks to bypass it, to see the trials running elsewhere: the cache is
    filled when the trial is taken, just before its suggestions, and each fresh read (or state
    filter) is a pass over every trial of the study.
    """

    def __init__(self, study, select):
        self._view_of, self._select = study, select

    def __getattr__(self, name: str):
        return getattr(self._view_of, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        trials = trials_seen_at_start(self._view_of)
        chosen = self._select(trials, states)
        if deepcopy:
            import copy

            return copy.deepcopy(chosen)
        return chosen


def distribution_change_refused(old, new) -> bool:
    """Whether Optuna's storage would refuse ``new`` for a parameter recorded with ``old`` (a
    changed kind, log scale or categorical choices). Optuna's own rule, which its docs say is
    not meant for library users; the resume check asks it instead of keeping a copy."""
    from optuna.distributions import check_distribution_compatibility

    try:
        check_distribution_compatibility(old, new)
    except ValueError:
        return True
    return False


def hydra_args_parser() -> argparse.ArgumentParser:
    """Hydra's own command-line parser, so that our check before ``@hydra.main`` reads the
    command line exactly as Hydra will (``-m``, ``--cfg``, ``--config-dir``, overrides)."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def split_sweep_overrides(task_overrides: list[str]) -> list[list[str]]:
    """The jobs of Hydra's basic sweeper: one list of overrides per job (``worker=range(4)``
    gives 4). Hydra builds them inside its sweeper; the multirun callback needs them earlier."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(task_overrides)
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]


def job_error(job_return) -> BaseException | None:
    """The exception a failed Hydra job raised, without re-raising it (the public
    ``return_value`` raises), so that a callback can mask passwords in it first."""
    value = job_return._return_value
    return value if isinstance(value, BaseException) else None


def failed_job_return(error: BaseException, overrides: list[str] | None = None):
    """A Hydra ``JobReturn`` of a job that failed with ``error`` (what ``run_job`` makes of a
    task's exception; its field is private), for a launcher whose job ended otherwise."""
    from hydra.core.utils import JobReturn, JobStatus

    return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=error)


def run_exit_handlers() -> None:
    """Run the ``atexit`` handlers now, in their usual order: a command that ends with
    ``os._exit`` (skipping the interpreter's teardown) still flushes logs and removes its
    temporary folders."""
    atexit._run_exitfuncs()


def forget_exit_handlers() -> None:
    """Drop the ``atexit`` handlers registered so far: in a process forked to run one job, they
    are the launching process's, and its clean-up (temporary folders it made) is its own."""
    atexit._clear()


def dispose_mlflow_engine(uri: str) -> bool:
    """Close the database engine MLflow keeps for ``uri`` for the rest of the process (its
    store class caches one per URI); True if there was one. Used for a store this process opens
    once and never again (the SQLite template)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = SqlAlchemyStore._engine_map.pop(uri, None)
    if engine is None:
        return False
    engine.dispose()
    return True

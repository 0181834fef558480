"""``study.n_trials`` as the total a study reaches, however many times the command is rerun and
however many workers share it.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.compat import retried_trial_number
from pipeline.names import FAIL_REASON, FINISHED_STATES, OVER_BUDGET, RETRY_OF


def replaced_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials that do not count to the budget: lost trials that have been
    re-enqueued, and trials that started after the budget was used up (see claim_budget)."""
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
    :class:`BudgetReached` before any work or MLflow run (pipeline.search.trial_loop then asks no
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

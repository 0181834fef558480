"""pipeline.search.trial_loop with a real in-memory Optuna study, the real objective and fold pool."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from sklearn.datasets import load_iris

from pipeline.model.ensemble import ModelSpec
from pipeline.names import OVER_BUDGET
from pipeline.search.budget import claim_budget
from pipeline.search.objective import Objective, TrainingDiverged
from pipeline.search.trial_loop import run_trials
from tests.helpers import compose_config

FIXED = {"solver": "adam", "batch_size": None, "alpha": 0.0, "init": "xavier", "dtype": "float32"}


@pytest.fixture(scope="module")
def objective() -> Objective:
    X, y = load_iris(return_X_y=True)
    cfg = compose_config(["search_space.iterations.low=10", "search_space.iterations.high=30"])
    return Objective(
        X,
        y,
        spec=ModelSpec.numeric(4),
        fixed_params=FIXED,
        search_space=cfg.search_space,
        folds=3,
        seed=0,
        n_jobs=2,
    )


def new_study() -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))


def test_trials_run_two_at_a_time_and_all_are_told(objective):
    study = new_study()
    run_trials(study, objective.begin, n_trials=5, workers=2, in_flight=2)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert all(len(t.intermediate_values) == 3 for t in trials)
    # Trial k+1 was asked before trial k was told.
    assert all(
        b.datetime_start < a.datetime_complete for a, b in zip(trials, trials[1:], strict=False)
    )


def failing_at(number: int, error: Exception, objective: Objective):
    """``objective.begin``, except that trial ``number`` raises ``error`` as it begins."""

    def begin(trial):
        if trial.number == number:
            raise error
        return objective.begin(trial)

    return begin


def test_a_caught_failure_ends_its_trial_only(objective):
    study = new_study()
    diverged = TrainingDiverged("fold 0: diverged at iteration 1 (a test)")
    begin = failing_at(1, diverged, objective)
    run_trials(study, begin, n_trials=4, workers=2, catch=(TrainingDiverged,))
    states = [t.state for t in study.trials]
    assert states == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]


def test_an_uncaught_error_also_ends_the_other_trial_in_flight(objective):
    study = new_study()
    with pytest.raises(RuntimeError, match="a bug"):
        run_trials(study, failing_at(2, RuntimeError("a bug"), objective), n_trials=6, workers=2)
    # Trial 2 is asked once trial 0 is told, while trial 1 is in flight: 1 and 2 end failed.
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert study.trials[1].user_attrs["fail_reason"].startswith("abandoned")


def test_no_new_trial_once_stop_says_so(objective):
    study = new_study()
    run_trials(study, objective.begin, n_trials=10, workers=2, stop=lambda: len(study.trials) >= 3)
    assert len(study.trials) == 3
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_a_trial_over_the_budget_ends_quietly_and_stops_the_asking(objective):
    """Another worker took trials meanwhile: the trial that comes too late is marked, pruned
    (not failed) and the loop asks no more, while the trial in flight completes."""
    study = new_study()
    taken = [study.ask(), study.ask()]  # "another worker's" trials, still running

    def begin(trial):
        claim_budget(trial, 3)
        return objective.begin(trial)

    run_trials(study, begin, n_trials=5, workers=2)
    trials = study.trials
    assert [t.state for t in trials[2:]] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[3].user_attrs[OVER_BUDGET] is True
    for trial in taken:
        study.tell(trial, state=TrialState.FAIL)

"""pipeline.search.trial_loop with a real in-memory Optuna study, the real objective and fold pool."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from sklearn.datasets import load_iris

from pipeline.model.ensemble import ModelSpec
from pipeline.names import BUDGET_SLOT, OVER_BUDGET
from pipeline.search.budget import Reservations, budget_used, places_to_reserve
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


def test_reserved_trials_make_exactly_the_budget_and_nothing_over_it(objective):
    """Two workers (here two loops in turn on one study) take reserved trials: the study ends
    with exactly the budget, each place once, and a late worker creates no trial."""
    study = new_study()
    leader = Reservations(study, 7, lead=True, ahead=3)
    assert leader.reserve() == 3
    other = Reservations(study, 7, lead=False, ahead=3, wait_seconds=0)
    run_trials(study, objective.begin, n_trials=2, workers=2, ask=other.take)
    run_trials(study, objective.begin, n_trials=100, workers=2, ask=leader.take)
    assert other.take() is None
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 7
    assert sorted(t.user_attrs[BUDGET_SLOT] for t in trials) == list(range(7))


def test_places_are_reserved_by_the_leader_only_where_no_taker_will():
    study = new_study()
    reservations = Reservations(study, 6, lead=True, ahead=2)
    reservations.reserve()
    assert reservations.reserve() == 0  # the chain heads wait already
    taken = reservations.take()  # place 0, which reserves place 2
    places = {t.user_attrs[BUDGET_SLOT]: t.state for t in study.trials}
    assert places == {0: TrialState.RUNNING, 1: TrialState.WAITING, 2: TrialState.WAITING}
    # A process killed between taking place 0 and reserving place 2 breaks the chain: once
    # place 0 has ended (failed as lost), the leader mends it.
    study.tell(taken, state=TrialState.FAIL)
    trials = study.get_trials()
    without_2 = [t for t in trials if t.user_attrs[BUDGET_SLOT] != 2]
    assert places_to_reserve(without_2, 6, 2) == [2]
    assert places_to_reserve(trials, 6, 2) == []
    # A budget raised on resume: the places past the old budget whose predecessors ended.
    assert places_to_reserve(trials, 8, 2) == []
    done = [t for t in trials if t.user_attrs[BUDGET_SLOT] == 0]
    assert places_to_reserve(done, 8, 2) == [1, 2]


def test_a_study_made_before_reservations_keeps_its_trials_in_the_budget():
    study = new_study()
    for _ in range(3):
        study.tell(study.ask(), 0.5)
    assert places_to_reserve(study.trials, 5, 32) == [3, 4]


def test_a_reserved_place_beyond_a_lowered_budget_is_not_run(objective):
    study = new_study()
    Reservations(study, 4, lead=True).reserve()
    lowered = Reservations(study, 2, lead=True, wait_seconds=0)
    run_trials(study, objective.begin, n_trials=10, workers=2, ask=lowered.take)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2
    assert all(t.user_attrs.get(OVER_BUDGET) for t in study.trials[2:])
    assert budget_used(study) == 2

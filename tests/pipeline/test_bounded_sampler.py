"""pipeline.search.bounded_sampler with real Optuna studies."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from pipeline.search.bounded_sampler import BoundedTPESampler


def space(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return -((x - 1) ** 2) + (0.5 if kind == "b" else 0.0)


def run(sampler, n_trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(space, n_trials=n_trials)
    return study


def test_without_a_bound_it_is_tpe():
    bounded = run(BoundedTPESampler(seed=3, history=None), 40)
    plain = run(optuna.samplers.TPESampler(seed=3), 40)
    assert [t.params for t in bounded.trials] == [t.params for t in plain.trials]


def test_within_the_history_it_is_tpe_and_past_it_tpe_sees_the_recent_and_the_best():
    sampler = BoundedTPESampler(seed=3, history=30, keep_best=5)
    plain = run(optuna.samplers.TPESampler(seed=3), 31)
    study = run(sampler, 31)
    assert [t.params for t in study.trials] == [t.params for t in plain.trials]
    study.optimize(space, n_trials=30)
    seen = sampler._select(study.get_trials(deepcopy=False), sign=1.0)
    numbers = {t.number for t in seen}
    best = sorted(study.trials, key=lambda t: t.value, reverse=True)[:5]
    assert set(range(31, 61)) <= numbers
    assert {t.number for t in best} <= numbers
    assert len(numbers) <= 35
    assert [t.number for t in seen] == sorted(numbers)


def test_same_seed_same_trials():
    first = run(BoundedTPESampler(seed=1, history=15, keep_best=3), 40)
    second = run(BoundedTPESampler(seed=1, history=15, keep_best=3), 40)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


def test_a_history_below_one_is_refused():
    with pytest.raises(ValueError, match="history must be at least 1"):
        BoundedTPESampler(history=0)


COMPLETE, PRUNED, RUNNING = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)


def test_trials_finishing_out_of_order_are_ranked_as_a_full_pass_would():
    """Many workers finish trials out of order, some fail, some run for long: the incremental
    ranking keeps the same best trials as ranking every trial again at each call."""
    rng = np.random.default_rng(0)
    study = optuna.create_study(direction="minimize")
    sampler = BoundedTPESampler(seed=0, history=20, keep_best=5)
    distribution = optuna.distributions.FloatDistribution(0, 1)
    open_trials = []
    for _ in range(300):
        open_trials.append(study.ask({"x": distribution}))
        if len(open_trials) > 12 or rng.random() < 0.5:
            trial = open_trials.pop(int(rng.integers(len(open_trials))))
            roll = rng.random()
            if roll < 0.1:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif roll < 0.3:
                study.tell(trial, state=PRUNED)
            else:
                study.tell(trial, float(rng.random()))
        # The states Optuna's TPE asks for (constant liar: the running ones too)
        states = (COMPLETE, PRUNED, RUNNING)
        trials = study.get_trials(deepcopy=False, states=states)
        seen = {t.number for t in sampler._select(study.get_trials(deepcopy=False), -1.0, states)}
        complete = [t for t in trials if t.state == COMPLETE]
        finished = [t for t in trials if t.state != RUNNING]
        best = sorted(complete, key=lambda t: (t.value, -t.number))[:5]
        assert seen <= {t.number for t in trials}  # of the states asked for only
        if len(trials) > 20:
            assert {t.number for t in best} <= seen
            assert {n for _, n, _ in sampler._best} == {t.number for t in best}
            assert {t.number for t in finished[-20:]} <= seen
            # A trial still running 4 histories later is no longer looked for (UNSEEN_HORIZON).
            newest = trials[-1].number
            assert {
                t.number for t in trials if t.state == RUNNING and t.number > newest - 80
            } <= seen
            assert len(seen - {t.number for t in trials if t.state == RUNNING}) <= 25
    assert (
        len(sampler._finished.unseen) <= 13
    )  # the running ones: failed ones are seen, and done with

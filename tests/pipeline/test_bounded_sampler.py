"""pipeline.search.bounded_sampler with real Optuna studies."""

from __future__ import annotations

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

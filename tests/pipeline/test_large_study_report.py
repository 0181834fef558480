"""The report of a study of thousands of trials: trials.csv written row by row with one row per
trial, and plots that draw a named sample instead of every trial. A real Optuna study (in
memory: a journal file's fsync per trial would cost seconds to write) and a real MLflow SQLite
store in tmp_path; the costs themselves are measured by benchmarks/bench_results.py, not here."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from pipeline.names import SETTINGS_ATTR
from pipeline.results.study_plots import (
    BEST_PLOTTED,
    MOST_PLOTTED,
    complete_trials,
    parallel_coordinate_figure,
    plotted_trials,
    slice_figure,
)
from pipeline.results.trials_csv import log_trials_csv, mean_and_std, trial_rows, trials_table
from pipeline.tracking.store import connect

N_TRIALS = 2500
DISTRIBUTIONS = {
    "learning_rate": FloatDistribution(0.001, 0.1, log=True),
    "hidden_units": IntDistribution(16, 256),
    "activation": CategoricalDistribution(["relu", "tanh"]),
}


@pytest.fixture(scope="module")
def large_study() -> optuna.Study:
    """N_TRIALS finished trials written through the storage API: two in three complete with 3
    fold scores, the others pruned after one fold."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="large", direction="maximize")
    study.set_user_attr(SETTINGS_ATTR, {"cv.metric": "accuracy"})
    rng = np.random.default_rng(0)
    trials = []
    for number in range(N_TRIALS):
        pruned = number % 3 == 2
        scores = rng.uniform(0.6, 0.99, size=1 if pruned else 3)
        trials.append(
            optuna.trial.create_trial(
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                value=float(scores[-1] if pruned else scores.mean()),
                params={
                    "learning_rate": float(rng.uniform(0.001, 0.1)),
                    "hidden_units": int(rng.integers(16, 257)),
                    "activation": ["relu", "tanh"][number % 2],
                },
                distributions=DISTRIBUTIONS,
                intermediate_values={fold: float(s) for fold, s in enumerate(scores)},
            )
        )
    study.add_trials(trials)
    return study


def test_trials_csv_on_the_run_has_exactly_one_row_per_trial(large_study, tmp_path):
    store = tmp_path / "mlruns"
    client, experiment_id = connect(f"sqlite:///{store / 'mlflow.db'}", str(store / "a"), "big")
    run_id = client.create_run(experiment_id).info.run_id
    assert log_trials_csv(client, run_id, large_study) == "trials.csv"
    logged = pd.read_csv(client.download_artifacts(run_id, "trials.csv", str(tmp_path)))
    assert list(logged["number"]) == list(range(N_TRIALS))
    assert (logged["state"] == "PRUNED").sum() == N_TRIALS // 3
    assert logged["fold_2_accuracy"].isna().sum() == N_TRIALS // 3  # pruned after one fold
    assert logged.equals(pd.read_csv(tmp_path / "trials.csv"))  # the download, read once more
    in_memory = trials_table(large_study)
    assert np.allclose(logged["cv_accuracy_mean"], in_memory["cv_accuracy_mean"])


def test_the_rows_are_made_one_at_a_time():
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            value=1.0, params={"a": 1}, distributions={"a": IntDistribution(0, 2)}
        )
    )
    header, rows = trial_rows(study)
    assert isinstance(rows, Iterator)  # a generator: no list of every row
    assert header[:3] == ["number", "state", "a"] and next(rows)[:3] == [0, "COMPLETE", 1]


def test_past_the_limit_the_plots_draw_the_best_trials_and_a_named_random_sample(large_study):
    complete = complete_trials(large_study)
    chosen, words = plotted_trials(complete, maximize=True)
    assert len(chosen) == MOST_PLOTTED
    assert [t.number for t in chosen] == sorted(t.number for t in chosen)
    best = sorted(complete, key=lambda t: -t.value)[:BEST_PLOTTED]
    assert {t.number for t in best} <= {t.number for t in chosen}
    assert [t.number for t in plotted_trials(complete, maximize=True)[0]] == [
        t.number for t in chosen
    ]  # seeded: the same sample every time
    assert words == f"1,000 of {len(complete):,} complete trials: the 100 best, 900 at random"

    figure = parallel_coordinate_figure(large_study)
    (lines,) = [c for c in figure.axes[0].collections if isinstance(c, LineCollection)]
    assert len(lines.get_segments()) == MOST_PLOTTED
    assert words in figure.axes[0].get_title()
    figure = slice_figure(large_study)
    dots = [c for ax in figure.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert {len(d.get_offsets()) for d in dots} == {MOST_PLOTTED}
    assert words in figure.get_suptitle()


def test_a_small_study_is_drawn_whole(large_study):
    few = complete_trials(large_study)[:50]
    assert plotted_trials(few, maximize=True) == (few, "complete trials")


@pytest.mark.parametrize("size", [1, 2, 5, 10])
def test_the_rows_mean_and_std_are_numpys(size):
    values = list(np.random.default_rng(size).uniform(0, 1, size))
    mean, std = mean_and_std(values)
    assert mean == pytest.approx(np.mean(values), abs=1e-15)
    assert std == pytest.approx(np.std(values), abs=1e-15)
    assert mean_and_std([]) == (None, None)

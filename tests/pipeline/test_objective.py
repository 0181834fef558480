"""The objective and the fold machinery, with a real in-memory Optuna study run by the sweep's
own loop (pipeline.search.trial_loop), and the real fold pool."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sklearn.datasets import load_iris

from pipeline.config.search_space import network_params
from pipeline.folds.cancel import CANCEL_FOLDER_PREFIX
from pipeline.folds.processes import remove_folders_of_gone_processes
from pipeline.folds.scheduler import FoldScheduler, fold_tasks
from pipeline.folds.worker import fit_fold
from pipeline.model.ensemble import ModelSpec, standardisation
from pipeline.search.objective import ALL_MODELS_UP_TO, Objective, TrainingDiverged, evaluate_folds
from pipeline.search.trial_loop import run_trials
from pipeline.tracking.runs import TrialRun
from pipeline.tracking.store import connect
from tests.helpers import compose_config

FIXED = {"solver": "adam", "batch_size": None, "alpha": 0.0, "init": "xavier", "dtype": "float32"}
GOOD = {
    "learning_rate": 0.02,
    "hidden_layers": 1,
    "hidden_units": 16,
    "iterations": 150,
    "activation": "tanh",
}
# Trial parameters of networks too small or too slow to learn iris: pruned by a strict pruner.
WEAK = {**GOOD, "learning_rate": 1e-4, "hidden_units": 4, "iterations": 5, "activation": "sigmoid"}
HOPELESS = {**WEAK, "learning_rate": 1e-5, "hidden_units": 2, "iterations": 2}

# Folds that run for seconds (~6 s each on iris): still running when the test removes them.
SLOW = {
    **FIXED,
    "solver": "gd",
    "hidden_layer_sizes": (128, 128),
    "learning_rate": 0.01,
    "iterations": 20000,
    "activation": "tanh",
}


IRIS_SPEC = ModelSpec.numeric(4)  # iris: a classification of 4 numeric columns, by accuracy


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def start_folds(kwargs, X, y, folds: int) -> FoldScheduler:
    """One trial's folds (owner "trial") started in the pool of 2 processes."""
    scheduler = FoldScheduler(2)
    scheduler.add("trial", fold_tasks(IRIS_SPEC, kwargs, X, y, folds=folds, seed=0))
    return scheduler


def all_results(kwargs, X, y, folds: int) -> list:
    """Every fold's FoldResult, in the order the folds finish."""
    scheduler, results = start_folds(kwargs, X, y, folds), []
    while batch := scheduler.wait():
        results += [result for _, result in batch]
    return results


def make_objective(X, y, *, folds=3, n_jobs=2, fixed_params=FIXED, **kwargs) -> Objective:
    # Wide enough for every configuration of these tests, so that enqueued ones are in range.
    cfg = compose_config(
        [
            "search_space.learning_rate.low=1e-5",
            "search_space.learning_rate.high=1e4",
            "search_space.hidden_units.low=2",
            "search_space.iterations.low=2",
            "search_space.iterations.step=1",
        ]
    )
    return Objective(
        X,
        y,
        spec=ModelSpec.numeric(X.shape[1]),
        fixed_params=fixed_params,
        search_space=cfg.search_space,
        folds=folds,
        seed=0,
        n_jobs=n_jobs,
        **kwargs,
    )


def new_study(pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    return optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())


def run(study: optuna.Study, objective: Objective, *trials: dict) -> None:
    """One trial per parameter dict of ``trials``, run by the sweep's own loop (two in flight)."""
    for params in trials:
        study.enqueue_trial(params)
    run_trials(study, objective.begin, n_trials=len(trials), workers=objective.workers)


def test_a_trial_scores_the_mean_of_its_folds(iris):
    X, y = iris
    study = new_study()
    run(study, make_objective(X, y), GOOD)
    (trial,) = study.trials
    scores = list(trial.intermediate_values.values())
    assert trial.state == TrialState.COMPLETE and len(scores) == 3
    assert trial.value == pytest.approx(np.mean(scores))
    assert trial.value > 0.85  # iris with a sane network is easy; a broken fit scores ~0.33


def test_same_seed_gives_the_same_fold_scores(iris):
    X, y = iris
    first, second = new_study(), new_study()
    run(first, make_objective(X, y), GOOD)
    run(second, make_objective(X, y), GOOD)
    assert first.trials[0].intermediate_values == second.trials[0].intermediate_values


def test_train_and_a_sweep_trial_score_a_configuration_alike(iris):
    """pipeline.train (evaluate_folds) and the sweep (run_trials) share one fold driver: the
    same configuration and seed give the same fold scores, to the last bit, in fold order."""
    X, y = iris
    study = new_study()
    run(study, make_objective(X, y), GOOD)
    outcome = evaluate_folds(
        IRIS_SPEC, {**FIXED, **network_params(GOOD)}, X, y, folds=3, seed=0, n_jobs=2
    )
    (trial,) = study.trials
    assert list(outcome.scores) == [0, 1, 2]  # handled in fold order
    assert trial.intermediate_values == outcome.scores


def test_diverging_training_fails_the_trial_with_its_reason(iris):
    X, y = iris
    objective = make_objective(X, y, fixed_params={**FIXED, "solver": "gd"})
    diverging = {**GOOD, "learning_rate": 1e4}
    study = new_study()
    with pytest.raises(TrainingDiverged, match="diverged at iteration"):
        run(study, objective, diverging)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("diverged")
    # pipeline.train stops at the same fold, for the same reason.
    kwargs = {**objective.fixed_params, **network_params(diverging)}
    with pytest.raises(TrainingDiverged) as caught:
        evaluate_folds(IRIS_SPEC, kwargs, X, y, folds=3, seed=0, n_jobs=2)
    assert trial.user_attrs["fail_reason"] == f"diverged: {caught.value}"


def test_a_run_not_ready_at_the_first_folds_is_opened_before_the_trial_ends(iris, tmp_path):
    """The sweep's tracking store may still be starting while the first trial's folds run: the
    objective asks for the run as folds arrive, then waits for it before the trial ends."""
    X, y = iris
    client, experiment_id = connect(
        f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "art"), "deferred"
    )
    asked = []

    def open_run(trial, params, wait):
        asked.append(wait)
        if not wait:
            return None  # the store is not ready yet
        run = TrialRun(client, experiment_id, None, "study", trial.number)
        run.open()
        return run

    study = new_study()
    run(study, make_objective(X, y, open_run=open_run, log_models=False), GOOD)
    # Asked when the folds start and as they arrive (not ready), then waited for at the end.
    assert len(asked) >= 2 and not any(asked[:-1]) and asked[-1] is True
    (mlflow_run,) = client.search_runs([experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.metrics["cv_accuracy_mean"] == pytest.approx(study.trials[0].value)
    assert mlflow_run.data.params["hidden_units"] == "16"


def test_free_processes_go_to_the_oldest_trials_folds_first(iris):
    """Two trials in flight: the second one's folds run only on processes the first one cannot
    use any more (all its folds started), so they never delay it."""
    X, y = iris
    # Folds long enough that none ends before the first assertion looks: in a warm pool, one of
    # 30 iterations could, and its process would already run the first trial's third fold.
    medium = {**SLOW, "iterations": 1000}
    scheduler = FoldScheduler(2)
    scheduler.add(
        "first", fold_tasks(IRIS_SPEC, {**medium, "activation": "tanh"}, X, y, folds=3, seed=0)
    )
    scheduler.add(
        "second", fold_tasks(IRIS_SPEC, {**medium, "activation": "relu"}, X, y, folds=3, seed=0)
    )
    assert sorted(scheduler._running.values()) == ["first", "first"]  # white box: the pool's
    finished = []
    while batch := scheduler.wait():
        finished += [(owner, result.fold) for owner, result in batch]
        if "second" in scheduler._running.values():
            assert scheduler._queues["first"] == []
    assert sorted(finished) == [("first", 0), ("first", 1), ("first", 2)] + [
        ("second", 0),
        ("second", 1),
        ("second", 2),
    ]


def test_a_finished_fold_frees_its_process_before_its_result_is_collected(iris):
    """While the driver is busy elsewhere (logging, sampling) and has not collected a finished
    fold yet, a trial added meanwhile still gets that process at once."""
    X, y = iris
    quick = {**FIXED, "hidden_layer_sizes": (4,), "learning_rate": 0.02, "iterations": 3}
    scheduler = FoldScheduler(2)
    scheduler.add("first", fold_tasks(IRIS_SPEC, quick, X, y, folds=2, seed=0))
    for future in list(scheduler._running):  # white box: both folds done, none collected
        future.result(timeout=60)
    scheduler.add("second", fold_tasks(IRIS_SPEC, quick, X, y, folds=2, seed=0))
    assert list(scheduler._running.values()).count("second") == 2
    assert scheduler._queues["second"] == []
    finished = []
    while batch := scheduler.wait():
        finished += [(owner, result.fold) for owner, result in batch]
    assert sorted(finished) == [("first", 0), ("first", 1), ("second", 0), ("second", 1)]


def test_fold_results_arrive_for_every_fold_and_preprocessing_stays_in_the_fold(iris):
    X, y = iris
    # A huge offset on one feature: scaling fitted per fold must absorb it.
    X = X.copy()
    X[:, 0] += 1e4
    kwargs = {
        **FIXED,
        "hidden_layer_sizes": (16,),
        "learning_rate": 0.02,
        "iterations": 100,
        "activation": "relu",
    }
    results = all_results(kwargs, X, y, folds=3)
    assert sorted(r.fold for r in results) == [0, 1, 2]
    assert all(r.score > 0.8 for r in results)
    for r in results:  # each fold's scaler was fitted on its own training rows only
        assert r.model.preprocessor.mean[0] == pytest.approx(1e4 + 5.84, abs=0.3)


def test_a_hopeless_trial_is_pruned_before_all_folds_are_fitted(iris):
    X, y = iris
    study = new_study(optuna.pruners.ThresholdPruner(lower=0.9))
    run(study, make_objective(X, y, folds=5, n_jobs=1), HOPELESS)
    # n_jobs=1 runs the folds one after another: pruned after the first, 4 never started
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["fail_reason"].startswith("pruned after 1 of 5 folds")
    assert len(trial.intermediate_values) == 1
    # the shared process pool still works for the next trial (no "executor shut down")
    ok = {
        **FIXED,
        "hidden_layer_sizes": (16,),
        "learning_rate": 0.02,
        "iterations": 100,
        "activation": "tanh",
    }
    assert len(evaluate_folds(IRIS_SPEC, ok, X, y, folds=3, seed=0, n_jobs=2).scores) == 3


def test_pruning_with_parallel_folds_cancels_and_keeps_the_pool_usable(iris):
    X, y = iris
    study = new_study(optuna.pruners.ThresholdPruner(lower=0.99))
    run(study, make_objective(X, y, folds=5, n_jobs=2), WEAK, WEAK, WEAK)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    assert all(len(t.intermediate_values) < 5 for t in study.trials)


def test_no_prune_once_every_remaining_fold_is_already_running(iris):
    X, y = iris
    study = new_study(optuna.pruners.ThresholdPruner(lower=0.99))
    # 3 folds on 2 processes: when the first result arrives the other two already run, so a
    # prune would save nothing; the trial completes with every fold reported.
    run(study, make_objective(X, y, folds=3, n_jobs=2), WEAK)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE
    assert len(trial.intermediate_values) == 3


def test_a_pruned_trial_leaves_the_process_pool_alive(iris):
    """Cancelling a trial's folds must not kill the pool: a respawn costs every later trial."""
    X, y = iris
    kwargs = {
        **FIXED,
        "hidden_layer_sizes": (8,),
        "learning_rate": 0.02,
        "iterations": 30,
        "activation": "tanh",
    }
    before = _fold_pids(kwargs, X, y)
    scheduler = start_folds(kwargs, X, y, folds=5)
    scheduler.wait()
    scheduler.remove("trial")  # what a pruned trial does
    assert _fold_pids(kwargs, X, y) == before


def _fold_pids(kwargs, X, y) -> set[int]:
    """Pids of the pool processes, read back through the real fold path."""
    from joblib.externals.loky import get_reusable_executor

    executor = get_reusable_executor(max_workers=2)
    all_results(kwargs, X, y, folds=2)
    return set(executor._processes)


class RecordingPruner(optuna.pruners.BasePruner):
    """Never prunes; records which fold steps each trial had reported at every decision."""

    def __init__(self):
        self.seen: list[list[int]] = []

    def prune(self, study, trial) -> bool:
        self.seen.append(sorted(trial.intermediate_values))
        return False


def test_the_pruner_sees_the_folds_in_fold_order_whatever_order_they_finish(iris):
    """Parallel folds finish in any order; reporting them in fold order is what makes a
    seeded sweep prune (and so end) the same way every time."""
    X, y = iris
    pruner = RecordingPruner()
    study = new_study(pruner)
    quick = {**GOOD, "hidden_units": 4, "learning_rate": 0.01, "iterations": 3}
    # Folds of a few milliseconds, two trials in flight: finishing order is anybody's guess.
    run(study, make_objective(X, y, folds=5, n_jobs=2), *[quick] * 6)
    # 5 folds on 2 processes: the pruner is asked after folds 0 and 1 (after that, every fold
    # left is already running), each time with exactly the folds up to it reported.
    assert pruner.seen == [[0], [0, 1]] * 6


def test_closing_the_folds_cancels_the_ones_still_running(iris):
    """A pruned trial's running folds stop within milliseconds instead of occupying the pool's
    processes (and delaying the next trial) until their fits end."""
    X, y = iris
    scheduler = start_folds(SLOW, X, y, folds=5)  # folds 0 and 1 start
    running = list(scheduler._running)  # white box: the pool's futures of those two
    scheduler.remove("trial")
    stopped = [future.result(timeout=120) for future in running]
    # Finished fits would carry error None: "cancelled" comes from the training callback only.
    assert [r.error for r in stopped] == ["cancelled", "cancelled"]
    quick = {**SLOW, "hidden_layer_sizes": (4,), "iterations": 3}
    assert len(all_results(quick, X, y, folds=2)) == 2


def test_the_fitting_a_removed_trial_threw_away_is_counted(iris):
    """The seconds its running folds had fitted when it was removed (what pruning costs),
    and nothing for a trial whose folds all ran to the end."""
    X, y = iris
    scheduler = start_folds(SLOW, X, y, folds=5)  # folds 0 and 1 start
    started = time.perf_counter()
    time.sleep(2.0)
    scheduler.remove("trial")
    elapsed = time.perf_counter() - started
    discarded = scheduler.fitting_time().discarded_seconds
    # Both folds fitted for most of those 2 s (a fresh pool's processes start in well under
    # one) and no longer.
    assert 2.0 <= discarded <= 2 * elapsed + 0.1
    quick = {**SLOW, "hidden_layer_sizes": (4,), "iterations": 3}
    complete = start_folds(quick, X, y, folds=2)
    while complete.wait():
        pass
    assert complete.fitting_time().discarded_seconds == 0.0


def test_a_freed_process_gets_the_next_fold_while_the_driver_is_busy(iris):
    """Folds start as processes free up, not only when the driver next waits: the driver's
    bookkeeping (Optuna, MLflow) does not leave the processes idle."""
    X, y = iris
    quick = {**SLOW, "hidden_layer_sizes": (4,), "iterations": 3}
    scheduler = start_folds(quick, X, y, folds=5)  # 2 start, 3 queued
    deadline = time.monotonic() + 60
    while len(scheduler._running) < 5 and time.monotonic() < deadline:  # white box
        time.sleep(0.05)  # the driver busy elsewhere: no wait(), no add()
    assert len(scheduler._running) == 5 and not any(scheduler._queues.values())
    results = []
    while batch := scheduler.wait():
        results += [result for _, result in batch]
    assert sorted(r.fold for r in results) == [0, 1, 2, 3, 4]


def test_the_wall_time_two_processes_fitted_at_once_counts_once(iris):
    """Two folds fitting side by side: the wall time with some fold fitting is about one of
    them, not their sum; every returned fold's span is counted, each within the wait."""
    X, y = iris
    medium = {**SLOW, "iterations": 2000}  # ~0.5 s per fold
    started = time.time()
    scheduler = start_folds(medium, X, y, folds=2)
    results = []
    while batch := scheduler.wait():
        results += [result for _, result in batch]
    elapsed = time.time() - started
    fitting = scheduler.fitting_time()
    seconds = [r.fit_seconds for r in results]
    assert len(fitting.spans) == 2 and all(started <= r.fit_started for r in results)
    # (1e-5: the spans' ends are sums of epoch times, rounded to ~0.2 us)
    assert max(seconds) - 1e-5 <= fitting.wall_seconds() <= min(sum(seconds), elapsed)


def test_a_flagged_fold_stops_its_training_and_says_so(iris, tmp_path):
    X, y = iris
    flag = tmp_path / "cancel"
    kwargs = {
        **FIXED,
        "hidden_layer_sizes": (8,),
        "learning_rate": 0.01,
        "iterations": 500,
        "activation": "tanh",
    }

    def fit():
        train, valid = np.arange(0, 150, 2), np.arange(1, 150, 2)
        return fit_fold(
            IRIS_SPEC, kwargs, X, y, train, valid, fold=0, seed=0, cancel_flag=str(flag)
        )

    flag.touch()
    result = fit()
    assert result.error == "cancelled" and result.score is None
    flag.unlink()
    result = fit()
    assert result.error is None and len(result.loss_curve) == 500


def test_fold_standardisation_matches_scikit_learns_scaler(iris):
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    constant_and_tiny = np.c_[np.full(50, 3.3), np.linspace(0, 1e-18, 50), np.arange(50.0)]
    for X in (iris[0], load_digits().data, constant_and_tiny):
        mean, scale = standardisation(X)
        reference = StandardScaler().fit(X)
        np.testing.assert_allclose(mean, reference.mean_, rtol=1e-12)
        np.testing.assert_allclose(scale, reference.scale_, rtol=1e-12)


def test_a_fold_process_imports_neither_scikit_learn_nor_pandas():
    """Fresh pool processes import only NumPy and the core (with the preprocessing and the
    metrics, pipeline.model): they start in a fraction of the time, while the sweep itself is
    still starting."""
    code = (
        "import sys, pipeline.folds.worker\n"
        "assert 'pipeline.model.metrics' in sys.modules\n"
        "assert 'pipeline.model.preprocessing' in sys.modules\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'pandas', 'scipy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_cancel_folders_of_killed_sweeps_are_removed(tmp_path):
    """A sweep killed by SIGKILL never runs its exit clean-up; the next one removes its folder."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    killed = tmp_path / f"{CANCEL_FOLDER_PREFIX}{ended.stdout.strip()}-a1"
    killed.mkdir()
    (killed / "flag").touch()
    running = tmp_path / f"{CANCEL_FOLDER_PREFIX}{os.getpid()}-b2"
    running.mkdir()
    unrelated = tmp_path / "mlp-sweep-cancel-c3"  # no pid in its name: not ours to judge
    unrelated.mkdir()
    remove_folders_of_gone_processes(str(tmp_path), CANCEL_FOLDER_PREFIX)
    assert not killed.exists()
    assert running.exists() and unrelated.exists()


def test_models_are_kept_for_the_first_trials_and_then_for_improvements_only(iris):
    X, y = iris
    objective = make_objective(X, y, log_models=True)
    study = new_study()
    for _ in range(ALL_MODELS_UP_TO):
        study.enqueue_trial({})  # numbers 0..199 taken
    early = [study.ask() for _ in range(ALL_MODELS_UP_TO)]
    assert all(objective.keeps_model(t, 0.5) for t in early[:3])  # worse or equal: still kept
    late = [study.ask() for _ in range(4)]
    values = [0.6, 0.55, 0.6, 0.7]
    assert [objective.keeps_model(t, v) for t, v in zip(late, values, strict=True)] == [
        True,
        False,
        False,
        True,
    ]
    assert not make_objective(X, y, log_models=False).keeps_model(early[0], 0.9)


def test_a_large_study_keeps_the_models_of_new_bests_only(iris):
    X, y = iris
    objective = make_objective(X, y, log_models=True, all_models_up_to=0)
    study = new_study()
    first = [study.ask() for _ in range(3)]
    values = [0.6, 0.55, 0.7]
    kept = [objective.keeps_model(t, v) for t, v in zip(first, values, strict=True)]
    assert kept == [True, False, True]

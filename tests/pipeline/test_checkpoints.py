"""Pruning inside a fold: bars at checkpoint epochs (pipeline.search.checkpoint_bars), the fold
that stops below one (pipeline.folds.worker), the folds after it never started
(pipeline.folds.scheduler), the trial pruned (pipeline.search.objective), its curve in MLflow.
Real Optuna trials and studies, the real fold pool, a real MLflow SQLite store."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sklearn.datasets import load_iris

from pipeline.folds.checkpoints import Checkpoints
from pipeline.folds.scheduler import FoldScheduler, fold_tasks
from pipeline.folds.worker import fit_fold
from pipeline.model.ensemble import ModelSpec
from pipeline.names import CHECKPOINT_SCORES_ATTR
from pipeline.search.checkpoint_bars import (
    CheckpointColumns,
    CheckpointRule,
    bars_from,
    checkpoint_rule,
)
from pipeline.search.objective import FoldOutcome
from pipeline.tracking.runs import TrialRun
from pipeline.tracking.store import connect
from tests.helpers import compose_config
from tests.pipeline.test_objective import FIXED, GOOD, WEAK, make_objective, new_study, run

SPEC = ModelSpec.numeric(4)
FULL_BATCH = {**FIXED, "hidden_layer_sizes": (16,), "learning_rate": 0.02, "activation": "tanh"}


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def complete_trial(table: dict[str, list[float]]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=0.5, user_attrs={CHECKPOINT_SCORES_ATTR: table}
    )


def test_bars_are_the_rules_percentile_of_complete_trials_at_each_fold_and_epoch():
    trials = [complete_trial({"10": [0.1 * i, 0.5], "20": [0.2 * i, 0.6]}) for i in range(1, 6)] + [
        complete_trial({"20": [0.0, 0.0]})
    ]  # another cv.checkpoints: counts at epoch 20 only
    median = bars_from(trials, CheckpointRule(50.0, 5), (10, 20), folds=2, maximize=True)
    assert median.bars == pytest.approx({(0, 10): 0.3, (1, 10): 0.5, (0, 20): 0.5, (1, 20): 0.6})
    assert median.maximize and median.epochs == (10, 20) and "50%" in median.rule
    # Keeping the best 25% is clearing the 75th percentile when maximising, the 25th when not.
    upper = bars_from(trials[:5], CheckpointRule(25.0, 5), (10,), folds=2, maximize=True)
    lower = bars_from(trials[:5], CheckpointRule(25.0, 5), (10,), folds=2, maximize=False)
    assert upper.bars[(0, 10)] == pytest.approx(0.4)
    assert lower.bars[(0, 10)] == pytest.approx(0.2)
    assert lower.bar_missed(0, 10, 0.25) == pytest.approx(0.2)  # a loss above the bar
    assert lower.bar_missed(0, 10, 0.15) is None
    # Fewer complete trials than the rule's start-up: no bar, nothing pruned.
    assert bars_from(trials[:4], CheckpointRule(50.0, 5), (10,), 2, True).bars == {}
    assert bars_from(trials, None, (10,), 2, True).bars == {}


def test_bars_kept_from_trial_to_trial_equal_a_full_pass_over_the_complete_trials():
    """A sweep keeps its checkpoint columns from one trial to the next, reading each trial once
    (CheckpointColumns.look); trials finish out of order: the bars stay those of every complete
    trial, read again."""
    rng = np.random.default_rng(3)
    study = optuna.create_study(direction="maximize")
    columns = CheckpointColumns((10, 20), folds=2)
    rule, open_trials, compared = CheckpointRule(50.0, 5), [], 0
    for _ in range(120):
        open_trials.append(study.ask())
        if len(open_trials) > 6 or rng.random() < 0.5:
            trial = open_trials.pop(int(rng.integers(len(open_trials))))
            table = {str(epoch): [float(v) for v in rng.random(2)] for epoch in (10, 20)}
            if rng.random() < 0.2:
                table["10"][1] = float("nan")  # a fold that diverged
            trial.set_user_attr(CHECKPOINT_SCORES_ATTR, table)
            study.tell(trial, 0.5)
        columns.look(study.get_trials(deepcopy=False))
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        assert columns.bars(rule, True) == bars_from(complete, rule, (10, 20), 2, True)
        compared += len(complete) >= 5
    assert compared > 100


@pytest.mark.parametrize(
    ("group", "rule"),
    [
        ("median", CheckpointRule(50.0, 5)),
        ("percentile", CheckpointRule(25.0, 5)),
        ("hyperband", CheckpointRule(100.0 / 3, 5)),
        ("wilcoxon", None),
        ("none", None),
    ],
)
def test_each_pruner_group_gives_its_rule_at_checkpoints(group, rule):
    assert checkpoint_rule(compose_config([f"pruner={group}"]).pruner) == rule


def fold_args(iris, kwargs, checkpoints, fold=0, folds=3):
    X, y = iris
    tasks = fold_tasks(SPEC, kwargs, X, y, folds=folds, seed=0, checkpoints=checkpoints)
    return tasks[fold]


def test_a_fold_below_its_bar_stops_at_that_checkpoint(iris):
    kwargs = {**FULL_BATCH, "iterations": 200}
    result = fit_fold(*fold_args(iris, kwargs, Checkpoints((5, 10), {(0, 10): 1.01})))
    assert result.score is None and result.error is None and result.model is None
    epoch, score, bar = result.pruned
    assert (epoch, bar) == (10, 1.01) and 0 <= score <= 1
    assert len(result.loss_curve) == 10
    assert result.checkpoint_scores == {5: pytest.approx(result.checkpoint_scores[5]), 10: score}


def test_a_fold_that_ends_first_holds_its_final_score_at_later_checkpoints(iris):
    kwargs = {**FULL_BATCH, "iterations": 30}
    result = fit_fold(*fold_args(iris, kwargs, Checkpoints((10, 20, 1000))))
    assert result.pruned is None and result.score is not None
    assert sorted(result.checkpoint_scores) == [10, 20]  # measured where it trained
    assert len(result.loss_curve) == 30
    outcome = FoldOutcome()
    outcome.add(result)
    table = outcome.checkpoint_table((10, 20, 1000))  # what bars are drawn from
    assert table == {
        "10": [result.checkpoint_scores[10]],
        "20": [result.checkpoint_scores[20]],
        "1000": [result.score],
    }
    assert outcome.validation_curve() == result.checkpoint_scores  # what MLflow shows


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fold_pruned_at_a_checkpoint_starts_none_of_the_folds_after_it(iris, workers):
    X, y = iris
    slow = {**FULL_BATCH, "iterations": 3000}  # fold 1 still runs when fold 0 stops
    tasks = fold_tasks(
        SPEC, slow, X, y, folds=5, seed=0, checkpoints=Checkpoints((5,), {(0, 5): 1.01})
    )
    scheduler, seen = FoldScheduler(workers), {}
    scheduler.add("trial", tasks)
    while batch := scheduler.wait():
        seen.update({result.fold: result for _, result in batch})
    # Folds 2-4 never ran; fold 1 (running, or before the pruned one) still did.
    assert sorted(seen) == ([0, 1] if workers == 2 else [0])
    assert seen[0].pruned is not None


def test_a_trial_below_the_bar_is_pruned_in_its_first_fold(iris):
    X, y = iris
    study = new_study()
    objective = make_objective(
        X, y, checkpoint_epochs=(5,), checkpoint_rule=CheckpointRule(50.0, 1)
    )
    run(study, objective, {**GOOD, "iterations": 40})  # complete: sets the bars
    run(study, objective, {**WEAK, "iterations": 40})
    good, weak = study.trials
    assert good.state == TrialState.COMPLETE
    assert set(good.user_attrs[CHECKPOINT_SCORES_ATTR]) == {"5"}
    assert weak.state == TrialState.PRUNED
    reason = weak.user_attrs["fail_reason"]
    assert reason.startswith("pruned in fold 0 at epoch 5: validation accuracy ")
    assert "the best 50% of complete trials" in reason


def test_the_validation_curve_is_logged_beside_the_training_loss(tmp_path):
    client, experiment_id = connect(
        f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"), "curves"
    )
    trial_run = TrialRun(client, experiment_id, None, "study", 0)
    trial_run.open()
    curve = {10: 0.8, 20: 0.9}
    trial_run.close(
        "COMPLETE", None, "accuracy", {0: 0.9, 1: 0.92}, 1.0, np.array([1.0, 0.5]), 2.0, curve
    )
    history = client.get_metric_history(trial_run.run_id, "valid_accuracy")
    assert {m.step: m.value for m in history} == curve
    assert len(client.get_metric_history(trial_run.run_id, "train_loss")) == 2

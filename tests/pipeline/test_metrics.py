"""pipeline.model.metrics against scikit-learn, the reference it must equal to 1e-12."""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from pipeline.model.metrics import DEFAULT_METRIC, METRICS, TASKS, Metric, task_metrics

CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")
REGRESSION = ("rmse", "mae", "r2")
CASES = 150  # random cases per metric; all of them take well under a second


def assert_close(ours: float, reference: float) -> None:
    assert isinstance(ours, float)
    assert abs(ours - reference) <= 1e-12 * max(1.0, abs(reference)), (ours, reference)


def quietly(function, *args, **kwargs) -> float:
    """scikit-learn's value, without its warnings (a class only predicted, and the like)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(*args, **kwargs))


# scikit-learn 1.9 renamed log_loss's y_pred to y_proba; pass it by the name this one has.
PROBA = "y_proba" if "y_proba" in inspect.signature(sk.log_loss).parameters else "y_pred"


def reference(name: str, y_true, prediction, classes=None) -> float:
    """The scikit-learn call the brief names for each metric."""
    if name in REGRESSION:
        function = {
            "rmse": sk.root_mean_squared_error,
            "mae": sk.mean_absolute_error,
            "r2": sk.r2_score,
        }[name]
        return quietly(function, y_true, prediction)
    if name == "log_loss":
        return quietly(sk.log_loss, y_true, labels=classes, **{PROBA: prediction})
    if name == "roc_auc":
        if len(classes) == 2:
            return quietly(sk.roc_auc_score, y_true, prediction[:, 1])
        return quietly(
            sk.roc_auc_score, y_true, prediction, multi_class="ovr", average="macro", labels=classes
        )
    predicted = classes[np.argmax(prediction, axis=1)]
    function = {
        "accuracy": sk.accuracy_score,
        "balanced_accuracy": sk.balanced_accuracy_score,
        "f1_macro": lambda t, p: sk.f1_score(t, p, average="macro"),
    }[name]
    return quietly(function, y_true, predicted)


def random_classes(rng, n_classes: int) -> np.ndarray:
    """Sorted, as a model's classes_ are (np.unique): ints, or strings."""
    if rng.random() < 0.5:
        return np.sort(rng.choice(np.arange(-5, 30), size=n_classes, replace=False))
    words = np.array(["ant", "bee", "cat", "dog", "eel", "fox", "gnu"])
    return np.sort(rng.choice(words, size=n_classes, replace=False))


def random_probabilities(rng, n_rows: int, n_classes: int) -> np.ndarray:
    """Rows that sum to 1: continuous, or from a few levels (ties within and across rows),
    sometimes with a class that is never the argmax."""
    if rng.random() < 0.5:
        weights = rng.dirichlet(np.ones(n_classes), size=n_rows)
    else:
        weights = rng.integers(0, 3, size=(n_rows, n_classes)).astype(float)
        weights[weights.sum(axis=1) == 0, 0] = 1.0
    if rng.random() < 0.3:
        weights[:, rng.integers(n_classes)] *= 1e-3  # never predicted
    return weights / weights.sum(axis=1, keepdims=True)


def random_classification(rng, every_class: bool):
    """y_true (n_rows,), probabilities (n_rows, n_classes), classes (n_classes,)."""
    n_classes = int(rng.integers(2, 6))
    classes = random_classes(rng, n_classes)
    n_rows = int(rng.integers(6, 60))
    if every_class:  # each class has a row, and none has every row
        drawn = np.concatenate([classes, rng.choice(classes, size=n_rows - n_classes)])
    else:  # some class may have no row at all
        drawn = rng.choice(classes[: max(1, n_classes - int(rng.integers(0, 2)))], size=n_rows)
    y_true = rng.permutation(drawn)
    return y_true, random_probabilities(rng, n_rows, n_classes), classes


@pytest.mark.parametrize("name", [n for n in CLASSIFICATION if n != "roc_auc"])
def test_classification_metrics_equal_scikit_learns(name):
    rng = np.random.default_rng(list(METRICS).index(name))
    absent = 0
    for _ in range(CASES):
        y_true, prediction, classes = random_classification(rng, every_class=False)
        absent += len(np.unique(y_true)) < len(classes)
        ours = METRICS[name].score(y_true, prediction, classes)
        assert_close(ours, reference(name, y_true, prediction, classes))
    assert absent > 20  # the loop did try classes that have no row in y_true


def test_roc_auc_equals_scikit_learns_binary_and_one_vs_rest():
    rng = np.random.default_rng(11)
    sizes = set()
    for _ in range(CASES):
        y_true, prediction, classes = random_classification(rng, every_class=True)
        sizes.add(len(classes))
        ours = METRICS["roc_auc"].score(y_true, prediction, classes)
        assert_close(ours, reference("roc_auc", y_true, prediction, classes))
    assert sizes == {2, 3, 4, 5}


def test_roc_auc_counts_tied_scores_as_one_half():
    classes = np.array([0, 1])
    prediction = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    # Positives score 0.5 and 0.8, negatives 0.5 and 0.1: pairs won 1 + 1 + 1, tied 1 -> 3.5 / 4.
    assert METRICS["roc_auc"].score(np.array([1, 0, 0, 1]), prediction, classes) == 0.875


def test_a_tie_predicts_the_first_class():
    classes = np.array(["b", "a"])  # the model's order, whatever it is
    prediction = np.array([[0.5, 0.5], [0.3, 0.7]])
    assert METRICS["accuracy"].score(np.array(["b", "a"]), prediction, classes) == 1.0
    assert METRICS["accuracy"].score(np.array(["a", "a"]), prediction, classes) == 0.5


def test_a_class_only_predicted_is_left_out_of_balanced_accuracy_not_f1():
    classes = np.array(["a", "b", "c"])
    y_true = np.array(["a", "a", "b", "b"])
    prediction = np.eye(3)[[0, 2, 1, 1]]  # predicts a, c, b, b: c has no true row
    # recalls a 1/2, b 1 -> 0.75; F1 a 2/3, b 1, c 0 -> 5/9
    assert METRICS["balanced_accuracy"].score(y_true, prediction, classes) == 0.75
    assert METRICS["f1_macro"].score(y_true, prediction, classes) == pytest.approx(5 / 9, 1e-15)


def test_log_loss_clips_a_zero_probability_as_scikit_learn_does():
    classes = np.array([0, 1])
    prediction = np.array([[1.0, 0.0], [0.0, 1.0]])
    y_true = np.array([1, 1])
    ours = METRICS["log_loss"].score(y_true, prediction, classes)
    assert np.isfinite(ours)
    assert_close(ours, reference("log_loss", y_true, prediction, classes))


@pytest.mark.parametrize(
    ("y_true", "message"),
    [
        (["a"] * 20 + ["c"] * 20, "roc_auc is undefined: class 'b' has no row among the 40 scored"),
        (["a"] * 40, "roc_auc is undefined: class 'b' has no row among the 40 scored"),
    ],
)
def test_roc_auc_names_a_class_with_no_row_even_when_another_has_every_row(y_true, message):
    classes = np.array(["a", "b", "c"])
    prediction = np.full((40, 3), 1 / 3)
    with pytest.raises(ValueError) as raised:
        METRICS["roc_auc"].score(np.array(y_true), prediction, classes)
    assert str(raised.value) == message


def test_binary_roc_auc_with_one_class_names_the_missing_one():
    with pytest.raises(ValueError, match="class 7 has no row among the 3 scored"):
        METRICS["roc_auc"].score(np.array([3, 3, 3]), np.full((3, 2), 0.5), np.array([3, 7]))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_a_label_outside_the_classes_is_named(name):
    classes = np.array(["a", "b"])
    prediction = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="'zebra'"):
        METRICS[name].score(np.array(["a", "zebra", "b"]), prediction, classes)


def test_int_labels_are_not_string_classes():
    with pytest.raises(ValueError, match="label 0,"):
        METRICS["accuracy"].score(np.array([1, 0]), np.full((2, 2), 0.5), np.array(["0", "1"]))


@pytest.mark.parametrize(
    ("y_true", "prediction", "classes", "message"),
    [
        ([0, 1], np.full((2, 3), 1 / 3), [0, 1], r"expected class probabilities of shape \(2, 2\)"),
        ([0, 1], np.full((3, 2), 0.5), [0, 1], r"shape \(2, 2\)"),
        ([0, 1], np.full((2, 2), 0.5), None, "needs the model's classes"),
        ([], np.empty((0, 2)), [0, 1], "non-empty"),
    ],
)
def test_classification_inputs_of_the_wrong_shape(y_true, prediction, classes, message):
    with pytest.raises(ValueError, match=message):
        METRICS["accuracy"].score(np.array(y_true), prediction, classes)


def random_regression(rng):
    n_rows = int(rng.integers(2, 80))
    y_true = rng.normal(rng.normal(0, 100), rng.uniform(0.01, 50), size=n_rows)
    if rng.random() < 0.2:
        y_true = np.round(y_true)  # repeated values
    prediction = y_true + rng.normal(0, rng.uniform(0.01, 50), size=n_rows)
    return y_true, prediction


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_metrics_equal_scikit_learns(name):
    rng = np.random.default_rng(100 + list(METRICS).index(name))
    for _ in range(CASES):
        y_true, prediction = random_regression(rng)
        assert_close(METRICS[name].score(y_true, prediction), reference(name, y_true, prediction))


@pytest.mark.parametrize(
    ("y_true", "prediction", "expected"),
    [
        ([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], 1.0),  # constant and exact
        ([2.0, 2.0, 2.0], [2.0, 2.0, 2.5], 0.0),  # constant, not exact
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 1.0),
        ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], 0.0),  # the mean
        ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], -3.0),
    ],
)
def test_r2_follows_scikit_learn_on_constant_and_exact_cases(y_true, prediction, expected):
    ours = METRICS["r2"].score(np.array(y_true), np.array(prediction))
    assert ours == expected
    assert ours == reference("r2", y_true, prediction, None)


def test_r2_of_one_row_is_nan_as_in_scikit_learn():
    assert np.isnan(METRICS["r2"].score(np.array([1.0]), np.array([2.0])))
    assert np.isnan(reference("r2", [1.0], [2.0], None))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", REGRESSION)
def test_a_non_finite_prediction_gives_a_non_finite_score_not_an_error(name, bad):
    score = METRICS[name].score(np.array([1.0, 2.0, 3.0]), np.array([1.0, bad, 3.0]))
    assert not np.isfinite(score)


def test_regression_inputs_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        METRICS["rmse"].score(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="non-empty"):
        METRICS["mae"].score(np.zeros(0), np.zeros(0))


def test_the_table_of_metrics():
    table = [(m.name, m.task, m.direction, m.label, m.uses_probabilities) for m in METRICS.values()]
    assert table == [
        ("accuracy", "classification", "maximize", "accuracy", False),
        ("balanced_accuracy", "classification", "maximize", "balanced accuracy", False),
        ("f1_macro", "classification", "maximize", "F1 (macro)", False),
        ("log_loss", "classification", "minimize", "log loss", True),
        ("roc_auc", "classification", "maximize", "ROC AUC", True),
        ("rmse", "regression", "minimize", "RMSE", False),
        ("mae", "regression", "minimize", "MAE", False),
        ("r2", "regression", "maximize", "R²", False),
    ]
    assert [f.name for f in dataclasses.fields(Metric)] == [
        "name",
        "task",
        "direction",
        "label",
        "uses_probabilities",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        METRICS["rmse"].direction = "maximize"


def test_tasks_and_their_defaults():
    assert TASKS == ("classification", "regression")
    assert DEFAULT_METRIC == {"classification": "accuracy", "regression": "rmse"}
    assert [m.name for m in task_metrics("classification")] == list(CLASSIFICATION)
    assert [m.name for m in task_metrics("regression")] == list(REGRESSION)
    for task, name in DEFAULT_METRIC.items():
        assert METRICS[name].task == task
    with pytest.raises(ValueError, match="classification, regression"):
        task_metrics("ranking")

"""The scores a study can optimise (``cv.metric``), in NumPy alone.

Each metric equals its scikit-learn namesake (accuracy_score, balanced_accuracy_score,
f1_score(average="macro"), log_loss, roc_auc_score, root_mean_squared_error,
mean_absolute_error, r2_score) to rounding, but imports neither scikit-learn nor pandas: it runs
in the fold processes, which deliberately import neither. tests/pipeline/test_metrics.py holds
the two side by side on random cases. Probability columns follow ``classes`` in the order
given; scikit-learn's log_loss and roc_auc_score assume sorted labels instead, which is the
same thing for a model's ``classes_`` (np.unique, hence sorted).

Inputs are not checked for finiteness: a regression prediction with NaN or infinity gives the
NaN or infinity NumPy computes (scikit-learn would raise), and the caller decides what a
non-finite score means for the trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TASKS = ("classification", "regression")
CLASSIFICATION, REGRESSION = TASKS


@dataclass(frozen=True)
class Metric:
    """One ``cv.metric`` value: how to score a fold and which way is better.

    name : the cv.metric value; MLflow names are built from it (fold_<i>_<name>)
    direction : "maximize" or "minimize", Optuna's spelling
    label : for plot axes and messages
    uses_probabilities : scored on the probabilities themselves, not only on their argmax
    """

    name: str
    task: str
    direction: str
    label: str
    uses_probabilities: bool

    def score(self, y_true, prediction, classes=None) -> float:
        """The metric of ``prediction`` against ``y_true`` (n_samples,), as a Python float.

        Classification: ``prediction`` holds class probabilities (n_samples, n_classes) whose
        columns follow ``classes`` (n_classes,), the model's classes (ints or strings);
        ``y_true`` holds original labels. The predicted label of a row is
        ``classes[argmax(row)]``, the first column on ties.
        Regression: ``prediction`` (n_samples,) floats; ``classes`` is ignored.

        Raises ValueError for inputs of the wrong shape, a label of ``y_true`` that is not in
        ``classes``, and ROC AUC where a class has no row or every row.
        """
        if self.task == "classification":
            if classes is None:
                raise ValueError(f"{self.name}: a classification metric needs the model's classes")
            true, probabilities, classes = _classification_inputs(y_true, prediction, classes)
            return float(_SCORERS[self.name](true, probabilities, classes))
        return float(_SCORERS[self.name](*_regression_inputs(y_true, prediction)))


# ---------------------------------------------------------------------------- classification
# The scorers below take y_true as class indices into `classes` (n_samples,) ints, so that the
# labels, ints or strings, are compared once (in _class_indices) and never again.


def _classification_inputs(y_true, prediction, classes):
    classes = np.asarray(classes)
    probabilities = np.asarray(prediction, dtype=np.float64)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"classes: expected a non-empty 1-D array, got shape {classes.shape}")
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true: expected a non-empty 1-D array, got shape {y_true.shape}")
    expected = (y_true.shape[0], classes.shape[0])
    if probabilities.shape != expected:
        raise ValueError(
            f"prediction: expected class probabilities of shape {expected}, "
            f"got {probabilities.shape}"
        )
    return _class_indices(y_true, classes), probabilities, classes


def _class_indices(y_true: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The index into ``classes`` of each label of ``y_true``, (n_samples,) ints.

    Only the distinct labels are looked up in Python (a handful), the rows by NumPy.
    """
    try:
        labels, inverse = np.unique(y_true, return_inverse=True)
    except TypeError:  # an object array mixing strings and numbers cannot be sorted
        labels, inverse = _unique_unsorted(y_true)
    position = {label: index for index, label in enumerate(classes.tolist())}
    indices = np.empty(labels.shape[0], dtype=np.intp)
    for i, label in enumerate(labels.tolist()):
        try:
            indices[i] = position[label]
        except (KeyError, TypeError):  # TypeError: an unhashable label
            raise ValueError(
                f"y_true holds the label {label!r}, which is not one of the model's classes "
                f"{classes.tolist()}"
            ) from None
    return indices[inverse.reshape(-1)]


def _unique_unsorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seen: dict = {}
    inverse = np.array([seen.setdefault(v, len(seen)) for v in values.tolist()], dtype=np.intp)
    labels = np.empty(len(seen), dtype=object)
    labels[:] = list(seen)
    return labels, inverse


def _predicted_indices(probabilities: np.ndarray) -> np.ndarray:
    return np.argmax(probabilities, axis=1)  # the first maximum on ties, as classes[argmax]


def _accuracy(true, probabilities, classes) -> float:
    return np.mean(true == _predicted_indices(probabilities))


def _confusion(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are the true class, columns the predicted one."""
    flat = np.bincount(true * n_classes + predicted, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def _balanced_accuracy(true, probabilities, classes) -> float:
    """Mean recall over the classes that have rows in y_true (scikit-learn drops the others,
    with a warning, rather than counting them as 0)."""
    counts = _confusion(true, _predicted_indices(probabilities), classes.shape[0])
    support = counts.sum(axis=1)
    present = support > 0
    return np.mean(np.diagonal(counts)[present] / support[present])


def _f1_macro(true, probabilities, classes) -> float:
    """Mean F1 over the labels that are true or predicted somewhere (scikit-learn's default
    labels): 2 tp / (true + predicted) per label, which is never 0 over those labels."""
    counts = _confusion(true, _predicted_indices(probabilities), classes.shape[0])
    true_sum, predicted_sum = counts.sum(axis=1), counts.sum(axis=0)
    labels = (true_sum + predicted_sum) > 0
    tp = np.diagonal(counts)[labels].astype(np.float64)
    return np.mean(2.0 * tp / (true_sum[labels] + predicted_sum[labels]).astype(np.float64))


def _log_loss(true, probabilities, classes) -> float:
    """Mean -log p(true class), p clipped to [eps, 1 - eps] as scikit-learn does (no
    renormalisation: the network's rows already sum to 1)."""
    _require_two_classes("log_loss", classes)
    eps = np.finfo(np.float64).eps
    own = probabilities[np.arange(true.shape[0]), true]
    return np.mean(-np.log(np.clip(own, eps, 1 - eps)))


def _roc_auc(true, probabilities, classes) -> float:
    """Binary: AUC of the second class (classes[1]) scored by its column. More classes: the
    unweighted mean of each class against the rest (scikit-learn's multi_class="ovr",
    average="macro")."""
    _require_two_classes("roc_auc", classes)
    # A class with no row leaves its one-vs-rest curve without positives (and, with two
    # classes, the other one has every row): scikit-learn warns and gives NaN, we name it.
    n_rows = true.shape[0]
    rows = np.bincount(true, minlength=classes.shape[0])
    if (rows == 0).any():
        label = classes.tolist()[int(np.argmax(rows == 0))]
        raise ValueError(
            f"roc_auc is undefined: class {label!r} has no row among the {n_rows} scored"
        )
    if classes.shape[0] == 2:
        return _binary_auc(true == 1, probabilities[:, 1])
    return np.mean([_binary_auc(true == k, probabilities[:, k]) for k in range(classes.shape[0])])


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of boolean ``positive`` (n_samples,) by ``score`` (n_samples,).

    The Mann-Whitney statistic: the chance that a random positive scores above a random
    negative, ties counting one half, through the average rank of each score. It is the area
    scikit-learn's roc_curve + trapezoid rule give (a tie is a diagonal segment there).
    """
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    # Tied scores share the mean of the 1-based ranks they span.
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]
    n_positive = np.count_nonzero(positive)
    n_negative = positive.shape[0] - n_positive
    u = ranks[positive].sum() - n_positive * (n_positive + 1) / 2.0
    return u / (n_positive * n_negative)


def _require_two_classes(name: str, classes: np.ndarray) -> None:
    if classes.shape[0] < 2:
        raise ValueError(f"{name} needs at least two classes, got {classes.tolist()}")


# -------------------------------------------------------------------------------- regression


def _regression_inputs(y_true, prediction) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true: expected a non-empty 1-D array, got shape {y_true.shape}")
    if prediction.shape != y_true.shape:
        raise ValueError(f"prediction: expected shape {y_true.shape}, got {prediction.shape}")
    return y_true, prediction


def _rmse(y_true, prediction) -> float:
    return np.sqrt(np.mean((y_true - prediction) ** 2))


def _mae(y_true, prediction) -> float:
    return np.mean(np.abs(prediction - y_true))


def _r2(y_true, prediction) -> float:
    """1 - residual sum of squares / total sum of squares, with scikit-learn's rules: NaN for
    fewer than 2 rows; a constant y_true (total 0) gives 1.0 if every prediction is exact
    (residual 0), else 0.0, never a division by zero."""
    if y_true.shape[0] < 2:
        return float("nan")
    residual = np.sum((y_true - prediction) ** 2)
    total = np.sum((y_true - np.mean(y_true)) ** 2)
    if residual == 0:
        return 1.0
    if total == 0:
        return 0.0
    return 1 - residual / total


_SCORERS: dict[str, Callable[..., float]] = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "f1_macro": _f1_macro,
    "log_loss": _log_loss,
    "roc_auc": _roc_auc,
    "rmse": _rmse,
    "mae": _mae,
    "r2": _r2,
}

METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy", "classification", "maximize", "accuracy", False),
        Metric("balanced_accuracy", "classification", "maximize", "balanced accuracy", False),
        Metric("f1_macro", "classification", "maximize", "F1 (macro)", False),
        Metric("log_loss", "classification", "minimize", "log loss", True),
        Metric("roc_auc", "classification", "maximize", "ROC AUC", True),
        Metric("rmse", "regression", "minimize", "RMSE", False),
        Metric("mae", "regression", "minimize", "MAE", False),
        Metric("r2", "regression", "maximize", "R²", False),
    )
}

DEFAULT_METRIC: dict[str, str] = {"classification": "accuracy", "regression": "rmse"}


def task_metrics(task: str) -> tuple[Metric, ...]:
    """The metrics of ``task``, in METRICS order; ValueError for a task not in TASKS."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return tuple(metric for metric in METRICS.values() if metric.task == task)

"""The task (classification or regression) and the metric a study optimises, settled once the
data is loaded: ``dataset.task``, ``cv.metric`` and ``study.direction`` are written into the
config, so that every later step, the study's settings and the runs' ``config.yaml`` read the
same resolved values.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig
from sklearn.model_selection import KFold, StratifiedKFold

from pipeline.data import Dataset, Split
from pipeline.errors import UserInputError
from pipeline.model.ensemble import ModelSpec
from pipeline.model.metrics import CLASSIFICATION, DEFAULT_METRIC, METRICS, task_metrics


def resolve_task(cfg: DictConfig, data: Dataset) -> None:
    """Fill in ``dataset.task``, ``cv.metric`` and ``study.direction`` (those left null) from
    the data; a metric of the other task, or a direction against the metric's, is refused."""
    task = data.task
    metric = cfg.cv.metric or DEFAULT_METRIC[task]
    if METRICS[metric].task != task:
        fitting = ", ".join(m.name for m in task_metrics(task))
        raise UserInputError(
            f"cv.metric={metric}: scores a {METRICS[metric].task}, but {data.label_source} is a "
            f"{task} target; choose one of {fitting} (or set dataset.task)"
        )
    direction = METRICS[metric].direction
    given = cfg.study.get("direction")
    if given and given != direction:
        raise UserInputError(
            f"study.direction={given}: cv.metric={metric} is to {direction}; leave "
            "study.direction unset (it follows cv.metric)"
        )
    cfg.dataset.task, cfg.cv.metric = task, metric
    if "direction" in cfg.study:
        cfg.study.direction = direction


def task_line(cfg: DictConfig, data: Dataset) -> str:
    """The one line that says what the sweep learns and how it scores it, e.g.
    ``task: regression of column 'price' of houses.csv (inferred: decimal numbers; set
    dataset.task to change); optimising cv.metric=rmse (minimize)``."""
    if data.task_reason.startswith("inferred"):
        why = f" ({data.task_reason}; set dataset.task to change)"
    elif data.task_reason:
        why = f" ({data.task_reason})"
    else:
        why = ""
    metric = METRICS[cfg.cv.metric]
    return (
        f"task: {data.task} of {data.label_source}{why}; optimising cv.metric={metric.name} "
        f"({metric.direction})"
    )


def cv_splitter(task: str, folds: int, seed: int):
    """Shuffled, seeded folds: stratified by class for a classification, plain for a regression."""
    splitter = StratifiedKFold if task == CLASSIFICATION else KFold
    return splitter(n_splits=folds, shuffle=True, random_state=seed)


def check_metric_defined(cfg: DictConfig, data: Dataset, split: Split) -> None:
    """ROC AUC needs a row of each class wherever it scores. In every fold it has one: the folds
    are stratified and each class has at least ``cv.folds`` training rows (checked by
    pipeline.data.check_class_counts); the test split, stratified too, can still miss a rare
    class, and the champion is scored there."""
    if cfg.cv.metric != "roc_auc":
        return
    absent = np.setdiff1d(np.unique(data.y), split.y_test)
    if absent.size:
        raise UserInputError(
            f"cv.metric=roc_auc: the test split of {data.label_source} has no row of class "
            f"{str(absent[0])!r}, so the champion's ROC AUC would be undefined; raise "
            "cv.test_size, add rows of that class or choose another cv.metric"
        )


def model_spec(cfg: DictConfig, data: Dataset) -> ModelSpec:
    """What each fold of a trial learns (after :func:`resolve_task`)."""
    return ModelSpec(data.task, data.columns, cfg.cv.metric)

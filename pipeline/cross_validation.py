"""k-fold cross-validation of one configuration, the folds fitted in parallel joblib processes.

Results arrive in completion order (``return_as="generator_unordered"``) so that the objective can
report each fold to the pruner as soon as it is known, and stop fitting the rest of a hopeless
trial by closing the generator.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed, parallel_config
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold

import core
from pipeline.fitted_model import ScaledNetwork


@dataclass
class FoldResult:
    """One fold's outcome. ``error`` is set (and ``score`` is None) when training diverged.

    loss_curve : ndarray of shape (n_iterations_run,)
    """

    fold: int
    score: float | None
    fit_seconds: float
    loss_curve: np.ndarray
    model: ScaledNetwork | None
    error: str | None = None


def fold_seed(seed: int, fold: int) -> int:
    """Initial weights depend on the study seed and the fold only, never on the trial: trials
    are then compared under the same random draws (common random numbers)."""
    return seed * 1000 + fold


def fit_fold(
    network_kwargs: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    train_index: np.ndarray,
    valid_index: np.ndarray,
    fold: int,
    seed: int,
) -> FoldResult:
    """Fit scaler + network on the fold's training rows, score accuracy on its validation rows."""
    network = core.MLPClassifier(**network_kwargs, random_state=fold_seed(seed, fold))
    started = time.perf_counter()
    try:
        model = ScaledNetwork.fit(network, X[train_index], y[train_index])
    except core.TrainingDivergedError as error:
        curve = np.asarray(getattr(network, "loss_curve_", []), dtype=np.float64)
        return FoldResult(fold, None, time.perf_counter() - started, curve, None, str(error))
    seconds = time.perf_counter() - started
    score = accuracy_score(
        y[valid_index], model.network.predict((X[valid_index] - model.mean) / model.scale)
    )
    curve = np.asarray(network.loss_curve_, dtype=np.float64)
    return FoldResult(fold, float(score), seconds, curve, model)


def resolve_n_jobs(n_jobs: int, folds: int) -> int:
    """-1 means all cores; more processes than folds would only idle."""
    cores = os.cpu_count() or 1
    return max(1, min(cores if n_jobs == -1 else n_jobs, folds))


def iter_fold_results(
    network_kwargs: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int,
    seed: int,
    n_jobs: int,
) -> Iterator[FoldResult]:
    """Yield each fold's :class:`FoldResult` as it finishes (stratified, shuffled, seeded folds).

    The caller must ``close()`` the returned generator when it stops early: that cancels the
    folds not yet started. Each worker process gets ``cores // n_jobs`` BLAS threads, so
    processes × threads never exceed the cores.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    tasks = (
        delayed(fit_fold)(network_kwargs, X, y, train, valid, fold, seed)
        for fold, (train, valid) in enumerate(splitter.split(X, y))
    )
    workers = resolve_n_jobs(n_jobs, folds)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with parallel_config(backend="loky", inner_max_num_threads=threads):
        parallel = Parallel(n_jobs=workers, return_as="generator_unordered")
    return parallel(tasks)

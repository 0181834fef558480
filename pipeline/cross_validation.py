"""k-fold cross-validation of one configuration, the folds fitted in parallel worker processes.

Results arrive in completion order so that the objective can report each fold to the pruner as
soon as it is known, and stop a hopeless trial by closing the generator: folds not yet started
are then never started. The processes are joblib's reusable loky pool, used through its futures
rather than ``joblib.Parallel``: closing a ``Parallel`` generator early kills and respawns the
pool (measured: ~0.8 s, and every new process imports NumPy, scikit-learn and the core again),
which made each pruned trial cost more than it saved.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib.externals.loky import get_reusable_executor
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

import core
from pipeline.fitted_model import ScaledNetwork

# Set by the multirun callback (pipeline/multirun.py) in the launching process: how many workers
# a local launcher (joblib, submitit_local) runs at once on this machine.
LOCAL_WORKERS_ENV = "MLP_SWEEP_LOCAL_WORKERS"

# Set by the sweep's process (pipeline/interruption.py); a fold worker (another pid) ignores
# Ctrl-C and leaves it to the sweep, which kills the workers. Without this, every loky worker
# that gets the terminal's SIGINT prints its own traceback.
SWEEP_PID_ENV = "MLP_SWEEP_PID"


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
    blas_threads: int | None = None,
) -> FoldResult:
    """Fit scaler + network on the fold's training rows, score accuracy on its validation rows.

    X : ndarray of shape (n_samples, n_features); y : ndarray of shape (n_samples,)
    train_index, valid_index : int arrays of row numbers. ``blas_threads`` caps this process's
    BLAS threads (in a pool process, so that processes × threads fit the cores).
    """
    ignore_interrupts_in_fold_worker()
    if blas_threads is not None:
        _limit_blas_threads(blas_threads)
    network = core.MLPClassifier(**network_kwargs, random_state=fold_seed(seed, fold))
    started = time.perf_counter()
    try:
        model = ScaledNetwork.fit(network, X[train_index], y[train_index])
    except core.TrainingDivergedError as error:
        curve = np.asarray(error.loss_curve, dtype=np.float64)
        return FoldResult(fold, None, time.perf_counter() - started, curve, None, str(error))
    seconds = time.perf_counter() - started
    score = accuracy_score(
        y[valid_index], model.network.predict((X[valid_index] - model.mean) / model.scale)
    )
    curve = np.asarray(network.loss_curve_, dtype=np.float64)
    return FoldResult(fold, float(score), seconds, curve, model)


_blas_limit: list[int] = []  # the limit already applied in this process


def _limit_blas_threads(threads: int) -> None:
    if _blas_limit != [threads]:
        threadpool_limits(limits=threads)
        _blas_limit[:] = [threads]


def worker_cores() -> int:
    """The cores this worker may use.

    Under SLURM: the job's allocation (``SLURM_CPUS_PER_TASK``, else ``SLURM_CPUS_ON_NODE``),
    not the node's size. Otherwise the CPUs this process may run on (its affinity, which
    ``taskset`` and cgroups narrow) divided by the number of workers a local multirun runs at
    once, so that N workers on one machine share its cores instead of each taking all of them.
    """
    if "SLURM_JOB_ID" in os.environ:
        for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
            value = os.environ.get(name, "")
            if value.isdigit() and int(value) > 0:
                return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    local = os.environ.get(LOCAL_WORKERS_ENV, "")
    workers = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, cores // workers)


def ignore_interrupts_in_fold_worker() -> None:
    """In a fold worker process (not the sweep's own), leave Ctrl-C to the sweep."""
    sweep_pid = os.environ.get(SWEEP_PID_ENV)
    if sweep_pid is not None and sweep_pid != str(os.getpid()):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_fold_workers() -> None:
    """Kill the reusable loky workers at once: an interrupted sweep then exits in seconds
    instead of waiting for the folds they are still fitting."""
    get_reusable_executor().shutdown(wait=False, kill_workers=True)


def resolve_n_jobs(n_jobs: int, folds: int) -> int:
    """-1 means all of this worker's cores; more processes than folds would only idle."""
    return max(1, min(worker_cores() if n_jobs == -1 else n_jobs, folds))


def blas_threads(n_jobs: int) -> int:
    """BLAS threads per fold process: the worker's cores shared by its fold processes."""
    return max(1, worker_cores() // n_jobs)


def limit_worker_threads(n_jobs: int) -> None:
    """Limit BLAS threads in this (the worker's) process for the rest of its life.

    With ``n_jobs=1`` the folds are fitted in this process, where BLAS would otherwise start
    one thread per core of the machine, whatever the worker's share.
    """
    threadpool_limits(limits=blas_threads(n_jobs))


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

    At most ``n_jobs`` folds are in the pool at once; the next is submitted when one finishes.
    So ``close()`` on the generator (a pruned trial) leaves only the folds already running,
    which finish in the background, and the pool's processes live on for the next trial. Each
    fold process gets ``worker_cores() // n_jobs`` BLAS threads. With ``n_jobs=1`` the folds
    run one after another in this process.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    tasks = [
        (network_kwargs, X, y, train, valid, fold, seed)
        for fold, (train, valid) in enumerate(splitter.split(X, y))
    ]
    workers = resolve_n_jobs(n_jobs, folds)
    if workers == 1:
        for task in tasks:
            yield fit_fold(*task)
        return
    executor = get_reusable_executor(max_workers=workers)
    threads = blas_threads(workers)
    queued = iter(tasks)
    running = {executor.submit(fit_fold, *task, threads) for task in _take(queued, workers)}
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for task in _take(queued, len(done)):
            running.add(executor.submit(fit_fold, *task, threads))
        for future in done:
            yield future.result()


def _take(iterator: Iterator, count: int) -> list:
    return [item for _, item in zip(range(count), iterator, strict=False)]

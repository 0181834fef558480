"""What runs inside a fold process: fit one fold, score it, stop early when cancelled.

Kept apart from the orchestration (pipeline.folds.scheduler) and free of scikit-learn and pandas
(the preprocessing and the metrics are NumPy's), so that a fresh pool process imports only NumPy
and the core, not scikit-learn and SciPy: the processes are ready while the sweep is still
starting.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import core
from pipeline.folds.checkpoints import Checkpoints
from pipeline.model.ensemble import FittedNetwork, ModelSpec
from pipeline.model.metrics import METRICS

# Set by the sweep's process (pipeline.folds.interruption); a fold worker (another pid) ignores
# Ctrl-C and leaves it to the sweep, which kills the workers. Without this, every loky worker
# that gets the terminal's SIGINT prints its own traceback.
SWEEP_PID_ENV = "MLP_SWEEP_PID"


@dataclass
class FoldResult:
    """One fold's outcome. ``error`` is set (and ``score`` is None) when training diverged
    (``diverged``) or failed in another way (the exception's type and message). ``pruned``
    (and ``score`` None) when its validation score missed a checkpoint's bar:
    ``(epoch, score, bar)``.

    loss_curve : ndarray of shape (n_iterations_run,)
    fit_started : the fit's start, ``time.time()`` in the fold's process (the sweep adds up the
        wall time during which some fold was fitting, pipeline.folds.fitting_time.FittingTime)
    checkpoint_scores : {epoch: validation score} at the checkpoints its training reached
    """

    fold: int
    score: float | None
    fit_seconds: float
    loss_curve: np.ndarray
    model: FittedNetwork | None
    error: str | None = None
    fit_started: float = 0.0
    diverged: bool = False
    checkpoint_scores: dict[int, float] = field(default_factory=dict)
    pruned: tuple[int, float, float] | None = None


CANCELLED = "cancelled"  # the error of a fold stopped by its cancel flag

# Iterations between two looks at the cancel flag: a stat() call is far cheaper than an epoch,
# and a cancelled fold still stops within a few epochs.
CANCEL_CHECK_EVERY = 5


class FoldCancelled(Exception):
    """Raised inside a fold's training when its trial no longer needs it (pruned, failed)."""


class FoldPruned(Exception):
    """Raised inside a fold's training when its validation score misses a checkpoint's bar."""

    def __init__(self, epoch: int, score: float, bar: float):
        super().__init__(epoch, score, bar)
        self.epoch, self.score, self.bar = epoch, score, bar


class FoldMonitor:
    """Called after every epoch of a fold's training (``FittedNetwork.fit``'s monitor): stops
    it once the file ``cancel_flag`` exists, and at the epochs of ``checkpoints`` scores the
    model as it stands on the fold's validation rows, stopping it below the bar there.

    X_valid : ndarray of shape (n_valid, n_columns), encoded; y_valid : (n_valid,)
    """

    def __init__(
        self,
        spec: ModelSpec,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        fold: int,
        checkpoints: Checkpoints | None,
        cancel_flag: str | None,
    ):
        self.spec, self.X_valid, self.y_valid, self.fold = spec, X_valid, y_valid, fold
        self.checkpoints = checkpoints or Checkpoints()
        self.epochs = frozenset(self.checkpoints.epochs)
        self.cancel_flag = cancel_flag
        self.scores: dict[int, float] = {}
        self.losses: list[float] = []  # of each epoch, for a fold stopped before its end

    def __call__(self, model: FittedNetwork, epoch: int, loss: float) -> None:
        self.losses.append(loss)
        flag = self.cancel_flag
        if flag is not None and epoch % CANCEL_CHECK_EVERY == 0 and os.path.exists(flag):
            raise FoldCancelled(flag)
        if epoch not in self.epochs:
            return
        score = validation_score(self.spec, model, self.X_valid, self.y_valid)
        if not np.isfinite(score):
            return  # judged at the end, where a score that is not finite counts as diverged
        self.scores[epoch] = score
        bar = self.checkpoints.bar_missed(self.fold, epoch, score)
        if bar is not None:
            raise FoldPruned(epoch, score, bar)


def validation_score(spec: ModelSpec, model: FittedNetwork, X: np.ndarray, y: np.ndarray) -> float:
    """``spec.metric`` of ``model`` on X (n_samples, n_columns, encoded) and y (n_samples,)."""
    with np.errstate(over="ignore", invalid="ignore"):
        output = model.predict_output(X)
        return float(METRICS[spec.metric].score(y, output, model.classes_))


def fold_seed(seed: int, fold: int) -> int:
    """Initial weights depend on the study seed and the fold only, never on the trial: trials
    are then compared under the same random draws (common random numbers)."""
    return seed * 1000 + fold


def fit_fold(
    spec: ModelSpec,
    network_kwargs: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    train_index: np.ndarray,
    valid_index: np.ndarray,
    fold: int,
    seed: int,
    checkpoints: Checkpoints | None = None,
    blas_threads: int | None = None,
    cancel_flag: str | None = None,
) -> FoldResult:
    """Fit preprocessing + network on the fold's training rows, score ``spec.metric`` on its
    validation rows.

    X : ndarray of shape (n_samples, n_columns), encoded (pipeline.data.Dataset.X);
    y : ndarray of shape (n_samples,); train_index, valid_index : int arrays of row numbers.
    ``checkpoints`` says at which epochs to score the validation rows while training, and
    the bars below which the fold stops (``pruned``). ``blas_threads`` caps this process's BLAS
    threads (in a pool process, so that processes × threads fit the cores). Training stops
    early, with ``error`` "cancelled", once the file ``cancel_flag`` exists. A score that is
    not finite (a regression whose predictions overflow) counts as diverged.
    """
    ignore_interrupts_in_fold_worker()
    if blas_threads is not None:
        _limit_blas_threads(blas_threads)
    X_valid, y_valid = X[valid_index], y[valid_index]
    monitor = FoldMonitor(spec, X_valid, y_valid, fold, checkpoints, cancel_flag)
    fit_started, started = time.time(), time.perf_counter()
    try:
        model = FittedNetwork.fit(
            spec, network_kwargs, X[train_index], y[train_index], fold_seed(seed, fold), monitor
        )
        score = validation_score(spec, model, X_valid, y_valid)
    except FoldCancelled:
        seconds = time.perf_counter() - started
        return FoldResult(fold, None, seconds, np.empty(0), None, CANCELLED, fit_started)
    except FoldPruned as stop:
        seconds = time.perf_counter() - started
        curve = np.asarray(monitor.losses, dtype=np.float64)
        return FoldResult(
            fold, None, seconds, curve, None, None, fit_started,
            checkpoint_scores=monitor.scores, pruned=(stop.epoch, stop.score, stop.bar),
        )  # fmt: skip
    except core.TrainingDivergedError as error:
        seconds = time.perf_counter() - started
        curve = np.asarray(error.loss_curve, dtype=np.float64)
        return FoldResult(fold, None, seconds, curve, None, str(error), fit_started, True)
    except Exception as error:  # MemoryError included: the trial fails, the sweep goes on
        seconds = time.perf_counter() - started
        reason = one_line_reason(error)
        return FoldResult(fold, None, seconds, np.empty(0), None, reason, fit_started)
    seconds = time.perf_counter() - started
    curve = np.asarray(model.network.loss_curve_, dtype=np.float64)
    if not np.isfinite(score):
        reason = f"the validation {spec.metric} is {score} (predictions overflow)"
        return FoldResult(fold, None, seconds, curve, None, reason, fit_started, True)
    return FoldResult(
        fold, score, seconds, curve, model, fit_started=fit_started,
        checkpoint_scores=monitor.scores,
    )  # fmt: skip


def one_line_reason(error: BaseException) -> str:
    """``TypeName: first line of the message``, for a trial's fail_reason."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


_blas_limit: list[int] = []  # the limit already applied in this process


def _limit_blas_threads(threads: int) -> None:
    if _blas_limit != [threads]:
        threadpool_limits(limits=threads)
        _blas_limit[:] = [threads]


def ignore_interrupts_in_fold_worker() -> None:
    """In a fold worker process (not the sweep's own), leave Ctrl-C to the sweep, and end with
    the sweep."""
    sweep_pid = os.environ.get(SWEEP_PID_ENV)
    if sweep_pid is not None and sweep_pid != str(os.getpid()):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        exit_with_parent()


PARENT_CHECK_SECONDS = 0.5
_watching: list[int] = []  # the parent pid this process watches, once it does


def exit_with_parent() -> None:
    """Exit this process soon after its parent (the sweep) is gone.

    A sweep killed outright (SIGKILL, the out-of-memory killer) runs no clean-up; its fold
    processes would go on fitting the folds they hold, for nothing. A daemon thread notices
    the parent's end (this process is then re-parented) and exits without clean-up: there is
    nothing of the sweep's left to write.
    """
    if _watching:
        return
    parent = os.getppid()
    _watching.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="mlp-sweep-parent-watch", daemon=True).start()


def ready() -> None:
    """Unpickling this task imports this module (and so the core) in a pool process, which
    from then on leaves Ctrl-C to the sweep, idle or not."""
    ignore_interrupts_in_fold_worker()


def refit(
    spec: ModelSpec,
    network_kwargs: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    blas_threads: int | None = None,
) -> tuple[FittedNetwork, float]:
    """Preprocessing + network trained on all of X (n_samples, n_columns, encoded), seeded like
    fold 0; with the seconds the fit took (in its own process, not counting the wait for it)."""
    ignore_interrupts_in_fold_worker()
    if blas_threads is not None:
        _limit_blas_threads(blas_threads)
    started = time.perf_counter()
    model = FittedNetwork.fit(spec, network_kwargs, X, y, fold_seed(seed, 0))
    return model, time.perf_counter() - started

"""k-fold cross-validation of one configuration, the folds fitted in parallel worker processes.

Results arrive as the folds finish (:class:`FoldScheduler`), so that the objective can report
them to the pruner as soon as it may (in fold order, see pipeline.search.objective) and stop a hopeless
trial by removing it: folds not yet started are then never started. The processes are joblib's reusable
loky pool, used through its futures rather than ``joblib.Parallel``: closing a ``Parallel``
generator early kills and respawns the pool (every new process imports its modules again),
which made each pruned trial cost more than it saved.

A fold still running when its trial is pruned would otherwise be fitted to the end and thrown
away while the next trial waits for its process: removing the trial raises a cancel flag (a file) that the
fold's training callback checks every few iterations, so the process is free for the next trial
within a few epochs. What runs inside a fold process is in pipeline.folds.worker.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.task import cv_splitter
from pipeline.folds.cancel import new_cancel_flag
from pipeline.folds.checkpoints import Checkpoints
from pipeline.folds.fitting_time import FittingTime
from pipeline.folds.pool import blas_threads, pool
from pipeline.folds.worker import CANCELLED, FoldResult, fit_fold
from pipeline.model.ensemble import ModelSpec

log = logging.getLogger(__name__)


def fold_tasks(
    spec: ModelSpec,
    network_kwargs: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int,
    seed: int,
    checkpoints: Checkpoints | None = None,
) -> list[tuple]:
    """The arguments of :func:`~pipeline.folds.worker.fit_fold` for each shuffled, seeded fold
    (stratified for a classification), in fold order."""
    splitter = cv_splitter(spec.task, folds, seed)
    return [
        (spec, network_kwargs, X, y, train, valid, fold, seed, checkpoints)
        for fold, (train, valid) in enumerate(splitter.split(X, y))
    ]


FOLD_OF_TASK = 6  # the fold's index in a task of fold_tasks


class FoldScheduler:
    """The pool's processes shared by the trials in flight: at most ``workers`` folds run at
    once, and a free process takes the next fold of the oldest trial that still has one.

    So a second trial's folds only fill processes the first would leave idle (the tail of its
    last fold), and never delay it. Owners are any hashable objects (the trials' evaluations);
    their priority is the order in which they were added. With ``workers == 1`` there is no
    pool: :meth:`wait` fits the oldest owner's next fold in this process.

    A process that finishes a fold gets the next one at once, from the pool's result thread
    (a callback of the fold's future), not when the driver next calls :meth:`wait`: the driver
    is often busy elsewhere meanwhile (telling Optuna, asking the next trial, opening its
    MLflow run, waiting for the tracking store to start), and the processes should not idle
    for it. Only which folds start, never the order of results the driver sees, depends on it.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._executor = pool(workers) if workers > 1 else None
        self._threads = blas_threads(workers)
        self._queues: dict[Any, list[tuple]] = {}  # owner -> folds not started, in fold order
        self._flags: dict[Any, str] = {}
        self._running: dict[Future, Any] = {}
        self._discarded: list[Future] = []  # folds of removed owners still running
        self._fitting = FittingTime()  # every returned fold's fit span, discarded ones too
        # Guards the queues, flags and running folds, which the pool's result thread changes
        # too (_on_fold_done). Reentrant: a callback added to a future that is already done
        # runs at once, in the thread that holds the lock.
        self._lock = threading.RLock()

    def add(self, owner, tasks: list[tuple]) -> None:
        """Queue ``owner``'s folds behind those of the owners added before it; start what fits."""
        with self._lock:
            self._queues[owner] = list(tasks)
            self._flags[owner] = new_cancel_flag()
            self._fill()

    def remove(self, owner) -> None:
        """Start no more of ``owner``'s folds; its running ones stop at their next look at the
        cancel flag (their results, which come back at once, are dropped)."""
        with self._lock:
            self._queues.pop(owner, None)
            flag = self._flags.pop(owner, None)
            running = [future for future, o in self._running.items() if o is owner]
            if running and flag is not None:
                # Its folder is recreated if another sweep took this one for dead and removed it.
                Path(flag).parent.mkdir(parents=True, exist_ok=True)
                Path(flag).touch()
            for future in running:
                del self._running[future]
            self._discarded += running
            self._fill()
        self._count_discarded()

    def fitting_time(self, timeout: float = 30.0) -> FittingTime:
        """The fit spans of every fold handed over or discarded, and the seconds of fitting
        thrown away: the folds that were running when their owner was removed (cut short, or
        finished but not collected), as timed in their processes.

        Waits up to ``timeout`` for those; a cut-short fold returns within a few epochs. What
        pruning costs besides the folds it saves (see benchmarks/bench_sweep.py).
        """
        if self._discarded:
            wait(self._discarded, timeout=timeout)
        self._count_discarded()
        return self._fitting

    def _count_discarded(self) -> None:
        """Count the discarded folds that have returned and forget them (a long sweep prunes
        thousands of trials; their results need not stay in memory)."""
        pending = []
        for future in self._discarded:
            if not future.done():
                pending.append(future)
            elif not future.cancelled() and future.exception() is None:
                self._fitting.add(future.result(), discarded=True)
        self._discarded = pending

    def wait(self) -> list[tuple[Any, FoldResult]]:
        """The folds that finished next, as (owner, result); [] when nothing is queued or running."""
        if self._executor is None:
            owner = next((o for o, queue in self._queues.items() if queue), None)
            finished = []
            if owner is not None:
                result = fit_fold(*self._queues[owner].pop(0))
                self._drop_folds_after(owner, result)
                finished.append((owner, result))
        else:
            with self._lock:
                self._fill()
                running = list(self._running)
            if not running:
                return []
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            with self._lock:
                finished = [(self._running.pop(future), future.result()) for future in done]
        for _, result in finished:
            self._fitting.add(result)
        return finished

    def _drop_folds_after(self, owner, result: FoldResult) -> None:
        """Queue none of ``owner``'s folds after ``result``'s if that fold stopped its trial."""
        if result.score is None and result.error != CANCELLED and owner in self._queues:
            queue = self._queues[owner]
            queue[:] = [task for task in queue if task[FOLD_OF_TASK] < result.fold]

    def _fill(self) -> None:
        """Start folds on the free processes (the caller holds the lock). A finished fold frees
        its process at once, even before :meth:`wait` hands its result over."""
        if self._executor is None:
            return
        while sum(not future.done() for future in self._running) < self.workers:
            owner = next((o for o, queue in self._queues.items() if queue), None)
            if owner is None:
                return
            task = self._queues[owner].pop(0)
            future = self._executor.submit(fit_fold, *task, self._threads, self._flags[owner])
            self._running[future] = owner
            future.add_done_callback(self._on_fold_done)

    def _on_fold_done(self, future: Future) -> None:
        """In the pool's result thread: give the freed process its next fold.

        A fold that stopped its trial (pruned at a checkpoint, diverged, failed) ends that
        trial whatever the folds after it would give, so those are not started; the folds
        before it still are, as the trial is judged in fold order (pipeline.search.objective).
        """
        try:
            with self._lock:
                owner = self._running.get(future)
                if owner is not None and not future.cancelled() and future.exception() is None:
                    self._drop_folds_after(owner, future.result())
                self._fill()
        except Exception:  # a pool shut down or broken: the driver learns it from the futures
            log.debug("no next fold started after a fold ended", exc_info=True)

"""The pool of fold processes: how many, how many BLAS threads each, starting and stopping it.

joblib's reusable loky pool, shared by every use in one sweep (the trials' folds, the champion's
refit). Free of scikit-learn, like the fold processes themselves (pipeline.folds.worker), so that
the sweep can start the pool as its first act, before its own heavy imports: the processes then
start and import NumPy and the core on a core the sweep's process leaves idle meanwhile.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_limits

from pipeline.folds.worker import SWEEP_PID_ENV, ready

# Set by the multirun callback (pipeline/multirun.py) in the launching process: how many workers
# a local launcher (joblib, submitit_local) runs at once on this machine.
LOCAL_WORKERS_ENV = "MLP_SWEEP_LOCAL_WORKERS"


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
    local = os.environ.get(LOCAL_WORKERS_ENV, "")
    workers = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, machine_cores() // workers)


def machine_cores() -> int:
    """The CPUs this process may run on: its affinity, which ``taskset`` and cgroups narrow."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def start_fold_workers(n_jobs: int, folds: int) -> None:
    """Start the pool's processes now, without waiting for them.

    A fresh process takes a moment to start and import NumPy and the core; started while the
    sweep still loads its data and opens its stores, the processes are ready when the first folds come.
    """
    workers = resolve_n_jobs(n_jobs, folds)
    if workers > 1:
        executor = pool(workers)
        for _ in range(workers - 1):  # one each (pool() gave one already): all import now
            executor.submit(ready)


def pool(workers: int):
    """The reusable loky pool of ``workers`` processes, started if need be so that its
    processes leave Ctrl-C to this one: whichever use starts it (the early start, the folds,
    the champion's refit), they ignore SIGINT from their first instant and inherit this
    process's pid (pipeline.folds.worker.ignore_interrupts_in_fold_worker, run by every task).

    loky starts the processes at the first task, so a no-op task is given inside the block.
    """
    os.environ[SWEEP_PID_ENV] = str(os.getpid())
    with children_ignore_sigint():
        executor = get_reusable_executor(max_workers=workers)
        executor.submit(ready)
    _started.add(workers)
    return executor


_started: set[int] = set()  # the pool sizes pool() has started in this process


@contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Processes started inside start with SIGINT ignored, idle or not.

    The terminal's Ctrl-C reaches every process of the group; the sweep handles it and stops
    the pool (pipeline.folds.interruption). An ignored signal stays ignored across exec, and Python
    then installs no handler of its own, so a pool process never dies of it with a traceback,
    even before its first task. Only the main thread may change signal handlers: elsewhere this
    does nothing. The sweep itself ignores Ctrl-C for the milliseconds the processes take to
    start.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_in_pool(processes: int, function, *args) -> Future:
    """``function(*args, blas_threads)`` in one of the pool's ``processes`` (started by the folds),
    or in this process, already done, when there is no pool (``processes`` == 1)."""
    if processes > 1:
        # The folds started the pool: take it as it is. pool() ignores Ctrl-C for the moment it
        # takes, so that new processes start ignoring it, and a Ctrl-C in that moment (the
        # champion's refit starts right after the last trial) was lost.
        if processes in _started:
            executor = get_reusable_executor(max_workers=processes)
        else:
            executor = pool(processes)
        return executor.submit(function, *args, blas_threads(processes))
    future: Future = Future()
    try:
        future.set_result(function(*args, None))
    except Exception as error:
        future.set_exception(error)
    return future


def stop_fold_workers() -> None:
    """Kill the reusable loky workers at once: an interrupted sweep then exits in seconds
    instead of waiting for the folds they are still fitting."""
    get_reusable_executor().shutdown(wait=False, kill_workers=True)
    _started.clear()


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

"""Who writes the trials' MLflow runs while the sweep goes on: a thread, or a process of its own.

Each trial's run is created as the trial starts and closed (its model, parameters, metrics and
state) as it ends, in the order given, so that neither holds the trial loop up; a write that
raises is raised in the sweep's thread by the next call or by ``flush``, and the writes after it
are dropped (they may depend on it). The runs that a killed sweep leaves RUNNING are closed by
its next start (pipeline.tracking.lost_runs).

MLflow's client spends milliseconds of Python per call to its store. On the sweep's tracking
thread (:class:`RunWriter`) those hold the interpreter lock that the trial loop needs; a process
(:class:`ProcessRunWriter`) takes them to another core, for the price of starting a Python that
imports MLflow. :func:`choose_run_writer` says which one a sweep uses (``tracking.writer``);
docs/benchmarks.md#scale has the figures.
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

from joblib.externals.loky import ProcessPoolExecutor

from pipeline.errors import is_disk_full
from pipeline.folds.pool import children_ignore_sigint
from pipeline.redaction import redact
from pipeline.tracking.background import BackgroundLog

MAX_PENDING = 256  # writes queued for the process before the sweep waits for the oldest


def choose_run_writer(setting: str, large_study: bool, cores: int) -> str:
    """``"thread"`` or ``"process"`` for ``tracking.writer=setting`` (one of
    :data:`pipeline.config.settings.WRITERS`) on a worker with ``cores`` cores. ``auto`` takes a
    process for a large study (pipeline.config.settings.large_study) on 2 cores or more: in a
    smaller one its start (a Python importing MLflow, seconds of a core) outweighs what it saves
    per trial."""
    if setting != "auto":
        return setting
    return "process" if cores > 1 and large_study else "thread"


class RunWriter:
    """Trial runs written on the ``background`` log's thread
    (:class:`~pipeline.tracking.background.BackgroundLog`)."""

    def __init__(self, background: BackgroundLog):
        self.background = background

    def open(self, run) -> None:
        """Create ``run`` (a :class:`~pipeline.tracking.runs.TrialRun`) on the thread."""
        self.background.submit(run.open)

    def close(self, run, model: tuple | None, closing: dict[str, Any]) -> None:
        """Log ``model`` and close ``run`` with ``closing`` on the thread (TrialRun.finish)."""
        self.background.submit(partial(run.finish, model, closing))

    def flush(self, raise_error: bool = True) -> None:
        """Wait until every write has run; then raise the first error (or drop it)."""
        self.background.flush(raise_error)

    def shutdown(self) -> None:
        """Nothing to stop: the thread is the sweep's tracking thread."""


class ProcessRunWriter:
    """Trial runs written by one process with its own MLflow client of ``tracking_uri``.

    The process is started at once (it imports MLflow during the sweep's start-up) with SIGINT
    and SIGTERM ignored: Ctrl-C and a scheduler's TERM reach the sweep, which stops at a safe
    point and waits here for its runs to be written. It writes nothing to the terminal (its
    errors come back through the futures) and ends within a moment of the sweep's death, so a
    killed sweep leaves no process holding its output pipes.
    """

    def __init__(self, tracking_uri: str):
        self._pending: deque[Future] = deque()
        self._error: BaseException | None = None
        # loky's executor, not the standard library's: a "spawn" process of the latter imports
        # the caller's main script again, and so runs a script that calls pipeline.sweep.run
        # without an ``if __name__ == "__main__"`` guard a second time (and dies of it).
        with children_ignore_sigint():  # from the process's first instant
            self._executor = ProcessPoolExecutor(
                max_workers=1, initializer=start_writer, initargs=(tracking_uri, os.getpid())
            )
            # the process starts at the first task: this one, given now
            self._started = self._executor.submit(writer_ready)

    def pid(self) -> int:
        """The writer process's id, once it has started."""
        return self._started.result()

    def open(self, run) -> None:
        """Create ``run`` (a :class:`~pipeline.tracking.runs.TrialRun`, sent without its
        client) in the process, which keeps it until it is closed."""
        self._submit(open_in_writer, run)

    def close(self, run, model: tuple | None, closing: dict[str, Any]) -> None:
        """Log ``model`` and close ``run`` with ``closing`` in the process (TrialRun.finish)."""
        self._submit(close_in_writer, run.name, model, closing)

    def flush(self, raise_error: bool = True) -> None:
        """Wait until every write has run; then raise the first error (or drop it)."""
        while self._pending:
            self._settle(self._pending.popleft())
        error, self._error = self._error, None
        if error is not None:
            self._resume()
            if raise_error:
                raise error

    def shutdown(self) -> None:
        """Stop the process once its writes are done (call :meth:`flush` first to see errors)."""
        self._executor.shutdown(wait=True)

    def _submit(self, function, *args) -> None:
        while self._pending and (self._pending[0].done() or len(self._pending) >= MAX_PENDING):
            self._settle(self._pending.popleft())
        if self._error is not None:
            error, self._error = self._error, None
            self._resume()
            raise error
        self._pending.append(self._executor.submit(function, *args))

    def _resume(self) -> None:
        """Have the process accept writes again after the error just raised (in order: before
        any later write). A process that died accepts nothing: the next write raises that."""
        try:
            self._executor.submit(resume_writer)
        except BrokenProcessPool:
            pass

    def _settle(self, future: Future) -> None:
        """Wait for ``future``; keep its error if it is the first."""
        error = future.exception()
        if error is not None and self._error is None:
            self._error = error


# What follows runs in the writer's process.

_writer: dict[str, Any] = {"uri": None, "client": None, "runs": {}, "failed": False}


def start_writer(tracking_uri: str, sweep_pid: int) -> None:
    """The process's initializer: quiet, deaf to Ctrl-C and TERM, gone when the sweep is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    threading.Thread(target=_exit_with, args=(sweep_pid,), daemon=True).start()
    # MLflow is imported now, during the sweep's start-up; the store is connected at the first
    # run, once the sweep has provided it (a new SQLite file is a copy of a template,
    # pipeline.tracking.template, which a client opening it first would race).
    import mlflow.tracking  # noqa: F401

    _writer["uri"] = tracking_uri


def _exit_with(sweep_pid: int) -> None:
    """End this process once the sweep's has ended (it is then no longer the parent)."""
    while os.getppid() == sweep_pid:
        time.sleep(0.2)
    os._exit(0)


def writer_ready() -> int:
    """A first task, so that the process starts and imports MLflow now; its pid."""
    return os.getpid()


def open_in_writer(run) -> None:
    def create() -> None:
        if _writer["client"] is None:
            from mlflow.tracking import MlflowClient

            _writer["client"] = MlflowClient(tracking_uri=_writer["uri"])
        run.client = _writer["client"]
        run.open()
        _writer["runs"][run.name] = run

    write_in_writer(create)


def close_in_writer(name: str, model: tuple | None, closing: dict[str, Any]) -> None:
    write_in_writer(lambda: _writer["runs"].pop(name).finish(model, closing))


def resume_writer() -> None:
    _writer["failed"] = False


def write_in_writer(function) -> None:
    """``function()``, unless an earlier write failed; its error made fit to cross to the
    sweep's process (a full disk as ENOSPC, which the sweep reports in one line)."""
    if _writer["failed"]:
        return
    try:
        function()
    except Exception as error:
        _writer["failed"] = True
        if is_disk_full(error):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:
            raise RuntimeError(redact(f"{type(error).__name__}: {error}")) from None
        raise

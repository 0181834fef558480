"""Tracking calls on a background thread, in order, so that they overlap the next trial's folds.

Logging a finished trial (fold metrics, learning curve, its model, closing its run) would
otherwise leave the fold processes idle. The sweep hands that work to
one thread here and goes on with the next trial; the thread runs the calls in the order given.

Its consequence, handled by ``pipeline.tracking.lost_runs.close_lost_runs``: a process killed (SIGKILL, node
lost) in the instant between a trial's end in Optuna and the end of its logging leaves that
trial's run RUNNING; the next start finds it by the trial's owner pid and closes it from what
the study recorded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future


class BackgroundLog:
    """A queue of calls run one after another by one daemon thread.

    The first call that raises stops the queue (later calls are dropped, since they may depend
    on it) and its exception is raised in the caller's thread by the next :meth:`submit` or
    :meth:`flush`.
    """

    def __init__(self, name: str = "mlp-sweep-tracking"):
        self._calls: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, function: Callable[[], object]) -> None:
        """Queue ``function()``; raises the error of an earlier call if there was one."""
        self._raise_error()
        self._calls.put(function)

    def flush(self, raise_error: bool = True) -> None:
        """Wait until every queued call has run; then raise the first error, or drop it
        (``raise_error=False``, when another exception is already on its way)."""
        self._calls.join()
        if raise_error:
            self._raise_error()
        self._error = None

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            function = self._calls.get()
            try:
                if self._error is None:
                    function()
            except BaseException as error:  # handed to the sweep's thread, not lost here
                self._error = error
            finally:
                self._calls.task_done()


def run_in_thread(function: Callable[[], object], name: str = "mlp-sweep-setup") -> Future:
    """``function()`` on a new daemon thread; its result (or exception) in the returned future.

    A daemon thread, unlike a ``ThreadPoolExecutor``'s, never holds the interpreter's exit up
    (a tracking server that does not answer, say).
    """
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function())
        except BaseException as error:  # handed to whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future

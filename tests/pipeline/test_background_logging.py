"""The background queue that lets a trial's MLflow logging overlap the next trial's folds."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.tracking.background import BackgroundLog


def test_calls_run_in_order_on_another_thread_and_flush_waits_for_them():
    log, seen = BackgroundLog(), []
    main = threading.get_ident()
    for index in range(20):
        log.submit(lambda i=index: (time.sleep(0.005), seen.append((i, threading.get_ident()))))
    log.flush()
    assert [i for i, _ in seen] == list(range(20))
    assert {thread for _, thread in seen} != {main}


def test_submit_returns_before_the_call_has_run():
    log, started = BackgroundLog(), threading.Event()
    release = threading.Event()
    log.submit(lambda: (started.set(), release.wait(5)))
    assert started.wait(5)  # running on the thread while this one goes on
    release.set()
    log.flush()


def test_an_error_is_raised_in_the_callers_thread_and_later_calls_are_dropped():
    log, seen = BackgroundLog(), []

    def fail():
        raise RuntimeError("store unreachable")

    log.submit(fail)
    log.submit(lambda: seen.append("after"))  # may depend on the failed call: not run
    with pytest.raises(RuntimeError, match="store unreachable"):
        log.flush()
    assert seen == []
    log.submit(lambda: seen.append("next"))  # the queue works again once the error is out
    log.flush()
    assert seen == ["next"]


def test_flush_without_raising_still_waits():
    log, seen = BackgroundLog(), []
    log.submit(lambda: 1 / 0)
    log.flush(raise_error=False)
    log.submit(lambda: seen.append(1))
    log.flush()
    assert seen == [1]

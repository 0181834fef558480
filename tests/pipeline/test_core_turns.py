"""Turns on the cores (pipeline.search.core_turns), with real processes and real locks."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from pipeline.folds.processes import remove_folders_of_gone_processes
from pipeline.search.core_turns import (
    CORE_TURNS_ENV,
    TURNS_FOLDER_PREFIX,
    core_turn,
    provide_core_turns,
)


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(CORE_TURNS_ENV, raising=False)
    yield
    os.environ.pop(CORE_TURNS_ENV, None)


def hold_turn(worker: int, seconds: float, log: str) -> None:
    """In a child process: take ``worker``'s turn, and write when it held it."""
    with core_turn(worker, "a study"):
        Path(f"{log}.held-{worker}").touch()
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    with open(log, "a") as file:
        file.write(f"{worker} {start} {end}\n")


def held_spans(log: Path) -> list[tuple[int, float, float]]:
    rows = [line.split() for line in log.read_text().splitlines()]
    return sorted((int(w), float(s), float(e)) for w, s, e in rows)


def run_workers(workers: list[int], seconds: float, log: Path) -> None:
    context = multiprocessing.get_context("spawn")  # as a launcher's fresh workers
    processes = [context.Process(target=hold_turn, args=(w, seconds, str(log))) for w in workers]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0


def overlapping(spans: list[tuple[int, float, float]]) -> list[tuple[int, int]]:
    return [
        (a[0], b[0])
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[1] < b[2] and b[1] < a[2]
    ]


def test_no_turns_when_the_workers_fit_the_cores(clean_env):
    provide_core_turns(workers_at_once=2, cores=2)
    assert CORE_TURNS_ENV not in os.environ
    with core_turn(5, "a study") as turn:  # no turns: nothing to wait for, nothing to mark
        turn.mark_study_over()
        assert not turn.study_over


def test_workers_sharing_a_turn_never_run_together(clean_env, tmp_path):
    provide_core_turns(workers_at_once=16, cores=3)  # worker 0, and 2 turns for the others
    folder, turns = os.environ[CORE_TURNS_ENV].rsplit(":", 1)
    assert turns == "2" and Path(folder).is_dir()
    log = tmp_path / "spans"
    run_workers([1, 3, 5, 2, 4], seconds=0.3, log=log)  # turn 0: workers 1, 3, 5; turn 1: 2, 4
    spans = held_spans(log)
    first, second = [s for s in spans if s[0] % 2 == 1], [s for s in spans if s[0] % 2 == 0]
    assert len(first) == 3 and len(second) == 2
    assert overlapping(first) == [] and overlapping(second) == []
    # The two turns do run at the same time: workers wait for their own turn only.
    assert overlapping(spans), "the second turn was never used alongside the first"


def start_holder(worker: int, folder: Path) -> multiprocessing.Process:
    """A worker that takes its turn and keeps it, once it holds it."""
    holder = multiprocessing.get_context("spawn").Process(
        target=hold_turn, args=(worker, 600.0, str(folder / "holder"))
    )
    holder.start()
    deadline = time.monotonic() + 60
    while not (folder / f"holder.held-{worker}").exists():
        assert time.monotonic() < deadline and holder.is_alive()
        time.sleep(0.05)
    return holder


def test_the_leader_never_waits_for_a_turn(clean_env, tmp_path):
    provide_core_turns(workers_at_once=16, cores=2)  # one turn, for every worker but 0
    holder = start_holder(1, tmp_path)
    try:
        log = tmp_path / "spans"
        run_workers([0], seconds=0.1, log=log)  # while worker 1 holds the only turn
        assert [w for w, _, _ in held_spans(log)] == [0]
        assert holder.is_alive()
    finally:
        holder.kill()
        holder.join()


def test_a_killed_worker_gives_its_turn_back(clean_env, tmp_path):
    provide_core_turns(workers_at_once=8, cores=2)  # one turn for workers 1 to 7
    holder = start_holder(1, tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=30)
    log = tmp_path / "spans"
    run_workers([2], seconds=0.1, log=log)  # waits for the turn the killed worker held
    assert [w for w, _, _ in held_spans(log)] == [2]


def test_a_worker_whose_turn_comes_after_its_study_ended_is_told(clean_env):
    provide_core_turns(workers_at_once=8, cores=2)
    with core_turn(0, "study a") as leader:
        assert not leader.study_over
    with core_turn(1, "study a") as turn:
        assert not turn.study_over
        turn.mark_study_over()
    with core_turn(2, "study a") as later, core_turn(0, "study b") as other:
        assert later.study_over
        assert not other.study_over  # another study of the same multirun


def test_folders_of_dead_launchers_are_removed(tmp_path):
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    stale = tmp_path / f"{TURNS_FOLDER_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{TURNS_FOLDER_PREFIX}{os.getpid()}-abc"
    stale.mkdir()
    live.mkdir()
    remove_folders_of_gone_processes(str(tmp_path), TURNS_FOLDER_PREFIX)
    assert not stale.exists() and live.exists()

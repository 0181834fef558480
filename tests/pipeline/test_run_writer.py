"""The trials' runs written on the tracking thread or by a writer process
(pipeline.tracking.run_writer), on a real MLflow SQLite store, found again by their tags."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.config.settings import LARGE_STUDY_TRIALS, large_study
from pipeline.folds.processes import process_alive
from pipeline.tracking.background import BackgroundLog
from pipeline.tracking.run_writer import (
    ProcessRunWriter,
    RunWriter,
    choose_run_writer,
    resume_writer,
    write_in_writer,
)
from pipeline.tracking.runs import TrialRun, trial_run_ids
from pipeline.tracking.store import connect


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = connect(uri, str(tmp_path / "artifacts"), "writer")
    parent = client.create_run(experiment_id).info.run_id
    return uri, client, experiment_id, parent


@pytest.fixture(params=["thread", "process"])
def writer(request, store):
    made = RunWriter(BackgroundLog()) if request.param == "thread" else ProcessRunWriter(store[0])
    yield made
    made.shutdown()


def closing(number: int) -> dict:
    return {
        "state": "COMPLETE",
        "reason": None,
        "metric": "accuracy",
        "scores": {0: 0.5 + number / 100, 1: 0.6},
        "fit_seconds": 0.1,
        "loss_curve": np.array([1.0, 0.5]),
        "trial_seconds": 0.2,
        "validation_curve": {10: 0.55},
        "params": {"learning_rate": 0.01 * (number + 1), "hidden_units": 8},
    }


def write_trials(writer: RunWriter, client, experiment_id, parent, numbers) -> None:
    for number in numbers:
        run = TrialRun(client, experiment_id, parent, "study", number)
        writer.open(run)
        writer.close(run, None, closing(number))


def test_each_trial_run_is_written_whole_under_its_parent(store, writer):
    _, client, experiment_id, parent = store
    write_trials(writer, client, experiment_id, parent, range(5))
    writer.flush()
    runs = trial_run_ids(client, experiment_id, parent)
    assert sorted(runs) == list(range(5))
    for number, run_id in runs.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"trial-{number}"
        assert float(run.data.params["learning_rate"]) == pytest.approx(0.01 * (number + 1))
        assert run.data.metrics["fold_0_accuracy"] == pytest.approx(0.5 + number / 100)
        assert run.data.tags["mlp_sweep.pid"] == str(os.getpid())
    assert trial_run_ids(client, experiment_id, parent, number=3) == {3: runs[3]}
    assert trial_run_ids(client, experiment_id, parent, running=True) == {}


def test_a_failed_write_is_raised_in_the_sweep_by_the_flush_and_the_writer_goes_on(store, writer):
    _, client, experiment_id, parent = store
    run = TrialRun(client, "12345", parent, "study", 0)  # an experiment the store lacks
    writer.open(run)
    writer.close(run, None, closing(0))  # dropped: it depends on the write that failed
    with pytest.raises(Exception, match="No Experiment with id=12345"):
        writer.flush()
    write_trials(writer, client, experiment_id, parent, [1])
    writer.flush()
    assert list(trial_run_ids(client, experiment_id, parent)) == [1]


def test_the_process_reports_a_full_disk_as_no_space_left():
    def full() -> None:
        raise RuntimeError("(sqlite3.OperationalError) database or disk is full")

    try:
        with pytest.raises(OSError) as raised:
            write_in_writer(full)
        assert raised.value.errno == errno.ENOSPC
    finally:
        resume_writer()  # this process's writer state, which the call above marked failed


def test_auto_takes_a_process_for_a_large_study_on_two_cores_or_more():
    assert choose_run_writer("auto", large_study=True, cores=2) == "process"
    assert choose_run_writer("auto", large_study=False, cores=2) == "thread"
    assert choose_run_writer("auto", large_study=True, cores=1) == "thread"
    assert choose_run_writer("process", large_study=False, cores=1) == "process"
    assert choose_run_writer("thread", large_study=True, cores=8) == "thread"


def test_a_study_is_large_from_its_budget():
    settings = OmegaConf.create({"study": {"n_trials": LARGE_STUDY_TRIALS}})
    assert large_study(settings)
    settings.study.n_trials -= 1
    assert not large_study(settings)


KILLED_SWEEP = """
import os, signal, sys, time
from pipeline.folds.processes import process_alive
from pipeline.tracking.run_writer import ProcessRunWriter
from pipeline.tracking.runs import TrialRun
from pipeline.tracking.store import connect

uri, parent = sys.argv[1:]
client, experiment_id = connect(uri, "unused", "writer")
writer = ProcessRunWriter(uri)
pid = writer.pid()
os.killpg(0, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
time.sleep(0.5)
writer.open(TrialRun(client, experiment_id, parent, "study", 7))
writer.flush()
print(pid, process_alive(pid), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_writer_process_outlives_ctrl_c_but_not_its_sweep(store):
    """Ctrl-C is the sweep's to handle; a killed sweep's writer ends at once and lets go of the
    sweep's output pipes, so that whoever reads them (a terminal, a test, SLURM) sees their end."""
    uri, client, experiment_id, parent = store
    started = time.monotonic()
    sweep = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_SWEEP), uri, parent],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # the sweep's handler
    )
    assert sweep.returncode == -signal.SIGKILL, sweep.stderr
    pid, alive = sweep.stdout.split()
    assert alive == "True"  # after Ctrl-C
    assert list(trial_run_ids(client, experiment_id, parent, running=True)) == [7]
    deadline = time.monotonic() + 5
    while process_alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(int(pid)), "the writer outlived its sweep"
    assert time.monotonic() - started < 30  # the pipes' end came with the sweep's death


def test_a_dead_writer_process_is_an_error_in_the_sweep_not_a_hang(store):
    uri, client, experiment_id, parent = store
    writer = ProcessRunWriter(uri)
    try:
        os.kill(writer.pid(), signal.SIGKILL)  # the kernel's OOM killer, say
        with pytest.raises(BrokenProcessPool):
            write_trials(writer, client, experiment_id, parent, range(3))
            writer.flush()
        writer.flush(raise_error=False)
    finally:
        writer.shutdown()


def test_a_script_without_a_main_guard_can_write_through_the_process(store, tmp_path):
    """A spawned process of the standard library's executor imports the caller's main script
    again: a script calling pipeline.sweep.run at its top level would run twice (and die)."""
    uri, client, experiment_id, parent = store
    script = tmp_path / "sweep_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pipeline.tracking.run_writer import ProcessRunWriter
            from pipeline.tracking.runs import TrialRun
            from pipeline.tracking.store import connect

            client, experiment_id = connect({uri!r}, "unused", "writer")
            writer = ProcessRunWriter({uri!r})
            writer.open(TrialRun(client, experiment_id, {parent!r}, "study", 3))
            writer.flush()
            writer.shutdown()
            print("written")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["written"]  # once: the script did not run again
    assert list(trial_run_ids(client, experiment_id, parent)) == [3]

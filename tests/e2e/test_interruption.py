"""A sweep stopped by Ctrl-C or killed outright loses no finished work and resumes to its budget.

Faults are injected for real into `python -m pipeline.sweep` subprocesses: SIGINT to the whole
process group (what a terminal's Ctrl-C does, so the loky fold workers get it too) and SIGKILL of
a single-process sweep. The journal file and the MLflow SQLite store are polled while it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from pipeline.names import FAIL_REASON, RETRY_OF
from pipeline.search.budget import budget_used
from pipeline.search.recovery import INTERRUPTED

pytestmark = pytest.mark.slow

STUDY = "moons-mlp"
N_TRIALS = 4
# Trials of about a second each, so that the signal lands while one runs.
ARGS = [
    # Folds of about a second, so that the signal lands while the sweep waits for them (iris
    # folds took ~0.1 s once the core got fast, and Ctrl-C then met the bookkeeping instead).
    "dataset=moons",
    "dataset.n_samples=3000",
    f"study.n_trials={N_TRIALS}",
    "cv.folds=3",
    "search_space.iterations.low=800",
    "search_space.iterations.high=1000",
    "search_space.hidden_units.low=32",
    "search_space.hidden_units.high=64",
    "search_space.hidden_layers.low=2",
    "search_space.hidden_layers.high=2",
    "search_space.learning_rate.high=0.01",
    "model.dtype=float64",
    "model.batch_size=null",  # full batches for every iteration: trials that last seconds
    "model.n_iter_no_change=null",
    "pruner=none",
    "tracking.log_trial_models=false",
    "progress_bar=false",
]


def start(folder, args: list[str]) -> subprocess.Popen:
    """The sweep in its own session, so that a signal can go to its whole process group, with
    Ctrl-C as a terminal gives it: a suite started in the background of a shell without job
    control inherits SIGINT ignored, which the sweep would keep after its trials."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.sweep", *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def load_study(folder) -> optuna.Study | None:
    path = folder / "mlruns" / "optuna.journal"
    if not path.exists():
        return None
    try:
        return optuna.load_study(
            study_name=STUDY, storage=JournalStorage(JournalFileBackend(str(path)))
        )
    except KeyError:
        return None


def wait_until_a_trial_runs_after(folder, complete: int, process, timeout: float = 240) -> None:
    """Poll the journal until ``complete`` trials are done and the next one has reported a fold
    (then the sweep is waiting for its other folds: the moment a Ctrl-C interrupts a trial)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        study = load_study(folder)
        if study is not None:
            trials = study.get_trials(deepcopy=False)
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if len(done) >= complete and any(t.intermediate_values for t in running):
                return
        time.sleep(0.2)
    process.kill()
    pytest.fail("the sweep never reached the state to interrupt")


def runs(folder) -> tuple[list, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlp-sweep")
    found = client.search_runs([experiment.experiment_id])
    parents = [r for r in found if r.data.tags["mlp_sweep.role"] == "study"]
    children = [r for r in found if r.data.tags["mlp_sweep.role"] == "trial"]
    return parents, children


def run_of(children, trial) -> object:
    return next(r for r in children if r.data.tags["optuna.trial_number"] == str(trial.number))


def rerun_completes_the_budget(folder) -> optuna.Study:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.sweep", *ARGS],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(folder)
    trials = study.get_trials(deepcopy=False)
    assert budget_used(study) == N_TRIALS
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    parents, children = runs(folder)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [r for r in children if r.info.status == "RUNNING"]
    assert len(children) == len(trials)
    return study


def test_ctrl_c_keeps_finished_trials_and_resumes(tmp_path):
    process = start(tmp_path, ARGS)
    wait_until_a_trial_runs_after(tmp_path, 2, process)
    finished_before = {
        t.number: t.value for t in load_study(tmp_path).get_trials(states=(TrialState.COMPLETE,))
    }
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the sweep did not exit after SIGINT")
    assert process.returncode == 130, stderr[-3000:]
    # MLflow's INFO lines about creating its database come at the start, not from the signal.
    lines = [line for line in stderr.strip().splitlines() if " INFO mlflow." not in line]
    assert lines == ["interrupted: finished trials are kept; rerun the same command to resume"], (
        stderr[-3000:]
    )

    study = load_study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    kept = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    assert finished_before.items() <= kept.items()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # The trial running and, with two trials in flight (study.trials_in_flight=2), the next one.
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert 1 <= len(interrupted) <= 2
    assert all(t.user_attrs[FAIL_REASON] == INTERRUPTED for t in interrupted)
    waiting = {t.user_attrs[RETRY_OF]: t for t in trials if t.state == TrialState.WAITING}
    assert sorted(waiting) == [t.number for t in interrupted]
    for trial in interrupted:
        assert waiting[trial.number].system_attrs["fixed_params"] == trial.params

    parents, children = runs(tmp_path)
    assert [p.info.status for p in parents] == ["KILLED"]
    for trial in interrupted:
        killed = run_of(children, trial)
        assert killed.info.status == "KILLED"
        assert killed.info.run_name == f"trial-{trial.number} (interrupted)"  # not "(pruned)"
        assert killed.data.tags["optuna.fail_reason"] == INTERRUPTED
    assert not [r for r in children if r.info.status == "RUNNING"]

    study = rerun_completes_the_budget(tmp_path)
    for trial in interrupted:
        retried = [t for t in study.trials if t.user_attrs.get(RETRY_OF) == trial.number]
        assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE


def test_sigkill_leaves_a_stale_trial_that_the_next_run_recovers(tmp_path):
    """With the tracking thread (a study this small). The writer process of a large study ends
    with a killed sweep (tests/e2e/test_reliability.py, the sweep's processes) and leaves Ctrl-C
    to the sweep (tests/pipeline/test_run_writer.py)."""
    args = [*ARGS, "cv.n_jobs=1"]  # one fold process: none orphaned by SIGKILL
    process = start(tmp_path, args)
    wait_until_a_trial_runs_after(tmp_path, 1, process)
    process.kill()
    process.communicate(timeout=10)  # the output pipes end with the sweep: no process holds them
    study = load_study(tmp_path)
    stale = study.get_trials(states=(TrialState.RUNNING,))
    assert len(stale) == 1
    parents, children = runs(tmp_path)
    assert run_of(children, stale[0]).info.status == "RUNNING"
    assert parents[0].info.status == "RUNNING"

    study = rerun_completes_the_budget(tmp_path)
    lost = study.trials[stale[0].number]
    assert lost.state == TrialState.FAIL and lost.user_attrs[FAIL_REASON].startswith("lost")
    _, children = runs(tmp_path)
    lost_run = run_of(children, lost)
    assert lost_run.info.status == "FAILED"
    assert lost_run.data.tags["optuna.fail_reason"].startswith("lost")
    retried = [t for t in study.trials if t.user_attrs.get(RETRY_OF) == lost.number]
    assert len(retried) == 1 and retried[0].params == lost.params
    assert retried[0].state == TrialState.COMPLETE


IDLE_POOL = """
import os, signal, sys, time
from joblib.externals.loky import get_reusable_executor
from pipeline.folds.pool import start_fold_workers

start_fold_workers(2, 5)
executor = get_reusable_executor(max_workers=2)
executor.submit(time.sleep, 0.5).result()  # both processes up, now idle
pids = list(executor._processes)
for pid in pids:
    os.kill(pid, signal.SIGINT)
time.sleep(1.0)
print("alive", sum(p.is_alive() for p in executor._processes.values()), len(pids))
"""


def test_idle_fold_processes_leave_ctrl_c_to_the_sweep():
    """The terminal's Ctrl-C reaches every process of the group: a fold process idle between
    folds (or not yet given one) ignores it, instead of dying with a traceback of its own."""
    done = subprocess.run(
        [sys.executable, "-c", IDLE_POOL], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["alive", "2", "2"]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def test_ctrl_c_while_the_champion_is_finished_leaves_no_run_running(tmp_path):
    """Ctrl-C after the last trial, while the champion is refitted and the report drawn: the
    command ends with 130 and one line, and the parent run ends KILLED, not RUNNING."""
    args = [*ARGS[:-1], "study.n_trials=2", "progress_bar=true"]  # the bar names each step
    sweep = start(tmp_path, args)
    seen = ""
    deadline = time.monotonic() + 240
    while "finishing:" not in seen and time.monotonic() < deadline:
        chunk = sweep.stderr.read(1)
        if not chunk:
            break
        seen += chunk
    assert "finishing:" in seen, seen[-2000:]
    os.killpg(sweep.pid, signal.SIGINT)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, (seen + err)[-3000:]
    assert "interrupted: finished trials are kept" in err
    assert "Traceback" not in seen + err
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("mlp-sweep").experiment_id
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment])}
    assert statuses.pop(STUDY) == "KILLED"
    assert "RUNNING" not in statuses.values()

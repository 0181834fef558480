"""Several Optuna workers on one study, on this machine: real Hydra multiruns (the forked and the
joblib launchers) and real worker processes, on the journal file store and on PostgreSQL.

What must hold however the workers interleave: the study ends with exactly ``study.n_trials``
counted trials, one MLflow parent run, every trial a child of it; a worker killed mid-trial loses
nothing; no password reaches a file, the terminal or MLflow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.names import FAIL_REASON, OWNER_ATTR, RETRY_OF
from pipeline.search.storage import open_storage
from tests.workers import (
    POSTGRES_URL,
    TINY,
    assert_budget_exact,
    counted_trials,
    files_containing,
    load_study,
    needs_postgres,
    postgres_password,
    postgres_url,
    run_sweep_cli,
    study_runs,
    sweep_command,
    unique_name,
)

pytestmark = pytest.mark.slow
EXPERIMENT = "mlp-sweep"


def sqlite_client(folder) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")


def assert_ok(result) -> None:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])


def storage_for(kind: str, folder) -> tuple[list[str], str, dict]:
    """(overrides, URL to inspect the study with, extra env) for a storage kind."""
    if kind == "default":
        return [], str(folder / "mlruns" / "optuna.journal"), {}
    if kind == "journal":  # as on a shared file system: an absolute path outside ./mlruns
        path = folder / "shared" / "optuna.journal"
        return [f"study.storage={path}"], str(path), {}
    # PostgreSQL, the password from libpq's PGPASSWORD: it is in no URL, file or log.
    overrides = [f"study.storage={postgres_url(None)}"]
    return overrides, POSTGRES_URL, {"PGPASSWORD": postgres_password()}


# Trials long enough (~1 s) that every worker is inside one while the others run, and a kill
# lands inside one.
SECOND_LONG_TRIALS = [
    "dataset=moons",
    "dataset.n_samples=3000",
    "search_space.iterations.low=800",
    "search_space.iterations.high=1000",
    "search_space.iterations.step=50",
    "search_space.hidden_units.low=48",
    "search_space.hidden_units.high=64",
]
POSTGRESQL = pytest.param("postgresql", marks=[needs_postgres, pytest.mark.services])


# The default store (./mlruns/optuna.journal) with the forked launcher: the README's multirun
# command, which tests/e2e/test_readme.py runs.
@pytest.mark.parametrize(
    ("kind", "launcher"),
    [
        ("journal", "forked"),
        ("journal", "joblib"),
        pytest.param("postgresql", "forked", marks=[needs_postgres, pytest.mark.services]),
    ],
)
def test_four_workers_reach_exactly_the_budget(tmp_path, kind, launcher):
    name = unique_name(f"budget-{kind}")
    overrides, storage, env = storage_for(kind, tmp_path)
    result = run_sweep_cli(
        [
            "--multirun",
            "worker=range(4)",
            f"hydra/launcher={launcher}",
            # All four at once on 2 cores: the racy case, and more workers than turns.
            "hydra.launcher.n_jobs=4",
            "hydra.sweep.dir=multirun/budget",
            f"study.name={name}",
            "study.n_trials=40",
            *TINY,
            *overrides,
        ],
        tmp_path,
        env=env,
    )
    assert_ok(result)
    assert "database is locked" not in result.stderr and "locked" not in result.stdout

    study = load_study(storage, name)
    assert_budget_exact(study, 40)
    counted = counted_trials(study)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert len({t.user_attrs[OWNER_ATTR]["worker"] for t in counted}) >= 2, "one worker ran all"

    parents, children = study_runs(sqlite_client(tmp_path), EXPERIMENT, name)
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 40
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.tags["optuna.trial_number"] for c in children} == {
        str(t.number) for t in counted
    }
    for child in children:
        assert child.data.tags["mlp_sweep.worker"] == str(
            study.trials[int(child.data.tags["optuna.trial_number"])].user_attrs[OWNER_ATTR][
                "worker"
            ]
        )
        assert child.data.tags["mlp_sweep.host"]
    assert result.stdout.count("champion: registered version") == 1  # only worker 0 finalises
    if kind == "postgresql":
        secret = postgres_password()
        assert secret not in result.stdout + result.stderr
        assert files_containing(tmp_path, secret) == []


def test_workers_started_at_the_same_instant_make_one_study_and_one_parent_run(tmp_path):
    """Four separate processes on fresh stores (no multirun callback to create them first)."""
    name = unique_name("together")
    args = [f"study.name={name}", "study.n_trials=8", *TINY]
    processes = [
        subprocess.Popen(
            sweep_command([f"worker={w}", *args]),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "mlruns" / "optuna.journal"))
    )
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [name]
    assert_budget_exact(optuna.load_study(study_name=name, storage=storage), 8)
    parents, children = study_runs(sqlite_client(tmp_path), EXPERIMENT, name)
    assert len(parents) == 1 and len(children) == 8


def merged(base: list[str], changes: list[str]) -> list[str]:
    """Overrides of ``base`` with those of ``changes`` replacing the same keys."""
    keys = {c.split("=", 1)[0] for c in changes}
    return [o for o in base if o.split("=", 1)[0] not in keys] + changes


def wait_for_running_trial(
    storage: str, name: str, worker: int | tuple[int, ...], timeout: float = 240
):
    """The newest RUNNING trial of ``worker`` (or of any of several) with all its parameters,
    once that worker has finished a trial: it is inside its folds now, for most of a trial's
    length.

    A worker's first trials open their runs only when its MLflow store is up, which for a trial
    shorter than MLflow's start-up is just before the trial is told; seen then, the trial may
    be over, and the next not yet recorded, when a kill lands. Once a trial of the worker has
    finished, its store is up and every later trial's run is created as it starts."""
    deadline = time.monotonic() + timeout
    # One storage for every poll: a storage per poll holds a PostgreSQL connection until
    # garbage collection, and polls that way ran the database out of connection slots.
    opened = open_storage(storage, 10)
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=name, storage=opened)
        except KeyError:  # not created yet
            time.sleep(0.2)
            continue
        for one in (worker,) if isinstance(worker, int) else worker:
            trials = [
                t
                for t in study.get_trials()
                if t.user_attrs.get(OWNER_ATTR, {}).get("worker") == one
            ]
            finished = [t for t in trials if t.state.is_finished()]
            if finished:
                for trial in reversed(trials):  # with all its parameters: inside its folds
                    running = trial.state == optuna.trial.TrialState.RUNNING
                    if running and set(trial.params) == set(finished[0].params):
                        return trial
        time.sleep(0.05)
    raise AssertionError(f"worker {worker} never ran a trial after its first")


@pytest.mark.parametrize("kind", ["journal", POSTGRESQL])
def test_worker_killed_mid_trial_loses_nothing(tmp_path, kind):
    """SIGKILL one of three workers inside a trial: the others finish the study, the lost trial
    is failed (pid check on the journal, heartbeat on PostgreSQL), retried, and its run closed."""
    name = unique_name(f"kill-{kind}")
    overrides, storage, env = storage_for(kind, tmp_path)
    args = merged(
        TINY,
        [
            f"study.name={name}",
            "study.n_trials=16",
            "study.heartbeat_interval=1",  # lost after 4 s without a heartbeat
            *SECOND_LONG_TRIALS,
            *overrides,
        ],
    )
    processes = {
        w: subprocess.Popen(
            sweep_command([f"worker={w}", *args]),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for w in range(3)
    }
    try:
        victim = wait_for_running_trial(storage, name, 1)
        assert victim.user_attrs[OWNER_ATTR]["pid"] == processes[1].pid
        os.kill(processes[1].pid, signal.SIGKILL)
        processes[1].wait(timeout=30)
        outputs = {w: p.communicate(timeout=300) for w, p in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    assert processes[1].returncode == -signal.SIGKILL
    for w in (0, 2):
        assert processes[w].returncode == 0, outputs[w][1][-3000:]

    study = load_study(storage, name)
    assert_budget_exact(study, 16)
    # The trials the kill landed in: the one seen running, unless it ended in the instant
    # between that look and the kill (told complete or pruned), and the victim's other trial
    # in flight if it was still running.
    lost_trials = [
        t
        for t in study.trials
        if t.user_attrs.get(OWNER_ATTR, {}).get("pid") == processes[1].pid
        and t.state == optuna.trial.TrialState.FAIL
        and not t.user_attrs.get(FAIL_REASON, "").startswith("diverged")
    ]
    assert lost_trials, "the kill landed in none of the victim's trials"
    assert victim.number in [t.number for t in lost_trials] or study.trials[
        victim.number
    ].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    client = sqlite_client(tmp_path)
    parents, children = study_runs(client, EXPERIMENT, name)
    runs = {int(c.data.tags["optuna.trial_number"]): c for c in children}
    for lost in lost_trials:
        retries = [
            t
            for t in study.trials
            if t.user_attrs.get(RETRY_OF) == lost.number
            or t.system_attrs.get("failed_trial") == lost.number
        ]
        assert [t.state for t in retries] == [optuna.trial.TrialState.COMPLETE]
        assert retries[0].params == lost.params
        if lost.number in runs:  # none if killed before its run was created
            assert runs[lost.number].info.status == "FAILED"
            assert runs[lost.number].data.tags["optuna.state"] == "FAIL"

    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert [c.info.run_id for c in children if c.info.status == "RUNNING"] == []
    assert "study " + name + ": 16 complete" in outputs[0][0]


@needs_postgres
@pytest.mark.services
def test_credentials_never_leak(tmp_path):
    """A literal password on the command line: masked in Hydra's files and logs, the config
    artifacts, MLflow and the terminal; the user is told to use the environment instead."""
    secret = postgres_password()
    name = unique_name("secret")
    result = run_sweep_cli(
        [
            "--multirun",
            "worker=range(2)",
            "hydra/launcher=forked",
            "hydra.sweep.dir=multirun/secret",
            f"study.name={name}",
            "study.n_trials=4",
            *TINY,
            f"study.storage={postgres_url(secret)}",
        ],
        tmp_path,
    )
    assert_ok(result)
    assert "a password on the command line is masked" in result.stdout + result.stderr
    assert secret not in result.stdout + result.stderr
    assert files_containing(tmp_path, secret) == []
    assert (tmp_path / "multirun" / "secret" / "0" / ".hydra" / "overrides.yaml").exists()
    # A wrong password: the one-line error names the storage, masked.
    wrong = "wrong" + secret[::-1]
    failed = run_sweep_cli(
        [f"study.name={name}", *TINY, f"study.storage={postgres_url(wrong)}"], tmp_path
    )
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert "study.storage=" in failed.stderr and "***" in failed.stderr
    assert wrong not in failed.stdout + failed.stderr
    assert files_containing(tmp_path, wrong) == []


def test_forked_worker_killed_is_reported_and_its_trial_retried(tmp_path):
    """SIGKILL one of three workers of ``hydra/launcher=forked`` inside a trial: the others
    finish the study with its budget, and the command names the lost job and fails. (On 2
    cores, workers 1 and 2 share one turn: the victim is whichever of them runs.)"""
    name = unique_name("forked-kill")
    overrides, storage, _ = storage_for("journal", tmp_path)
    args = merged(
        TINY,
        [
            f"study.name={name}",
            "study.n_trials=12",
            *SECOND_LONG_TRIALS,
            *overrides,
        ],
    )
    command = sweep_command(
        ["-m", "worker=range(3)", "hydra/launcher=forked", "hydra.launcher.n_jobs=3", *args]
    )
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        victim = wait_for_running_trial(storage, name, (1, 2))
        job, pid = victim.user_attrs[OWNER_ATTR]["worker"], victim.user_attrs[OWNER_ATTR]["pid"]
        assert pid != process.pid  # a forked job of its own
        os.kill(pid, signal.SIGKILL)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert f"job #{job} ended without a result (killed by signal 9)" in err, err[-3000:]
    study = load_study(storage, name)
    assert_budget_exact(study, 12)
    assert f"study {name}: 12 complete" in out
    parents, children = study_runs(sqlite_client(tmp_path), EXPERIMENT, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert [c.info.run_id for c in children if c.info.status == "RUNNING"] == []


def test_ctrl_c_stops_a_forked_multirun_and_keeps_its_trials(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) to 4 forked workers on 2
    cores, two of them waiting for a turn: every process ends within seconds with code 130,
    each says the finished trials are kept, and no trial is left RUNNING."""
    name = unique_name("forked-ctrl-c")
    overrides, storage, _ = storage_for("journal", tmp_path)
    args = merged(TINY, [f"study.name={name}", "study.n_trials=400", *overrides])
    command = sweep_command(
        ["-m", "worker=range(4)", "hydra/launcher=forked", "hydra.launcher.n_jobs=4", *args]
    )
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, which the SIGINT goes to
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    try:
        opened = open_storage(storage, 10)
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "no trial finished"
            try:
                study = optuna.load_study(study_name=name, storage=opened)
                if sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)) >= 5:
                    break
            except KeyError:  # not created yet
                pass
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=60)
        assert time.monotonic() - sent < 30
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert err.count("interrupted: finished trials are kept") >= 2
    study = load_study(storage, name)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert sum(s.is_finished() for s in states) < 400

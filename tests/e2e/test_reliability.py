"""Faults a sweep meets in the wild, on the real command line: torn and foreign stores, a disk
that fills up."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from pipeline.folds.processes import process_alive
from tests.helpers import FAST, run_cli

pytestmark = pytest.mark.slow  # real sweeps


def test_a_torn_journal_loses_no_finished_trial(tmp_path):
    first = run_cli([*FAST, "dataset=iris", "pruner=none"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    journal = tmp_path / "mlruns" / "optuna.journal"
    journal.write_bytes(journal.read_bytes()[:-20])  # truncate -s -20: the last write torn
    again = run_cli([*FAST, "dataset=iris", "pruner=none", "study.n_trials=4"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    output = (again.stdout + again.stderr).splitlines()
    warnings = [line for line in output if "torn write" in line]
    assert len(warnings) == 1 and "optuna.journal.torn" in warnings[0]
    assert "Traceback" not in again.stderr
    assert (tmp_path / "mlruns" / "optuna.journal.torn").stat().st_size > 0
    assert "study iris-mlp: 4 complete" in again.stdout


def test_a_foreign_file_as_the_study_storage_is_one_line_and_untouched(tmp_path):
    foreign = tmp_path / "notes.txt"
    foreign.write_text("shopping list\neggs\n")
    result = run_cli([*FAST, "dataset=iris", f"study.storage={foreign}"], tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: study.storage={foreign}: not an Optuna journal file")
    assert foreign.read_text() == "shopping list\neggs\n"
    assert not (tmp_path / "mlruns").exists()  # refused before the tracking store was made


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs mounted for the test (root only): a disk that fills up mid-sweep."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)])
    if mounted.returncode != 0:
        pytest.skip("this machine does not let the test mount a tmpfs")
    yield folder
    # Lazy: detached at once, freed when the last process of the sweeps has let go of it.
    subprocess.run(["umount", "-l", str(folder)])


@pytest.mark.parametrize("writer", ["thread", "process"])  # who writes the trials' runs
def test_a_full_disk_ends_the_sweep_in_one_line_and_the_rerun_resumes(small_disk, writer):
    args = ["dataset=digits", "study.n_trials=30", "cv.folds=3", "progress_bar=false",
            "search_space.iterations.high=60", "search_space.hidden_units.high=32",
            f"tracking.writer={writer}"]  # fmt: skip
    full = run_cli(args, small_disk)
    assert full.returncode == 2, full.stderr[-3000:]
    assert full.stderr.strip().splitlines() == [
        "error: study.storage=mlruns/optuna.journal, tracking.uri=sqlite:///mlruns/mlflow.db: "
        "no space left on the disk; finished trials are kept: free space and rerun the same "
        "command to resume"
    ]
    storage = JournalStorage(JournalFileBackend(str(small_disk / "mlruns" / "optuna.journal")))
    kept = {
        t.number: t.value
        for t in optuna.load_study(study_name="digits-mlp", storage=storage).trials
        if t.state == TrialState.COMPLETE
    }
    assert kept  # the trials finished before the disk filled are readable
    subprocess.run(["mount", "-o", "remount,size=80m", str(small_disk)], check=True)
    again = run_cli(args, small_disk)
    assert again.returncode == 0, again.stderr[-3000:]
    storage = JournalStorage(JournalFileBackend(str(small_disk / "mlruns" / "optuna.journal")))
    study = optuna.load_study(study_name="digits-mlp", storage=storage)
    assert kept == {t.number: t.value for t in study.trials if t.number in kept}
    client = MlflowClient(f"sqlite:///{small_disk}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("mlp-sweep").experiment_id])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []


def limit_address_space(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def test_trials_that_cannot_allocate_fail_and_the_sweep_stops_after_five_in_a_row(tmp_path):
    """Memory that the sweep's up-front estimate allows but the process may not have (here an
    address-space limit, as a batch system sets): each trial ends FAILED with its reason, and
    five in a row stop the sweep in one line with the parent run FAILED."""
    args = [
        "dataset=iris", "cv.folds=3", "progress_bar=false", "search_space.hidden_units.log=false",
        "search_space.hidden_units.low=20000", "search_space.hidden_units.high=20000",
        "search_space.hidden_layers.low=2", "search_space.hidden_layers.high=2",
        "search_space.iterations.low=1", "search_space.iterations.high=1",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.sweep", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_address_space(4 * 2**30),
    )
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: study.max_failures_in_a_row=5: the last 5 trials failed")
    assert "MemoryError: Unable to allocate" in line
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("mlp-sweep").experiment_id])
    statuses = {r.info.run_name: r.info.status for r in runs}
    assert statuses.pop("iris-mlp") == "FAILED"
    assert set(statuses.values()) == {"FAILED"} and len(statuses) >= 5
    reasons = [r.data.tags["optuna.fail_reason"] for r in runs if r.info.run_name != "iris-mlp"]
    assert sum(reason.startswith("failed: fold 0: MemoryError") for reason in reasons) == 5


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_sweeps_processes_end_within_five_seconds_of_a_killed_sweep(tmp_path):
    """The fold processes, and the process that writes the trials' runs."""
    args = ["dataset=digits", "study.n_trials=50", "progress_bar=false",
            "search_space.iterations.low=2000", "search_space.iterations.high=3000",
            "tracking.writer=process"]  # fmt: skip
    sweep = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sweep", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        folds = []
        while len(folds) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            folds = [
                pid
                for pid in children_of(sweep.pid)
                if b"LokyProcess" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
        assert len(folds) == 2, "the sweep's fold processes did not start"
        time.sleep(3)  # the first trial's folds are fitting now
        children = children_of(sweep.pid)
        assert len(children) >= 3, "no process besides the folds'"  # the writer
        sweep.kill()
        sweep.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(process_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in children if process_alive(pid)] == []
    finally:
        if sweep.poll() is None:
            sweep.kill()


@pytest.mark.parametrize("module", ["pipeline.sweep", "pipeline.train"])
def test_a_read_only_working_folder_is_one_line(tmp_path, module):
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root (CI runs as root)")
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)]
    ).returncode:
        pytest.skip("this machine does not let the test mount a tmpfs")
    try:
        result = run_cli(["-m", module, "dataset=iris"], folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: hydra.run.dir=outputs: folder {folder} is not writable (a read-only disk, or its "
        "permissions); run from a writable folder or choose another location"
    ]

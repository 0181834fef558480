"""A quarter of a 16-worker multirun SIGKILLed mid-run: the study still ends exactly on budget.

    . .ci/services.env && python benchmarks/kill_workers.py 600

The real command, ``python -m pipeline.sweep -m worker='range(16)' hydra/launcher=forked`` on
PostgreSQL with instant trials, in a fresh folder. Once a quarter of the trials are finished, 4 of
the 15 workers that do not lead are killed, the busiest of them first (on a machine with fewer
cores than workers, the one holding a core's turn: pipeline.search.core_turns). Then it checks
what docs/cluster.md#faults promises: exactly the budget of COMPLETE or PRUNED trials, no trial
number twice, one FINISHED parent run, no run left RUNNING. Too long for the suite, whose
version runs 8 workers (tests/services/test_scale.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.search.storage import open_storage  # noqa: E402
from tests.services.test_scale import INSTANT  # noqa: E402  (the suite's instant trials)
from tests.workers import (  # noqa: E402
    POSTGRES_URL,
    assert_budget_exact,
    counted_trials,
    load_study,
    postgres_password,
    postgres_url,
    study_runs,
    unique_name,
)

WORKERS, VICTIMS = 16, 4


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of a process so far (/proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trials", type=int, nargs="?", default=600)
    n_trials = parser.parse_args().trials
    if not POSTGRES_URL:
        sys.exit("needs PostgreSQL: . .ci/services.env")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, folder = unique_name("kill-workers"), tempfile.mkdtemp(prefix="kill-workers-")
    command = [
        sys.executable, "-m", "pipeline.sweep", "-m", f"worker=range({WORKERS})",
        "hydra/launcher=forked", f"hydra.launcher.n_jobs={WORKERS}", *INSTANT,
        "search_space.learning_rate.high=0.05", f"study.name={name}",
        f"study.n_trials={n_trials}", f"study.storage={postgres_url(None)}",
        "study.heartbeat_interval=5",
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": postgres_password()}
    started = time.monotonic()
    sweep = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    storage = open_storage(POSTGRES_URL, 10)

    def finished() -> int:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # not created yet
            return 0
        return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))

    while finished() < n_trials // 4:
        if sweep.poll() is not None:
            sys.exit(f"the multirun ended first:\n{sweep.communicate()[1][-3000:]}")
        time.sleep(0.2)
    listed = subprocess.run(["pgrep", "-P", str(sweep.pid)], capture_output=True, text=True)
    workers = sorted(int(pid) for pid in listed.stdout.split())  # forked in order: 0 first
    followers = sorted(workers[1:], key=cpu_ticks, reverse=True)
    victims = followers[:1] + [pid for pid in workers[1:] if pid != followers[0]][: VICTIMS - 1]
    at = finished()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _, stderr = sweep.communicate(timeout=900)
    print(f"{len(workers)} workers; killed {victims} at {at} finished trials")
    print(f"exit code {sweep.returncode}, {time.monotonic() - started:.1f} s")
    print("last line of stderr:", stderr.strip().splitlines()[-1] if stderr.strip() else "")

    study = load_study(POSTGRES_URL, name)
    assert_budget_exact(study, n_trials)
    assert {t.state.name for t in counted_trials(study)} <= {"COMPLETE", "PRUNED"}
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)), "a trial number used twice"
    states = {t.state.name for t in study.trials}
    print("trials:", {s: sum(t.state.name == s for t in study.trials) for s in sorted(states)})
    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlruns/mlflow.db")
    parents, children = study_runs(client, "mlp-sweep", name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", parents
    assert [c.info.run_id for c in children if c.info.status == "RUNNING"] == []
    done = [c for c in children if c.data.tags.get("optuna.state") in ("COMPLETE", "PRUNED")]
    assert len(done) == n_trials, len(done)
    print(f"exactly {n_trials} trials, {len(done)} finished runs, one parent, none RUNNING")


if __name__ == "__main__":
    main()

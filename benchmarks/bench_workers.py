"""Scale-out of one study over several workers: trials per minute with 1 and with 2 local
workers, and under SLURM the time from submission to each worker's first trial.

Local: ``python -m pipeline.sweep -m worker='range(W)' hydra/launcher=joblib`` in a fresh
folder (journal study + MLflow SQLite, as a user runs it) with ``cv.n_jobs=-1``, so each worker
fits its folds on its share of the cores (2 cores: 1 worker -> 2 fold processes, 2 workers ->
1 each, BLAS at 1 thread). Every trial costs the same (fixed width, depth and iterations; only
the learning rate and activation are searched), and the rate is counted between the first
trial's start and the last trial's end, so the workers' start-up is left out of it (and
reported apart). Configurations alternate, ``--repeats`` times each; the table shows medians.

SLURM (when ``sinfo`` answers): ``hydra/launcher=slurm`` with 2 workers of 1 CPU; submission
time is the mtime of submitit's ``*_submission.sh``, first trial from the study.

    .venv/bin/python benchmarks/bench_workers.py [--trials 24] [--repeats 2] [--no-slurm]

Prints a markdown table and writes it with the raw figures to benchmarks/results/workers.md/.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# One trial = 5 folds (the default) of a 128-unit network, 150 full-batch adam iterations on digits.
SWEEP = [
    "dataset=digits",
    "cv.folds=5",
    "cv.n_jobs=-1",
    "search_space.iterations.low=150",
    "search_space.iterations.high=150",
    "search_space.hidden_units.low=128",
    "search_space.hidden_units.high=128",
    "search_space.hidden_layers.low=1",
    "search_space.hidden_layers.high=1",
    "search_space.activation.choices=[relu,tanh]",
    "sampler=random",
    "pruner=none",
    "progress_bar=false",
    "tracking.log_trial_models=false",
]


def run(args: list[str], cwd: Path, timeout: float = 1800, prefix: list[str] = ()) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "pipeline.sweep", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sweep failed: {result.stderr[-2000:]}")
    return time.perf_counter() - started


def study_trials(folder: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = JournalStorage(JournalFileBackend(str(folder / "mlruns" / "optuna.journal")))
    study = optuna.load_study(study_name=name, storage=storage)
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def local_run(workers: int, trials: int, one_core: bool = False) -> dict:
    """One multirun of ``workers`` local workers; trials/min between first start and last end.

    ``one_core``: pinned to CPU 0 with taskset (the worker's share is then 1 core).
    """
    folder = Path(tempfile.mkdtemp(prefix=f"bench-workers-{workers}-"))
    try:
        wall = run(
            [
                "--multirun",
                f"worker=range({workers})",
                "hydra/launcher=joblib",
                "study.name=bench",
                f"study.n_trials={trials}",
                *SWEEP,
            ],
            folder,
            prefix=["taskset", "-c", "0"] if one_core else [],
        )
        done = study_trials(folder, "bench")
        first = min(t.datetime_start for t in done)
        last = max(t.datetime_complete for t in done)
        seconds = (last - first).total_seconds()
        return {
            "config": f"{workers} worker{'s' if workers > 1 else ''}"
            + (", pinned to 1 core" if one_core else f", {os.cpu_count()} cores"),
            "workers": workers,
            "trials": len(done),
            "trials_per_minute": 60 * len(done) / seconds,
            "search_seconds": seconds,
            "wall_seconds": wall,
            "by_worker": {
                str(w): sum(1 for t in done if t.user_attrs.get("worker") == w)
                for w in range(workers)
            },
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def slurm_run(trials: int) -> dict | None:
    """2 SLURM workers: seconds from each job's submission to its first trial."""
    if shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode:
        return None
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-slurm-"))
    try:
        partition = os.environ.get("MLP_SWEEP_TEST_SLURM_PARTITION")
        wall = run(
            [
                "--multirun",
                "worker=range(2)",
                "hydra/launcher=slurm",
                "hydra.launcher.cpus_per_task=1",
                "hydra.launcher.mem_gb=1",
                *([f"hydra.launcher.partition={partition}"] if partition else []),
                "hydra.sweep.dir=multirun/bench",
                "study.name=bench",
                f"study.n_trials={trials}",
                *SWEEP,
            ],
            folder,
        )
        done = study_trials(folder, "bench")
        submitted = min(
            p.stat().st_mtime for p in (folder / "multirun" / "bench").rglob("*_submission.sh")
        )
        firsts = {}
        for trial in done:
            worker = trial.user_attrs.get("worker")
            start = trial.datetime_start.timestamp()
            firsts[worker] = min(firsts.get(worker, start), start)
        return {
            "wall_seconds": wall,
            "to_first_trial": {str(w): s - submitted for w, s in sorted(firsts.items())},
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def table(local: dict[str, list[dict]], slurm: dict | None) -> str:
    base = statistics.median(r["trials_per_minute"] for r in local["1"])
    lines = [
        "| configuration | trials/min (median) | vs 1 worker | each run | search s | wall s (incl. start-up) | trials by worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for runs in local.values():
        rate = statistics.median(r["trials_per_minute"] for r in runs)
        lines.append(
            f"| {runs[0]['config']} | {rate:.1f} | {rate / base:.2f}x | "
            f"{', '.join(format(r['trials_per_minute'], '.0f') for r in runs)} | "
            f"{statistics.median(r['search_seconds'] for r in runs):.1f} | "
            f"{statistics.median(r['wall_seconds'] for r in runs):.1f} | "
            f"{runs[-1]['by_worker']} |"
        )
    if slurm:
        firsts = ", ".join(f"worker {w}: {s:.1f} s" for w, s in slurm["to_first_trial"].items())
        lines += ["", f"SLURM, 2 workers of 1 CPU: submission -> first trial: {firsts}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()
    local: dict[str, list[dict]] = {"1": [], "2": [], "1-pinned": []}
    for _ in range(args.repeats):
        for key in local:
            local[key].append(local_run(int(key[0]), args.trials, one_core=key == "1-pinned"))
            print(local[key][-1], flush=True)
    slurm = None if args.no_slurm else slurm_run(args.trials // 2)
    text = table(local, slurm)
    load = os.getloadavg()
    header = (
        f"# Workers on one study ({platform.node()}, {os.cpu_count()} cores, "
        f"{args.trials} trials per run, {args.repeats} runs each, load average at the end "
        f"{load[0]:.1f})\n\n"
        "Command: `.venv/bin/python benchmarks/bench_workers.py "
        f"--trials {args.trials} --repeats {args.repeats}`\n\n"
        "Each trial: digits, 5 folds, one 128-unit layer, 150 adam iterations; `cv.n_jobs=-1`, "
        "so 1 worker fits 2 folds at once and each of 2 workers fits 1 (its share of the cores); "
        "the pinned row is 1 worker on 1 core (`taskset -c 0`), the per-worker baseline.\n\n"
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workers.md").write_text(header + text + "\n")
    (RESULTS / "workers.json").write_text(json.dumps({"local": local, "slurm": slurm}, indent=1))


if __name__ == "__main__":
    main()

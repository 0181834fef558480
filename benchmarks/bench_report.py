"""What the plots, trials.csv and best_params.yaml (pipeline.results.report) cost a sweep.

Runs `python -m pipeline.sweep [OVERRIDES]` twice in fresh temp folders, once as it is and once
with the report switched off (the same seeded trials either way), then times log_report again
in-process on the finished study. Prints a table; asserts nothing.

    python benchmarks/bench_report.py                  # the default sweep (digits, 50 trials)
    python benchmarks/bench_report.py dataset=iris study.n_trials=10
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from pipeline.results.report import log_report
from pipeline.tracking.store import connect

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
WITHOUT_REPORT = (
    "import sys, pipeline.results.champion as c\n"
    "c.log_report = lambda *a, **k: []\n"
    "c.log_best_config = lambda *a, **k: ''\n"
    "from pipeline.sweep import main\n"
    # Imported, not run as __main__, Hydra would look for conf/ as a package: name the folder.
    f"sys.argv = ['pipeline.sweep', '--config-path={CONF_DIR}', *sys.argv[1:]]\n"
    "main()\n"
)


def timed_sweep(command: list[str], folder: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"sweep failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - started


def main(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with_folder, without_folder = Path(tmp, "with"), Path(tmp, "without")
        with_folder.mkdir(), without_folder.mkdir()
        wall_with = timed_sweep([sys.executable, "-m", "pipeline.sweep", *overrides], with_folder)
        wall_without = timed_sweep(
            [sys.executable, "-c", WITHOUT_REPORT, *overrides], without_folder
        )
        store = with_folder / "mlruns"
        client, experiment_id = connect(
            f"sqlite:///{store / 'mlflow.db'}", str(store / "artifacts"), "mlp-sweep"
        )
        storage = JournalStorage(JournalFileBackend(str(store / "optuna.journal")))
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        parent = client.search_runs(
            [experiment_id], filter_string="tags.`mlp_sweep.role` = 'study'"
        )[0]
        in_sweep = parent.data.metrics.get("report_seconds", float("nan"))
        n_trials = len(study.trials)
        again = []
        for _ in range(3):
            run_id = client.create_run(experiment_id, run_name="bench-report").info.run_id
            started = time.perf_counter()
            log_report(client, run_id, study)  # study plots + csv (no champion pictures)
            again.append(time.perf_counter() - started)
    print(f"sweep: python -m pipeline.sweep {' '.join(overrides)}  ({n_trials} trials)")
    print("| measure | seconds |")
    print("|---|---|")
    print(f"| sweep wall, with report | {wall_with:.1f} |")
    print(f"| sweep wall, without report | {wall_without:.1f} |")
    print(f"| difference | {wall_with - wall_without:+.1f} |")
    print(f"| report_seconds logged by the sweep | {in_sweep:.2f} |")
    print(f"| log_report again in-process, median of 3 | {statistics.median(again):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

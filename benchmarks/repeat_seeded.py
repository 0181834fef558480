"""Does a seeded sweep repeat itself? Run the seeded sweep of
``tests/e2e/test_sweep_e2e.py::test_seeded_sweeps_give_the_same_trials_and_scores`` again and
again, each in a fresh folder, and compare every run's trials with the first one's.

    python benchmarks/repeat_seeded.py [--runs 21] [--keep] [OVERRIDE ...]

``--runs 21`` makes 20 comparisons, as many as 20 runs of the test. Each run's trials (number,
state, parameters, value, fold scores reported to the pruner, and every bit of each trial's
training loss curve as logged in MLflow) are compared with run 0's; a run that differs prints
the first trial where it differs and how. Writes the runs and the verdict to
benchmarks/results/repeat_seeded.json. Exit code 1 if any run differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from pipeline.names import PARENT_RUN_ATTR  # noqa: E402
from pipeline.tracking.runs import trial_run_ids  # noqa: E402
from tests.helpers import SEEDED_SWEEP  # noqa: E402  (the test's own command line)


def trials_of(folder: Path) -> list[dict]:
    storage = JournalStorage(JournalFileBackend(str(folder / "mlruns" / "optuna.journal")))
    study = optuna.load_study(study_name="iris-mlp", storage=storage)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    parent = client.get_run(study.user_attrs[PARENT_RUN_ATTR])
    runs = trial_run_ids(client, parent.info.experiment_id, parent.info.run_id)
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "params": t.params,
            # repr keeps every bit of a float: 0.9666666666666667 vs 0.9666666666666666
            "value": repr(t.value),
            "reported": {step: repr(v) for step, v in sorted(t.intermediate_values.items())},
            # Accuracies move in steps of 1/n_valid and hide small numeric differences; the
            # training loss (the folds' mean, per iteration) shows any changed bit.
            "loss_curve": loss_digest(client, runs.get(t.number)),
        }
        for t in study.trials
    ]


def loss_digest(client: MlflowClient, run_id: str | None) -> str | None:
    if run_id is None:
        return None
    history = sorted(client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)
    values = [m.value for m in history]
    digest = hashlib.sha256(repr(values).encode()).hexdigest()[:16]
    return f"{len(values)} iterations, last {values[-1]!r}, sha256 {digest}" if values else None


def first_difference(reference: list[dict], trials: list[dict]) -> str | None:
    for a, b in zip(reference, trials, strict=False):
        if a != b:
            keys = [k for k in a if a[k] != b.get(k)]
            return f"trial {a['number']}: " + "; ".join(f"{k} {a[k]} != {b.get(k)}" for k in keys)
    if len(reference) != len(trials):
        return f"{len(reference)} trials != {len(trials)}"
    return None


def run_once(folder: Path, extra: list[str]) -> tuple[list[dict], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.sweep", *SEEDED_SWEEP, *extra],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"sweep failed in {folder}:\n{result.stderr[-3000:]}")
    return trials_of(folder), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("extra", nargs="*", help="overrides added to the test's, e.g. cv.folds=4")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="repeat-seeded-"))
    reference, outcomes = None, []
    try:
        for index in range(args.runs):
            folder = base / str(index)
            folder.mkdir()
            trials, seconds = run_once(folder, args.extra)
            reference = reference or trials
            difference = first_difference(reference, trials)
            outcomes.append({"run": index, "seconds": round(seconds, 1), "differs": difference})
            print(f"run {index}: {seconds:.1f} s, {difference or 'same as run 0'}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    differing = sum(o["differs"] is not None for o in outcomes)
    print(f"{len(outcomes) - 1 - differing} of {len(outcomes) - 1} reruns repeat run 0")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "repeat_seeded.json").write_text(
        json.dumps(
            {"args": SEEDED_SWEEP + args.extra, "reference": reference, "runs": outcomes}, indent=1
        )
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())

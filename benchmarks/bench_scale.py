"""Per-trial cost of the sweep's machinery as a study grows, against a plain Optuna loop.

    python benchmarks/bench_scale.py --trials 2000 --points 200 1000 1900
    python benchmarks/bench_scale.py --trials 10000 --points 1000 9900 --no-plain
    python benchmarks/bench_scale.py --trials 2000 --workers 8 --storage postgresql --no-plain
    python benchmarks/bench_scale.py --trials 10000 --points 1000 9900 --no-plain pruner=median

Both sides run an instant objective (iris, 2 folds, 1-2 iterations, 2-4 units, one layer, no
pruner), so that what is measured is the machinery around a trial: asking Optuna, telling it,
the MLflow child run, the rest. The sweep is the real command ``python -m pipeline.sweep`` in a
fresh folder (a multirun of N workers with ``--workers N``, forked by ``hydra/launcher=forked``
or started by joblib's with ``--launcher joblib``); the plain loop, in this
process, is what a user writes by hand: ``study.optimize`` with Optuna's TPESampler on a journal
file over the sweep's search space, each trial logged as a nested MLflow run (params and score,
no model) in a local SQLite store as MLflow makes it. Cost per trial = the median gap between consecutive trial completions in a window of
100 trials around each point (the issue's definition). The plain loop's time is also split
into ask (sampling), tell, MLflow and the objective.

Storages: ``journal`` (a file), ``postgresql`` and ``grpc`` (a storage proxy started here in
front of it) from ``MLP_SWEEP_TEST_POSTGRES_URL`` (``. .ci/services.env``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import optuna

from pipeline.search.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
INSTANT = [
    "dataset=iris",
    "cv.folds=2",
    "search_space.iterations.low=1",
    "search_space.iterations.high=2",
    "search_space.iterations.step=1",
    "search_space.hidden_units.low=2",
    "search_space.hidden_units.high=4",
    "search_space.hidden_layers.high=1",
    "pruner=none",
    "progress_bar=false",
]


def cost_around(completions: list[float], point: int, window: int = 100) -> float | None:
    """Median gap (ms) between consecutive completions of trials point-window/2..point+window/2."""
    times = sorted(completions)
    lo, hi = max(1, point - window // 2), min(len(times), point + window // 2)
    if hi - lo < 10:
        return None
    return float(np.median(np.diff(times[lo - 1 : hi]))) * 1000


def completions_of(study: optuna.Study) -> list[float]:
    return [
        t.datetime_complete.timestamp()
        for t in study.get_trials(deepcopy=False)
        if t.datetime_complete is not None
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def storage_url(kind: str, folder: Path, proxies: list) -> str:
    if kind == "journal":
        return str(folder / "optuna.journal")
    url = os.environ.get("MLP_SWEEP_TEST_POSTGRES_URL")
    if not url:
        sys.exit("MLP_SWEEP_TEST_POSTGRES_URL is not set (. .ci/services.env)")
    if kind == "postgresql":
        return url
    port = free_port()
    proxies.append(
        subprocess.Popen(
            [sys.executable, "-m", "pipeline.storage_proxy", url, "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
    )
    time.sleep(3)
    return f"grpc://127.0.0.1:{port}"


def run_sweep(
    trials: int,
    workers: int,
    storage: str,
    folder: Path,
    writer: str = "auto",
    extra=(),
    launcher: str = "forked",
) -> tuple[float, float, str]:
    """The real command in ``folder``; returns its start (a time.time()), its wall seconds and
    the study's name."""
    name = f"scale-{uuid.uuid4().hex[:8]}"
    args = [*INSTANT, f"study.n_trials={trials}", f"study.name={name}", f"study.storage={storage}"]
    args += [f"tracking.writer={writer}", *extra]
    if workers > 1:
        chosen = [f"hydra/launcher={launcher}", f"hydra.launcher.n_jobs={workers}"]
        args = ["-m", f"worker=range({workers})", *chosen, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.time()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.sweep", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the sweep failed:\n{result.stderr[-3000:]}")
    return started, time.perf_counter() - start, name


def run_plain(trials: int, folder: Path) -> tuple[list[float], dict[str, float]]:
    """The hand-written loop; returns its completion times and its split (ms per trial)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from sklearn.datasets import load_iris
    from sklearn.model_selection import StratifiedKFold

    from core import MLPClassifier

    X, y = load_iris(return_X_y=True)
    folds = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, y))
    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/plain.db")
    experiment = client.create_experiment("plain", artifact_location=str(folder / "artifacts"))
    parent = client.create_run(experiment).info.run_id
    storage = JournalStorage(JournalFileBackend(str(folder / "plain.journal")))
    study = optuna.create_study(
        storage=storage, direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
    )
    split = dict.fromkeys(["ask", "tell", "mlflow", "objective"], 0.0)
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask()
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
            "hidden_units": trial.suggest_int("hidden_units", 2, 4),
            "hidden_layers": trial.suggest_int("hidden_layers", 1, 1),
            "iterations": trial.suggest_int("iterations", 1, 2),
            "activation": trial.suggest_categorical("activation", ["sigmoid", "tanh", "relu"]),
        }
        t1 = time.perf_counter()
        units, layers = params.pop("hidden_units"), params.pop("hidden_layers")
        net = dict(params, hidden_layer_sizes=(units,) * layers, random_state=0)
        score = float(
            np.mean([MLPClassifier(**net).fit(X[a], y[a]).score(X[b], y[b]) for a, b in folds])
        )
        t2 = time.perf_counter()
        study.tell(trial, score)
        t3 = time.perf_counter()
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent})
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("cv_accuracy_mean", score, now, 0)],
            params=[Param(k, str(v)) for k, v in trial.params.items()],
        )
        client.set_terminated(run.info.run_id)
        t4 = time.perf_counter()
        for key, seconds in zip(split, (t1 - t0, t3 - t2, t4 - t3, t2 - t1), strict=True):
            split[key] += seconds
    return completions_of(study), {k: v / trials * 1000 for k, v in split.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--points", type=int, nargs="+", default=[200, 1000, 1900])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--storage", choices=["journal", "postgresql", "grpc"], default="journal")
    parser.add_argument("--no-plain", action="store_true", help="the sweep only")
    parser.add_argument(
        "--writer",
        choices=["auto", "thread", "process"],
        default="auto",
        help="tracking.writer: who writes the trials' runs (auto: a process here, on 2+ cores)",
    )
    parser.add_argument(
        "--launcher",
        choices=["forked", "joblib"],
        default="forked",
        help="hydra/launcher of a multirun (--workers 2 or more)",
    )
    parser.add_argument("overrides", nargs="*", help="more of the sweep's overrides")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    proxies: list = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        try:
            storage = storage_url(args.storage, folder, proxies)
            started, wall, name = run_sweep(
                args.trials,
                args.workers,
                storage,
                folder,
                args.writer,
                extra=args.overrides,
                launcher=args.launcher,
            )
            study = optuna.load_study(study_name=name, storage=open_storage(storage, 10))
            sweep, held = completions_of(study), len(study.get_trials(deepcopy=False))
        finally:
            for proxy in proxies:
                proxy.terminate()
        print(
            f"sweep: {args.trials} trials, {args.workers} worker(s), {args.storage}, "
            f"tracking.writer={args.writer}, hydra/launcher={args.launcher}: {wall:.1f} s"
        )
        print(f"study holds {held} trials")
        print(
            f"first trial complete after {min(sweep) - started:.1f} s, last after "
            f"{max(sweep) - started:.1f} s, the command ended after {wall:.1f} s"
        )
        rows = [("sweep", sweep)]
        if not args.no_plain:
            plain, split = run_plain(args.trials, folder)
            rows.append(("plain loop", plain))
            print(
                "plain loop split, ms per trial: "
                + ", ".join(f"{k} {v:.1f}" for k, v in split.items())
            )
        print("| run | " + " | ".join(f"ms/trial around {p}" for p in args.points) + " |")
        print("|---|" + "---:|" * len(args.points))
        for label, times in rows:
            cells = [cost_around(times, p) for p in args.points]
            print(
                f"| {label} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |"
            )


if __name__ == "__main__":
    main()

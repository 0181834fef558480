"""TPE's cost per trial as a study grows, and what bounding its history costs the search.

    python benchmarks/bench_sampler.py cost --trials 3000 --history none 100 200 400
    python benchmarks/bench_sampler.py quality --trials 1000 --seeds 0 1 2 --history none 200

``cost``: ask + tell of an in-memory study with the default search space and a random value
(no objective), in ms per trial over each block of 250 trials. ``quality``: the best mean CV
accuracy of the core network on breast_cancer (3 stratified folds, adam, 10..100 iterations,
4..64 units, 1..2 layers) after the given number of trials, per sampler and seed; the same
folds and fits for every sampler, so only the sampler differs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from core import MLPClassifier
from core.errors import TrainingDivergedError
from pipeline.search.bounded_sampler import BoundedTPESampler

ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu"]


def sampler(history: str, seed: int) -> optuna.samplers.BaseSampler:
    bound = None if history == "none" else int(history)
    return BoundedTPESampler(seed=seed, n_startup_trials=10, history=bound)


def default_space(trial: optuna.Trial) -> None:
    trial.suggest_float("learning_rate", 1e-3, 0.1, log=True)
    trial.suggest_int("hidden_layers", 1, 3)
    trial.suggest_int("hidden_units", 16, 256, log=True)
    trial.suggest_int("iterations", 50, 500, step=10)
    trial.suggest_categorical("activation", ACTIVATIONS)


def cost(args) -> None:
    print("| history | " + " | ".join(f"{b}" for b in range(250, args.trials + 1, 250)) + " |")
    print("|---|" + "---:|" * (args.trials // 250))
    for history in args.history:
        study = optuna.create_study(direction="maximize", sampler=sampler(history, 0))
        rng = np.random.default_rng(0)
        row, start = [], time.perf_counter()
        for i in range(args.trials):
            trial = study.ask()
            default_space(trial)
            study.tell(trial, float(rng.random()))
            if (i + 1) % 250 == 0:
                now = time.perf_counter()
                row.append(f"{(now - start) / 250 * 1000:.1f}")
                start = now
        print(f"| {history} | " + " | ".join(row) + " |", flush=True)


def cv_objective(seed: int):
    X, y = load_breast_cancer(return_X_y=True)
    folds = []
    for train, test in StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y):
        scaler = StandardScaler().fit(X[train])
        folds.append((scaler.transform(X[train]), y[train], scaler.transform(X[test]), y[test]))

    def objective(trial: optuna.Trial) -> float:
        layers = trial.suggest_int("hidden_layers", 1, 2)
        units = trial.suggest_int("hidden_units", 4, 64, log=True)
        kwargs = dict(
            hidden_layer_sizes=(units,) * layers,
            learning_rate=trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
            iterations=trial.suggest_int("iterations", 10, 100, step=10),
            activation=trial.suggest_categorical("activation", ACTIVATIONS),
            solver="adam",
            random_state=seed,
        )
        scores = [MLPClassifier(**kwargs).fit(a, b).score(c, d) for a, b, c, d in folds]
        return float(np.mean(scores))

    return objective


def quality(args) -> None:
    print("| history | " + " | ".join(f"seed {s}" for s in args.seeds) + " | median | s |")
    print("|---|" + "---:|" * (len(args.seeds) + 2))
    for history in args.history:
        bests, start = [], time.perf_counter()
        for seed in args.seeds:
            study = optuna.create_study(direction="maximize", sampler=sampler(history, seed))
            study.optimize(cv_objective(seed), n_trials=args.trials, catch=(TrainingDivergedError,))
            bests.append(study.best_value)
        cells = " | ".join(f"{b:.4f}" for b in bests)
        seconds = time.perf_counter() - start
        print(f"| {history} | {cells} | {np.median(bests):.4f} | {seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["cost", "quality"])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--history", nargs="+", default=["none", "200"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cost(args) if args.part == "cost" else quality(args)


if __name__ == "__main__":
    main()

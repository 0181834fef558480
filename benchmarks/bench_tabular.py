"""Regression and mixed tables, measured against what a user would pick instead.

Two parts, each run side by side in one invocation:

1. diabetes (scikit-learn's bundled regression set): the default regression sweep,
   ``python -m pipeline.sweep dataset=diabetes`` (50 trials, 5 folds, TPE, the percentile pruner,
   cv.metric=rmse), against ``RandomizedSearchCV`` over
   ``make_pipeline(StandardScaler(), MLPRegressor())`` with scikit-learn's own MLP defaults
   (adam on mini-batches of 200, its convergence stop) on the same budget: as many configurations
   as trials, the same folds count, the same space (learning rate 1e-3..1e-1 log, 16..256 units
   log, 1..3 layers, 50..500 iterations as ``max_iter``, activation; scikit-learn has no leaky
   ReLU), ``n_jobs=-1``, the same training split. Wall time (ours from outside the process,
   start-up and the champion's refit and registration included; scikit-learn's around
   ``search.fit``), best CV RMSE and the champion's test R² and RMSE.
2. A table of mixed columns with missing values (made here: numbers, a true/false column, text
   columns with gaps, an id column), once with a categorical target (churn, scored by accuracy)
   and once with a numeric one (spend, rmse): the default sweep's champion on the test split
   against scikit-learn's ``HistGradientBoostingClassifier`` / ``HistGradientBoostingRegressor``
   with default settings (text columns as pandas categories, ``categorical_features="from_dtype"``),
   trained on the same training split: a reference point.

    .venv/bin/python benchmarks/bench_tabular.py [--trials 50] [--rows 3000] [--parts 1 2]

Prints markdown tables and writes them to benchmarks/results/tabular.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from scipy.stats import loguniform, randint
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score, root_mean_squared_error
from sklearn.model_selection import KFold, RandomizedSearchCV, train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.data import load_dataset, split_train_test
from tests.helpers import compose_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEST_SIZE, SEED, FOLDS = 0.2, 0, 5


def run_sweep(args: list[str], folder: Path) -> tuple[float, dict, str]:
    """The real entry point in ``folder``: wall seconds, the parent run's metrics, stdout."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.sweep", "progress_bar=false", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlp-sweep")
    (parent,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlp_sweep.role` = 'study'"
    )
    return wall, parent.data.metrics, result.stdout


def diabetes_part(trials: int) -> list[str]:
    """Part 1: the default regression sweep against RandomizedSearchCV(MLPRegressor)."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, metrics, _ = run_sweep(["dataset=diabetes", f"study.n_trials={trials}"], Path(tmp))
    cfg = compose_config(["dataset=diabetes"])
    split = split_train_test(load_dataset(cfg.dataset, SEED), TEST_SIZE, SEED)
    space = {
        "mlpregressor__learning_rate_init": loguniform(1e-3, 1e-1),
        "mlpregressor__hidden_layer_sizes": [
            (units,) * layers
            for units in np.unique(np.geomspace(16, 256, 12).astype(int))
            for layers in (1, 2, 3)
        ],
        "mlpregressor__max_iter": randint(50, 501),
        "mlpregressor__activation": ["logistic", "tanh", "relu"],
    }
    search = RandomizedSearchCV(
        make_pipeline(StandardScaler(), MLPRegressor(random_state=SEED)),
        space,
        n_iter=trials,
        cv=KFold(FOLDS, shuffle=True, random_state=SEED),
        scoring="neg_root_mean_squared_error",
        n_jobs=-1,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        search.fit(split.X_train, split.y_train)
        peer_wall = time.perf_counter() - started
    predicted = search.predict(split.X_test)
    peer_rmse = root_mean_squared_error(split.y_test, predicted)
    peer_r2 = r2_score(split.y_test, predicted)
    return [
        f"### diabetes: the default regression sweep against RandomizedSearchCV ({trials} "
        f"configurations, {FOLDS} folds)",
        "",
        "| | wall (s) | best CV RMSE | test RMSE | test R² |",
        "|---|---:|---:|---:|---:|",
        f"| `python -m pipeline.sweep dataset=diabetes study.n_trials={trials}` | {wall:.1f} | "
        f"{metrics['best_cv_rmse_mean']:.2f} | {metrics['test_rmse']:.2f} | "
        f"{metrics['test_r2']:.3f} |",
        f"| RandomizedSearchCV(StandardScaler + MLPRegressor) | {peer_wall:.1f} | "
        f"{-search.best_score_:.2f} | {peer_rmse:.2f} | {peer_r2:.3f} |",
        f"| ratio (sweep / scikit-learn) | {wall / peer_wall:.2f}x | | | |",
        "",
    ]


def mixed_table(rows: int, seed: int = SEED) -> pd.DataFrame:
    """People: an id, numbers, a true/false column, text columns with gaps; ``churn`` (text
    classes) and ``spend`` (a quantity) depend on them, partly through interactions."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.normal(40, 12, rows).round(),
            "income": rng.lognormal(10, 0.5, rows).round(-2),
            "visits": rng.poisson(3, rows),
            "member": rng.random(rows) > 0.5,
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille", "Nantes"], rows),
            "plan": rng.choice(["basic", "pro", "team", None], rows),
            "channel": rng.choice(["web", "shop", "phone"], rows, p=[0.6, 0.3, 0.1]),
        }
    )
    young = (table.age < 30).to_numpy()
    signal = (
        0.04 * (table.age - 40)
        + np.where(table.city == "Paris", 0.9, np.where(table.city == "Nice", -0.6, 0.0))
        + np.where(table.member & (table.plan == "pro"), 1.2, 0.0)
        + 0.25 * (table.visits - 3)
        - 0.6 * young * (table.channel == "phone")
    )
    table["churn"] = np.where(signal + rng.logistic(0, 0.6, rows) > 0.1, "yes", "no")
    table["spend"] = (
        20
        + 0.002 * table.income
        + 8 * table.visits
        + np.where(table.plan == "team", 35, np.where(table.plan == "pro", 20, 0))
        + np.where(table.member, 10, 0) * (table.city == "Lyon")
        + rng.normal(0, 8, rows)
    )
    for column, share in (("age", 0.08), ("income", 0.05), ("city", 0.05), ("channel", 0.03)):
        table.loc[rng.random(rows) < share, column] = None
    return table


def mixed_part(trials: int, rows: int) -> list[str]:
    """Part 2: the default sweep's champion on a mixed table against HistGradientBoosting."""
    table = mixed_table(rows)
    lines = [
        f"### A mixed table ({rows} rows: numbers, true/false, text with gaps, an id; "
        f"{trials} trials) against HistGradientBoosting with default settings",
        "",
        "| target | metric | sweep: test score | wall (s) | HistGradientBoosting: test score |",
        "|---|---|---:|---:|---:|",
    ]
    for target, other, metric in (("churn", "spend", "accuracy"), ("spend", "churn", "rmse")):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "people.csv"
            table.to_csv(path, index=False)
            args = [
                "dataset=csv",
                f"dataset.path={path}",
                f"dataset.target={target}",
                f"dataset.drop=[id,{other}]",
                f"study.n_trials={trials}",
            ]
            wall, metrics, _ = run_sweep(args, Path(tmp))
        features = table.drop(columns=["id", "churn", "spend"])
        for column in features.columns:
            if not pd.api.types.is_numeric_dtype(features[column]):  # text, with gaps
                features[column] = features[column].astype("category")
        y = table[target].to_numpy()
        stratify = y if metric == "accuracy" else None
        X_train, X_test, y_train, y_test = train_test_split(
            features, y, test_size=TEST_SIZE, stratify=stratify, random_state=SEED
        )
        if metric == "accuracy":
            peer = HistGradientBoostingClassifier(categorical_features="from_dtype")
            peer_score = accuracy_score(y_test, peer.fit(X_train, y_train).predict(X_test))
        else:
            peer = HistGradientBoostingRegressor(categorical_features="from_dtype")
            predicted = peer.fit(X_train, y_train).predict(X_test)
            peer_score = root_mean_squared_error(y_test, predicted)
        lines.append(
            f"| {target} | {metric} | {metrics[f'test_{metric}']:.4f} | {wall:.1f} | "
            f"{peer_score:.4f} |"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    lines = [
        f"## bench_tabular.py, {datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
        f"{os.cpu_count()} cores",
        "",
        f"    .venv/bin/python benchmarks/bench_tabular.py --trials {args.trials} "
        f"--rows {args.rows} --parts {' '.join(map(str, args.parts))}",
        "",
    ]
    print("\n".join(lines), flush=True)
    if 1 in args.parts:
        part = diabetes_part(args.trials)
        print("\n".join(part), flush=True)
        lines += part
    if 2 in args.parts:
        part = mixed_part(args.trials, args.rows)
        print("\n".join(part), flush=True)
        lines += part
    text = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tabular.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

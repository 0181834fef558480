"""Time to a good model: the sweep's running best against scikit-learn's searches, on digits.

Side by side in one invocation, for each seed, three commands, each timed from its start (the
clock starts when the command starts; imports and process start-up included):

- ``python -m pipeline.sweep study.n_trials=N`` with its defaults (a temp folder, its own stores);
- ``RandomizedSearchCV(make_pipeline(StandardScaler(), MLPClassifier()), n_iter=N, n_jobs=-1)``
  with scikit-learn's MLP defaults (adam, mini-batches of 200, stop when the training loss
  stalls) over the same space: learning rate 1e-3-1e-1 log, 16-256 units log, 1-3 layers,
  50-500 iterations, activation (scikit-learn's logistic, tanh, relu; it has no leaky ReLU);
- ``HalvingRandomSearchCV`` over the same, ``n_candidates=N``.

Both sides search the pipeline's own training split of digits (``cv.test_size=0.2``,
``study.seed``) with the very same folds (``pipeline.config.task.cv_splitter``). The sweep's
running best comes from its trials' completion times; RandomizedSearchCV's from a scorer that
notes the time each fold is scored (a configuration counts once all its folds are).
HalvingRandomSearchCV's best is known only at its end (its early rungs score on fewer samples).

Reports, per seed and as the median over seeds: each command's wall time and best CV accuracy,
when the sweep's running best came within ``--within`` of each peer's best, as a share of that
peer's wall time, and the sweep's champion's test accuracy; draws best CV against wall time.
``--variants`` adds sweeps with other settings, in the same run, to see what each part gives:
by default the former defaults (full batches for all ``iterations``, the percentile pruner
between folds only) and today's without checkpoint pruning.

    .venv/bin/python benchmarks/bench_time_to_model.py [--trials 64] [--seeds 0 1 2]
        [--within 0.002] [--sweep-args key=value ...] [--variants 'name: key=value ...' ...]

Writes benchmarks/results/time_to_model.md/.json/.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STUDY = "digits-mlp"
SCORES_ENV = "BENCH_SCORES_FILE"
VARIANTS = (
    "former defaults: model.batch_size=null model.n_iter_no_change=null pruner=percentile "
    "cv.checkpoints=[]",
    "no checkpoint pruning: cv.checkpoints=[]",
)


# ---- the peers (run as `python bench_time_to_model.py --peer NAME`, in their own process) ----


def timed_accuracy(estimator, X, y) -> float:
    """Accuracy, with the moment it was scored appended to the file named by SCORES_ENV."""
    score = float(np.mean(estimator.predict(X) == y))
    mlp = estimator[-1]
    key = json.dumps(
        [mlp.learning_rate_init, list(mlp.hidden_layer_sizes), mlp.max_iter, mlp.activation]
    )
    with open(os.environ[SCORES_ENV], "a") as out:
        out.write(f"{time.time()}\t{score}\t{key}\n")
    return score


def run_peer(name: str, trials: int, folds: int, seed: int) -> dict:
    """Fit one scikit-learn search; returns its best CV accuracy and its configurations."""
    import warnings

    from scipy.stats import loguniform
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingRandomSearchCV, RandomizedSearchCV
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipeline.config.task import cv_splitter

    X, y = train_split(seed)
    splits = list(cv_splitter("classification", folds, seed).split(X, y))
    space = {
        "mlpclassifier__learning_rate_init": loguniform(1e-3, 1e-1),
        "mlpclassifier__hidden_layer_sizes": HiddenLayerSizes(),
        "mlpclassifier__max_iter": [int(v) for v in range(50, 501, 10)],
        "mlpclassifier__activation": ["logistic", "tanh", "relu"],
    }
    model = make_pipeline(StandardScaler(), MLPClassifier(random_state=seed))
    warnings.simplefilter("ignore", ConvergenceWarning)
    os.environ["PYTHONWARNINGS"] = "ignore"  # the loky workers' ConvergenceWarnings
    if name == "randomized":
        search = RandomizedSearchCV(
            model, space, n_iter=trials, cv=splits, n_jobs=-1, random_state=seed,
            scoring=timed_accuracy, refit=False,
        )  # fmt: skip
    else:
        search = HalvingRandomSearchCV(
            model, space, n_candidates=trials, cv=splits, n_jobs=-1, random_state=seed,
            refit=False,
        )  # fmt: skip
    search.fit(X, y)
    return {"best": float(search.best_score_), "finished": time.time()}


class HiddenLayerSizes:
    """Layers uniform in 1-3, one shared width log-uniform in 16-256, as the sweep's space."""

    def rvs(self, random_state=None):
        rng = np.random.default_rng(random_state)
        layers = int(rng.integers(1, 4))
        units = round(float(np.exp(rng.uniform(np.log(15.5), np.log(256.5)))))
        return (int(np.clip(units, 16, 256)),) * layers


def train_split(seed: int):
    """The pipeline's own training split of digits (cv.test_size=0.2, study.seed=seed)."""
    from omegaconf import OmegaConf

    from pipeline.data import load_dataset, split_train_test

    dataset = load_dataset(OmegaConf.create({"name": "digits"}), seed)
    split = split_train_test(dataset, 0.2, seed)
    return split.X_train, split.y_train


# ---- the driver ----


def timed(command: list[str], cwd: str, env: dict | None = None) -> tuple[float, float, str]:
    """Run ``command``; its start (time.time()), wall seconds and output."""
    started_at, started = time.time(), time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return started_at, wall, done.stdout + done.stderr


def running_best(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(seconds, value) sorted by time -> (seconds, best value so far)."""
    best, out = -np.inf, []
    for seconds, value in sorted(points):
        best = max(best, value)
        out.append((seconds, best))
    return out


def reached(curve: list[tuple[float, float]], target: float) -> float | None:
    """The first second at which ``curve`` (a running best) is at least ``target``."""
    return next((seconds for seconds, best in curve if best >= target), None)


def sweep(trials: int, seed: int, extra: list[str]) -> dict:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with tempfile.TemporaryDirectory(prefix="bench-ttm-") as tmp:
        command = [
            sys.executable, "-m", "pipeline.sweep", "progress_bar=false",
            f"study.n_trials={trials}", f"study.seed={seed}", *extra,
        ]  # fmt: skip
        started_at, wall, output = timed(command, tmp)
        storage = JournalStorage(JournalFileBackend(str(Path(tmp) / "mlruns" / "optuna.journal")))
        study = optuna.load_study(study_name=STUDY, storage=storage)
        trials_ = study.get_trials(deepcopy=False)
        points = [
            (t.datetime_complete.timestamp() - started_at, t.value)
            for t in trials_
            if t.state == optuna.trial.TrialState.COMPLETE
        ]
        states = {}
        for t in trials_:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        first = min(t.datetime_start.timestamp() for t in trials_) - started_at
        last = max(t.datetime_complete.timestamp() for t in trials_) - started_at
        test = re.search(r"test accuracy ([0-9.]+)", output)
    return {
        "wall": wall,
        "best": max(v for _, v in points),
        "curve": running_best(points),
        "states": states,
        "first_trial_started": first,
        "last_trial_ended": last,
        "test_accuracy": float(test.group(1)) if test else None,
    }


def peer(name: str, trials: int, folds: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ttm-") as tmp:
        scores = Path(tmp) / "scores.tsv"
        scores.touch()
        env = {**os.environ, SCORES_ENV: str(scores), "PYTHONPATH": str(ROOT)}
        command = [
            sys.executable, str(Path(__file__).resolve()), "--peer", name,
            "--trials", str(trials), "--folds", str(folds), "--seeds", str(seed),
        ]  # fmt: skip
        started_at, wall, output = timed(command, tmp, env)
        result = json.loads(output.strip().splitlines()[-1])
        by_config: dict[str, list[tuple[float, float]]] = {}
        for line in scores.read_text().splitlines():
            when, score, key = line.split("\t")
            by_config.setdefault(key, []).append((float(when) - started_at, float(score)))
    points = [
        (max(w for w, _ in folds_), float(np.mean([s for _, s in folds_])))
        for folds_ in by_config.values()
        if len(folds_) == folds
    ]
    curve = running_best(points) if points else [(wall, result["best"])]
    return {"wall": wall, "best": result["best"], "curve": curve}


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    colours = {"sweep": "C0", "randomized": "C1", "halving": "C2"}
    labels = {
        "sweep": "mlp-sweep (defaults)",
        "randomized": "RandomizedSearchCV",
        "halving": "HalvingRandomSearchCV (best known at its end)",
    }
    for index, run in enumerate(runs):
        for name, result in run["results"].items():
            seconds, best = zip(*result["curve"], strict=True)
            label = labels[name] if index == 0 else None
            if name == "halving":
                axes.plot([result["wall"]], [result["best"]], "o", color=colours[name], label=label)
            else:
                axes.step(seconds, best, where="post", color=colours[name], alpha=0.8, label=label)
                axes.plot([result["wall"]], [best[-1]], "|", color=colours[name], markersize=12)
    for index, run in enumerate(runs):
        for number, (name, variant) in enumerate(run.get("variants", {}).items()):
            seconds, best = zip(*variant["result"]["curve"], strict=True)
            label = f"mlp-sweep, {name}" if index == 0 else None
            style = dict(color=f"C{3 + number}", alpha=0.6, linestyle="--")
            axes.step(seconds, best, where="post", label=label, **style)
    axes.set_xlabel("wall time since the command started (s)")
    axes.set_ylabel("best CV accuracy so far")
    axes.set_ylim(0.94, 0.99)
    axes.set_title(f"digits, 5 folds, {len(runs)} seeds (| = the command's end)")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--within", type=float, default=0.002)
    parser.add_argument("--sweep-args", nargs="*", default=[])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--peer", choices=["randomized", "halving"], help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(run_peer(args.peer, args.trials, args.folds, args.seeds[0])))
        return

    runs = []
    for seed in args.seeds:
        results = {
            "randomized": peer("randomized", args.trials, args.folds, seed),
            "halving": peer("halving", args.trials, args.folds, seed),
            "sweep": sweep(args.trials, seed, args.sweep_args),
        }
        mine = results["sweep"]
        run = {"seed": seed, "results": results, "load": os.getloadavg()[0], "variants": {}}
        for variant in args.variants:
            name, overrides = variant.split(":", 1)
            other = sweep(args.trials, seed, [*args.sweep_args, *overrides.split()])
            run["variants"][name] = {
                "result": other,
                **{
                    f"reached_{peer_name}": reached(
                        other["curve"], results[peer_name]["best"] - args.within
                    )
                    for peer_name in ("randomized", "halving")
                },
            }
        for name in ("randomized", "halving"):
            at = reached(mine["curve"], results[name]["best"] - args.within)
            run[f"reached_{name}"] = at
            run[f"share_{name}"] = None if at is None else at / results[name]["wall"]
        runs.append(run)
        print(summary_line(run), flush=True)
    report(args, runs)


def summary_line(run: dict) -> str:
    r = run["results"]
    shares = ", ".join(f"{name} {fmt(run[f'share_{name}'])}x" for name in ("randomized", "halving"))
    return (
        f"seed {run['seed']}: sweep {r['sweep']['wall']:.1f} s best {r['sweep']['best']:.4f} "
        f"test {fmt(r['sweep']['test_accuracy'], 4)} | randomized {r['randomized']['wall']:.1f} s "
        f"{r['randomized']['best']:.4f} | halving {r['halving']['wall']:.1f} s "
        f"{r['halving']['best']:.4f} | reached at {shares} of their wall"
    )


def variant_row(label: str, entries: list[tuple[dict, dict]], key: str) -> str:
    results = [e["result"] if "result" in e else e for e, _ in entries]

    def reached_of(peer_name):
        if key == "sweep":
            return median_reached([run[f"reached_{peer_name}"] for _, run in entries])
        return median_reached([e[f"reached_{peer_name}"] for e, _ in entries])

    return (
        f"| {label} | {median([r['wall'] for r in results]):.1f} | "
        f"{median([r['best'] for r in results]):.4f} | "
        f"{fmt(median([r['test_accuracy'] for r in results]), 4)} | "
        f"{seconds(reached_of('randomized'))} | {seconds(reached_of('halving'))} |"
    )


def fmt(value, digits=2) -> str:
    return "never" if value is None else f"{value:.{digits}f}"


def median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def median_reached(values):
    """The median of moments of which some may be None (never): never counts as after all."""
    middle = float(np.median([np.inf if v is None else v for v in values]))
    return None if np.isinf(middle) else middle


def seconds(value) -> str:
    return "never" if value is None else f"{value:.1f} s"


def times(value) -> str:
    return "never" if value is None else f"{value:.2f}x"


def report(args, runs: list[dict]) -> None:
    lines = [
        f"digits, {args.folds} folds, {args.trials} trials/configurations, seeds {args.seeds}, "
        f"within {args.within}; {platform.node()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| | wall (s) | best CV | the sweep's running best reached it at | share of its wall |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("randomized", "RandomizedSearchCV"),
        ("halving", "HalvingRandomSearchCV"),
        ("sweep", "mlp-sweep"),
    ):
        wall = median([r["results"][name]["wall"] for r in runs])
        best = median([r["results"][name]["best"] for r in runs])
        at = median_reached([r.get(f"reached_{name}") for r in runs]) if name != "sweep" else None
        share = median_reached([r.get(f"share_{name}") for r in runs]) if name != "sweep" else None
        at_text = "" if name == "sweep" else seconds(at)
        share_text = "" if name == "sweep" else times(share)
        lines.append(f"| {label} | {wall:.1f} | {best:.4f} | {at_text} | {share_text} |")
    sweep_runs = [r["results"]["sweep"] for r in runs]
    if runs[0]["variants"]:
        lines += [
            "",
            "The sweep with other settings, in the same run (medians; seconds from the command's "
            "start until its running best came within the margin of each peer's best):",
            "",
            "| sweep | wall (s) | best CV | test accuracy | reached RandomizedSearchCV's | "
            "reached HalvingRandomSearchCV's |",
            "|---|---:|---:|---:|---:|---:|",
            variant_row("defaults", [(r["results"]["sweep"], r) for r in runs], "sweep"),
        ]
        for name in runs[0]["variants"]:
            lines.append(variant_row(name, [(r["variants"][name], r) for r in runs], name))
    lines += [
        "",
        "Medians over the seeds. Per seed:",
        "",
        *[f"- {summary_line(r)}" for r in runs],
        "",
        f"The sweep's first trial started at {median([s['first_trial_started'] for s in sweep_runs]):.1f} s "
        f"and its last ended at {median([s['last_trial_ended'] for s in sweep_runs]):.1f} s "
        f"(median); trial states: {[s['states'] for s in sweep_runs]}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "time_to_model.md").write_text(text + "\n")
    (RESULTS / "time_to_model.json").write_text(json.dumps(runs, indent=1))
    plot(runs, RESULTS / "time_to_model.png")
    print(f"wrote {RESULTS / 'time_to_model.md'}, .json, .png")


if __name__ == "__main__":
    main()

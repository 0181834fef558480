"""The whole sweep, measured: against scikit-learn's RandomizedSearchCV, its overhead, its pruning.

Three parts, run side by side in one invocation on digits (the pipeline's own stratified
train split; the sklearn side gets the very same rows and the very same StratifiedKFold folds):

1. Equal budget (trials x folds x iterations over the same space): ``python -m pipeline.sweep``
   with ``model.solver=gd``, random sampling (pruner off, then the default pruner) and the
   default sampler (TPE) and pruner, and the pruned random run once more with one trial at a
   time (``study.trials_in_flight=1``, what overlapping two trials gains), against
   ``RandomizedSearchCV(MLPClassifier(solver="sgd", full batch, momentum 0, ...), n_jobs=-1)``
   and against ``GridSearchCV`` over exactly the configurations our random sampler drew (the
   same networks, folds and iterations: equal work, where two random draws differ in cost).
   Our side runs the real entry point as a subprocess in a temp folder; its wall time is measured
   from outside (process start-up, Hydra, Optuna, MLflow, the champion refit and registration
   included). scikit-learn's side runs in this process and is timed around ``search.fit``
   (refit of the best included, imports and process start-up not): a handicap for our side.
2. Overhead of every run of ours: fitting = (sum of the trials' ``fit_seconds`` user attr + the
   champion's ``refit_seconds`` metric) / cores, the rest of the wall time is overhead; CPU use =
   the child's user+sys time (``os.wait4``, loky workers included once reaped) / (wall x cores);
   the CPU spent on anything but those fits (imports, Hydra, Optuna, MLflow, plots, folds of
   pruned trials cut short) and the overhead share that would remain if both cores never idled
   (fitting / CPU: the floor that scheduling alone cannot go below); the wall time split into
   start-up (process start to the first trial), the trial loop and the end (champion refit,
   registration, exit); the seconds of fitting pruning threw away (the parent run's
   ``discarded_fit_seconds``: folds cut short) and the overhead share if those count as
   fitting; and the share of the wall time in which no model was fitting on any core (the
   parent run's ``fitting_wall_seconds``, the union of the folds' fit spans, plus the champion's
   refit): the serial part, start-up, end and whatever the trial loop did not overlap with
   fitting. ``--default-run`` adds the default command (no overrides) as a row.
3. Pruning on vs off at the same seed and budget (default search space, default solver adam):
   fold fits saved, fitting seconds saved (cut-short folds included) and the best score, per
   pruner; TPE (the default sampler) for several seeds,
   and a paired check with the random sampler, whose trial ``i`` has the same parameters in every
   run: is the best trial of the unpruned run pruned?

    .venv/bin/python benchmarks/bench_sweep.py [--quick] [--trials 30] [--folds 5] [--seed 0]
        [--prune-trials 40] [--prune-seeds 0 1] [--parts 1 2 3]

Prints markdown tables and writes them with the raw figures to benchmarks/results/sweep.md/.json.
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
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
from omegaconf import OmegaConf
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from scipy.stats import loguniform
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.data import load_dataset, split_train_test
from pipeline.names import PARENT_RUN_ATTR

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CORES = os.cpu_count() or 1
STUDY = "digits-mlp"
SKLEARN_ACTIVATION = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}  # no leaky_relu


@dataclass
class Space:
    """The equal-budget search space, given to both sides."""

    lr_low: float = 0.01
    lr_high: float = 1.0
    units_low: int = 16
    units_high: int = 256
    layers_low: int = 1
    layers_high: int = 3
    iter_low: int = 50
    iter_high: int = 300
    iter_step: int = 10
    activations: tuple[str, ...] = ("relu", "tanh", "sigmoid")

    def overrides(self) -> list[str]:
        """The same space as Hydra overrides of conf/search_space/default.yaml."""
        return [
            f"search_space.learning_rate.low={self.lr_low}",
            f"search_space.learning_rate.high={self.lr_high}",
            f"search_space.hidden_units.low={self.units_low}",
            f"search_space.hidden_units.high={self.units_high}",
            f"search_space.hidden_layers.low={self.layers_low}",
            f"search_space.hidden_layers.high={self.layers_high}",
            f"search_space.iterations.low={self.iter_low}",
            f"search_space.iterations.high={self.iter_high}",
            f"search_space.iterations.step={self.iter_step}",
            f"search_space.activation.choices=[{','.join(self.activations)}]",
        ]


@dataclass
class PipelineRun:
    """One ``python -m pipeline.sweep`` process and what its Optuna study says."""

    label: str
    overrides: list[str]
    wall: float
    cpu_seconds: float
    returncode: int
    best_value: float | None = None
    test_accuracy: float | None = None
    states: dict[str, int] = field(default_factory=dict)
    folds_reported: int = 0
    fit_seconds: float = 0.0  # the trials' folds
    refit_seconds: float = 0.0  # the champion's fit on the whole training split
    discarded_seconds: float = 0.0  # folds cut short when their trial was pruned (or failed)
    fitting_wall_seconds: float = 0.0  # wall time with some fold fitting (the trial loop's)
    startup: float = 0.0  # process start -> first trial start
    loop: float = 0.0  # first trial start -> last trial end
    ending: float = 0.0  # last trial end -> process exit (champion refit, registration)
    trials: list[dict] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after

    @property
    def cpu_use(self) -> float:
        return self.cpu_seconds / (self.wall * CORES)

    @property
    def overhead(self) -> float:
        return 1.0 - self.fitting / (CORES * self.wall)

    @property
    def fitting(self) -> float:
        return self.fit_seconds + self.refit_seconds

    @property
    def overhead_if_discarded_is_fitting(self) -> float:
        """The overhead share when the fitting that pruning threw away counts as fitting."""
        return 1.0 - (self.fitting + self.discarded_seconds) / (CORES * self.wall)

    @property
    def nothing_fitting(self) -> float:
        """The share of the wall time during which no model was being fitted on any core: the
        fold spans' union plus the champion's refit (which runs after the last fold)."""
        return 1.0 - (self.fitting_wall_seconds + self.refit_seconds) / self.wall

    @property
    def overhead_floor(self) -> float:
        """The overhead share if every CPU second were spent with both cores busy."""
        return 1.0 - self.fitting / self.cpu_seconds


@dataclass
class Process:
    """A child process measured from outside: wall, CPU, 1-minute load average around it."""

    wall: float
    cpu_seconds: float
    returncode: int
    output: str
    started_at: float
    load_before: float
    load_after: float


def run_process(command: list[str], cwd: str) -> Process:
    log = Path(cwd) / "process.log"
    load_before = os.getloadavg()[0]
    with open(log, "w") as out:
        started_at = time.time()
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        # wait4 gives this child's own rusage (with its reaped loky workers), unlike
        # RUSAGE_CHILDREN, which would also hold earlier children of this process.
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    return Process(
        wall,
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
        log.read_text(),
        started_at,
        load_before,
        os.getloadavg()[0],
    )


def run_pipeline(label: str, overrides: list[str]) -> PipelineRun:
    """Run the real CLI in a fresh temp folder; time it and its CPU from outside."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        command = [sys.executable, "-m", "pipeline.sweep", "progress_bar=false", *overrides]
        proc = run_process(command, tmp)
        run = PipelineRun(label, overrides, proc.wall, proc.cpu_seconds, proc.returncode)
        run.load = (proc.load_before, proc.load_after)
        if proc.returncode != 0:
            print(proc.output[-3000:], file=sys.stderr)
            return run
        match = re.search(r"test accuracy ([0-9.]+)", proc.output)
        run.test_accuracy = float(match.group(1)) if match else None
        storage = JournalStorage(JournalFileBackend(str(Path(tmp) / "mlruns" / "optuna.journal")))
        study = optuna.load_study(study_name=STUDY, storage=storage)
        read_study(run, study, proc.started_at)
        run.refit_seconds = parent_metric(Path(tmp), study, "refit_seconds")
        run.discarded_seconds = parent_metric(Path(tmp), study, "discarded_fit_seconds")
        run.fitting_wall_seconds = parent_metric(Path(tmp), study, "fitting_wall_seconds")
    return run


def parent_metric(folder: Path, study: optuna.Study, name: str) -> float:
    """A metric of the study's MLflow parent run in the sweep's default local store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    return client.get_run(study.user_attrs[PARENT_RUN_ATTR]).data.metrics.get(name, 0.0)


def read_study(run: PipelineRun, study: optuna.Study, started_at: float) -> None:
    trials = study.get_trials(deepcopy=False)
    run.states = {
        s.name.lower(): sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    run.best_value = study.best_value if run.states["complete"] else None
    run.folds_reported = sum(len(t.intermediate_values) for t in trials)
    run.fit_seconds = sum(float(t.user_attrs.get("fit_seconds", 0.0)) for t in trials)
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials).timestamp()
    run.startup, run.loop = first - started_at, last - first
    run.ending = run.wall - run.startup - run.loop
    run.trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "folds": len(t.intermediate_values),
            "fit_seconds": t.user_attrs.get("fit_seconds"),
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds(),
        }
        for t in trials
    ]


class HiddenLayerSizes:
    """``hidden_layer_sizes`` drawn like our search space: layers uniform, one shared width
    log-uniform (an object with ``rvs`` is what ParameterSampler accepts as a distribution)."""

    def __init__(self, space: Space):
        self.space = space

    def rvs(self, random_state: np.random.RandomState) -> tuple[int, ...]:
        space = self.space
        layers = int(random_state.randint(space.layers_low, space.layers_high + 1))
        low, high = np.log(space.units_low - 0.5), np.log(space.units_high + 0.5)
        units = round(np.exp(random_state.uniform(low, high)))
        return (int(np.clip(units, space.units_low, space.units_high)),) * layers


def run_sklearn(
    split, space: Space, trials: int, folds: int, seed: int, configs: list[dict] | None = None
) -> dict:
    """RandomizedSearchCV with full-batch plain SGD, the same budget, folds and rows as ours.

    With ``configs`` (our trials' parameters), GridSearchCV over exactly those configurations
    instead: the same networks, folds and iterations on both sides, so that the wall times
    compare equal work rather than two different random draws.
    """
    estimator = make_pipeline(
        StandardScaler(),
        SklearnMLP(
            solver="sgd",
            batch_size=len(split.y_train),  # larger than any fold: full batch
            momentum=0.0,
            nesterovs_momentum=False,
            learning_rate="constant",
            alpha=0.0,  # ours: model.alpha=0
            tol=0.0,
            n_iter_no_change=space.iter_high + 1,
            early_stopping=False,
            shuffle=False,
            random_state=seed,
        ),
    )
    distributions = {
        "mlpclassifier__learning_rate_init": loguniform(space.lr_low, space.lr_high),
        "mlpclassifier__hidden_layer_sizes": HiddenLayerSizes(space),
        "mlpclassifier__max_iter": list(
            range(space.iter_low, space.iter_high + 1, space.iter_step)
        ),
        "mlpclassifier__activation": [SKLEARN_ACTIVATION[a] for a in space.activations],
    }
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if configs is None:
        search = RandomizedSearchCV(
            estimator,
            distributions,
            n_iter=trials,
            cv=splitter,
            n_jobs=-1,
            random_state=seed,
            error_score=np.nan,  # a diverged fit scores NaN, like our failed trials
        )
    else:
        points = [
            {
                "mlpclassifier__learning_rate_init": [c["learning_rate"]],
                "mlpclassifier__hidden_layer_sizes": [(c["hidden_units"],) * c["hidden_layers"]],
                "mlpclassifier__max_iter": [c["iterations"]],
                "mlpclassifier__activation": [SKLEARN_ACTIVATION[c["activation"]]],
            }
            for c in configs
        ]
        search = GridSearchCV(estimator, points, cv=splitter, n_jobs=-1, error_score=np.nan)
    # max_iter reached is the point of a fixed budget; the loky workers inherit this filter.
    os.environ["PYTHONWARNINGS"] = "ignore::UserWarning"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        started = time.perf_counter()
        search.fit(split.X_train, split.y_train)
        wall = time.perf_counter() - started
    os.environ.pop("PYTHONWARNINGS")
    scores = search.cv_results_["mean_test_score"]
    return {
        "wall": wall,
        "best_value": float(search.best_score_),
        "test_accuracy": float(search.score(split.X_test, split.y_test)),
        "failed": int(np.isnan(scores).sum()),
        "best_params": {k.split("__")[1]: str(v) for k, v in search.best_params_.items()},
    }


def run_sklearn_process(args, configs: list[dict] | None = None) -> dict:
    """run_sklearn in a child process of this script, measured from outside like ours."""
    with tempfile.TemporaryDirectory(prefix="bench-sklearn-") as tmp:
        out = Path(tmp) / "sklearn.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--sklearn-child", str(out)]
        command += ["--trials", str(args.trials), "--folds", str(args.folds)]
        command += ["--seed", str(args.seed), *(["--quick"] if args.quick else [])]
        if configs is not None:
            (Path(tmp) / "configs.json").write_text(json.dumps(configs))
            command += ["--sklearn-configs", str(Path(tmp) / "configs.json")]
        proc = run_process(command, tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"scikit-learn side failed:\n{proc.output[-3000:]}")
        result = json.loads(out.read_text())
    result.update(
        search_fit_wall=result.pop("wall"),
        wall=proc.wall,
        cpu_seconds=proc.cpu_seconds,
        load=(proc.load_before, proc.load_after),
    )
    return result


def train_split(seed: int):
    """The pipeline's own train/test split of digits (cv.test_size=0.2, study.seed)."""
    return split_train_test(load_dataset(OmegaConf.create({"name": "digits"}), seed), 0.2, seed)


def startup_seconds() -> float:
    """Importing the entry point (Hydra, Optuna, MLflow, sklearn, core) in a fresh process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pipeline.sweep"], check=True, cwd=ROOT)
    return time.perf_counter() - started


def fmt(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def part_equal_budget(args, space: Space) -> tuple[list[str], dict, list[PipelineRun]]:
    common = [
        "model.solver=gd",
        "model.batch_size=null",  # full batches for every iteration, as the sklearn side
        "model.n_iter_no_change=null",
        "model.alpha=0.0",
        f"study.seed={args.seed}",
        f"study.n_trials={args.trials}",
        f"cv.folds={args.folds}",
        "cv.n_jobs=-1",
        *space.overrides(),
    ]
    print(f"part 1: scikit-learn RandomizedSearchCV, {args.trials} trials x {args.folds} folds")
    sk = run_sklearn_process(args)
    runs = []
    # Random sampling as scikit-learn's, then the pipeline as a user runs it: its default
    # sampler (TPE) and pruner. The random sampler draws the same configurations with and
    # without pruning (same seed), but not scikit-learn's (other generators).
    # Last, the pruned random row with one trial at a time (study.trials_in_flight=1): what
    # overlapping two trials (the default) gains.
    plans = [
        ("random", "none", []),
        ("random", args.default_pruner, []),
        ("tpe", None, []),
        ("random", args.default_pruner, ["study.trials_in_flight=1"]),
    ]
    for sampler, pruner, extra in plans:
        chosen = [f"sampler={sampler}"] + ([f"pruner={pruner}"] if pruner else []) + extra
        label = f"ours, sampler={sampler}, pruner={pruner or 'default'}"
        if extra:
            label += ", one trial at a time"
        print(f"part 1: python -m pipeline.sweep {' '.join(chosen)}")
        runs.append(run_pipeline(label, [*common, *chosen]))
    # So scikit-learn also fits exactly our random configurations: equal work on both sides.
    configs = [t["params"] for t in sorted(runs[0].trials, key=lambda t: t["number"])]
    print(f"part 1: scikit-learn GridSearchCV over those {len(configs)} configurations")
    same = run_sklearn_process(args, configs)
    lines = [
        f"### 1. Equal budget: {args.trials} trials x {args.folds} folds, iterations "
        f"{space.iter_low}..{space.iter_high}, learning rate {space.lr_low}..{space.lr_high} "
        f"(log), {space.units_low}..{space.units_high} units (log) x {space.layers_low}.."
        f"{space.layers_high} layers, activation {'/'.join(space.activations)}",
        "",
        "Ratios: against RandomizedSearchCV (its own random draws), and for the random-sampling "
        "rows against GridSearchCV over exactly our configurations (equal work).",
        "",
        "| run | wall s | wall ratio ours/sklearn | ... same configurations | CPU s (user+sys) | "
        "best CV accuracy | CV ratio ours/sklearn | ... same configurations | test accuracy | "
        "trials complete/pruned/failed | fold fits | load avg before/after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, result in (
        ("scikit-learn RandomizedSearchCV (sgd, full batch, momentum 0), n_jobs=-1", sk),
        ("scikit-learn GridSearchCV over ours' random configurations, n_jobs=-1", same),
    ):
        lines.append(
            f"| {name}; search.fit alone {result['search_fit_wall']:.1f} s | "
            f"{result['wall']:.1f} | {result['wall'] / sk['wall']:.2f} | "
            f"{result['wall'] / same['wall']:.2f} | {result['cpu_seconds']:.1f} | "
            f"{result['best_value']:.4f} | {result['best_value'] / sk['best_value']:.3f} | "
            f"{result['best_value'] / same['best_value']:.3f} | "
            f"{result['test_accuracy']:.4f} | {args.trials - result['failed']}/0/"
            f"{result['failed']} | {args.trials * args.folds} | "
            f"{result['load'][0]:.1f}/{result['load'][1]:.1f} |"
        )
    for run in runs:
        ratio = run.best_value / sk["best_value"] if run.best_value else None
        equal = "random" in run.label  # our random configurations are the grid's
        same_wall = f"{run.wall / same['wall']:.2f}" if equal else "-"
        same_cv = fmt(run.best_value / same["best_value"]) if equal and run.best_value else "-"
        lines.append(
            f"| {run.label} (model.solver=gd) | {run.wall:.1f} | "
            f"{run.wall / sk['wall']:.2f} | {same_wall} | {run.cpu_seconds:.1f} | "
            f"{fmt(run.best_value, 4)} | {fmt(ratio)} | {same_cv} | "
            f"{fmt(run.test_accuracy, 4)} | {run.states.get('complete')}/"
            f"{run.states.get('pruned')}/{run.states.get('fail')} | {run.folds_reported} | "
            f"{run.load[0]:.1f}/{run.load[1]:.1f} |"
        )
    lines += [
        "",
        f"scikit-learn RandomizedSearchCV's best: {sk['best_params']}",
        f"scikit-learn GridSearchCV's best (our configurations): {same['best_params']}",
        *[f"{run.label} best: {best_params(run)}" for run in runs],
    ]
    raw = {"sklearn": sk, "sklearn_same_configurations": same, "ours": [asdict(r) for r in runs]}
    return lines, raw, runs


def best_params(run: PipelineRun) -> dict | None:
    done = [t for t in run.trials if t["state"] == "COMPLETE"]
    return max(done, key=lambda t: t["value"])["params"] if done else None


def part_overhead(runs: list[PipelineRun], startup: float) -> list[str]:
    lines = [
        f"### 2. Time outside model fitting ({CORES} cores; import of pipeline.sweep in a "
        f"fresh process: {startup:.2f} s)",
        "",
        "| run | wall s | fit s (folds + champion) | fit s / cores | outside fitting | "
        "CPU use (user+sys / wall x cores) | CPU s not fitting | outside fitting if no core "
        "idled | start-up s | trial loop s | end s | fit share of loop | discarded fits s | "
        "outside fitting, discarded fits counted as fitting | wall time with no model fitting "
        "on any core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if run.returncode != 0:
            continue
        lines.append(
            f"| {run.label} | {run.wall:.1f} | {run.fit_seconds:.1f} + {run.refit_seconds:.1f} | "
            f"{run.fitting / CORES:.1f} | {run.overhead:.0%} | {run.cpu_use:.0%} | "
            f"{run.cpu_seconds - run.fitting:.1f} | {run.overhead_floor:.0%} | "
            f"{run.startup:.1f} | {run.loop:.1f} | {run.ending:.1f} | "
            f"{run.fit_seconds / CORES / run.loop:.0%} | {run.discarded_seconds:.1f} | "
            f"{run.overhead_if_discarded_is_fitting:.0%} | {run.nothing_fitting:.0%} |"
        )
    return lines


def part_pruning(args) -> tuple[list[str], list[dict], list[PipelineRun]]:
    pruners = args.pruners
    records, unpruned = [], []
    plans = [("tpe", seed) for seed in args.prune_seeds] + [("random", args.prune_seeds[0])]
    for sampler, seed in plans:
        runs = {}
        for pruner in pruners:
            print(f"part 3: sampler={sampler} seed={seed} pruner={pruner}")
            runs[pruner] = run_pipeline(
                f"default space, sampler={sampler}, seed={seed}, pruner={pruner}",
                [
                    f"sampler={sampler}",
                    f"pruner={pruner}",
                    f"study.seed={seed}",
                    f"study.n_trials={args.prune_trials}",
                    f"cv.folds={args.folds}",
                    *args.prune_extra,
                ],
            )
        base = runs["none"]
        unpruned.append(base)
        # The paired check: with the random sampler, trial i is the same configuration in every
        # run, so the unpruned run's best trial can be looked up in each pruned run.
        best = max(
            (t for t in base.trials if t["state"] == "COMPLETE"),
            key=lambda t: t["value"],
            default=None,
        )
        for pruner, run in runs.items():
            budget = args.prune_trials * args.folds
            workers = min(CORES, args.folds)
            # A pruned trial's fold still running on another worker is fitted to the end and
            # thrown away: count it as fitted (an upper bound).
            fitted = run.folds_reported + run.states.get("pruned", 0) * (workers - 1)
            record = {
                "sampler": sampler,
                "seed": seed,
                "pruner": pruner,
                "wall": run.wall,
                "best_value": run.best_value,
                "test_accuracy": run.test_accuracy,
                "states": run.states,
                "folds_reported": run.folds_reported,
                "folds_fitted_upper": min(fitted, budget),
                "fits_saved": 1 - min(fitted, budget) / budget,
                # In seconds of fitting, the folds that pruning cut short included.
                "fit_time_saved": 1
                - (run.fit_seconds + run.discarded_seconds)
                / (base.fit_seconds + base.discarded_seconds),
                "wall_saved": 1 - run.wall / base.wall,
                "best_diff": (run.best_value or 0) - (base.best_value or 0),
                "run": asdict(run),
            }
            if sampler == "random" and best is not None:
                paired = next(t for t in run.trials if t["number"] == best["number"])
                record["unpruned_best_state"] = paired["state"]
                top = sorted(
                    (t for t in base.trials if t["state"] == "COMPLETE"),
                    key=lambda t: -t["value"],
                )[:5]
                record["top5_pruned"] = sum(
                    run.trials[t["number"]]["state"] == "PRUNED" for t in top
                )
            records.append(record)
    lines = [
        f"### 3. Pruning on vs off: {args.prune_trials} trials x {args.folds} folds, default "
        "search space and solver (adam)",
        "",
        "fits saved counts a pruned trial's fold still running on the other worker as fitted "
        "(upper bound on the work done); fit time saved compares seconds of fitting, the "
        "folds cut short by pruning (`discarded_fit_seconds`) included.",
        "",
        "| sampler | seed | pruner | wall s | wall saved | fold fits (reported / upper) | "
        "fits saved | fit time saved | best CV accuracy | best - unpruned | test accuracy | "
        "complete/pruned/failed | unpruned best trial here | unpruned top-5 pruned |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in records:
        s = r["states"]
        lines.append(
            f"| {r['sampler']} | {r['seed']} | {r['pruner']} | {r['wall']:.1f} | "
            f"{r['wall_saved']:.0%} | {r['folds_reported']} / {r['folds_fitted_upper']} | "
            f"{r['fits_saved']:.0%} | {r['fit_time_saved']:.0%} | {fmt(r['best_value'], 4)} | "
            f"{r['best_diff']:+.4f} | "
            f"{fmt(r['test_accuracy'], 4)} | {s.get('complete')}/{s.get('pruned')}/"
            f"{s.get('fail')} | {r.get('unpruned_best_state', '-')} | "
            f"{r.get('top5_pruned', '-')} |"
        )
    lines += ["", *pruning_summary(records, pruners)]
    return lines, records, unpruned


def pruning_summary(records: list[dict], pruners) -> list[str]:
    lines = [
        "| pruner | mean fits saved | mean fit time saved | mean wall saved | mean best - "
        "unpruned | worst best - unpruned |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for pruner in pruners:
        rows = [r for r in records if r["pruner"] == pruner]
        diffs = [r["best_diff"] for r in rows]
        lines.append(
            f"| {pruner} | {np.mean([r['fits_saved'] for r in rows]):.0%} | "
            f"{np.mean([r['fit_time_saved'] for r in rows]):.0%} | "
            f"{np.mean([r['wall_saved'] for r in rows]):.0%} | {np.mean(diffs):+.4f} | "
            f"{min(diffs):+.4f} |"
        )
    return lines


def header(args) -> list[str]:
    import sklearn

    return [
        "# The sweep: benchmarks",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}; {platform.processor() or platform.machine()}, "
        f"{CORES} cores; Python {platform.python_version()}; numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, optuna {optuna.__version__}; "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}.",
        "Data: digits, the pipeline's stratified 80% train split (seed "
        f"{args.seed}), StratifiedKFold(shuffle, seed {args.seed}) on both sides. Both sides run "
        "as child processes timed from outside with `os.wait4` (wall, and user+sys CPU of the "
        "process and its reaped loky workers): ours is the CLI `python -m pipeline.sweep` in a "
        "temp folder (start-up, Hydra, Optuna, MLflow logging of every trial and its model, "
        "champion refit, test score and registration included); scikit-learn's is this script "
        "in `--sklearn-child` mode (imports, data, RandomizedSearchCV with its refit, test "
        "score). Single runs on a machine other people use: the 1-minute load average before "
        "and after each run is shown; compare within one invocation.",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/bench_sweep.py', *sys.argv[1:]])}`",
        "",
    ]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run to check the script")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prune-trials", type=int, default=40)
    parser.add_argument("--prune-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--pruners",
        nargs="+",
        default=["none", "wilcoxon", "median", "hyperband", "percentile"],
        help="part 3's pruner configs (conf/pruner/); 'none' first: the others are compared to it",
    )
    parser.add_argument("--default-pruner", default="percentile", help="the second row of part 1")
    parser.add_argument(
        "--default-run", action="store_true", help="part 2: also the default command, as is"
    )
    parser.add_argument("--sklearn-child", metavar="OUT_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--sklearn-configs", metavar="IN_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.prune_extra = []
    args.space = Space()
    if args.quick:
        args.trials, args.folds, args.prune_trials, args.prune_seeds = 6, 3, 8, [0]
        args.space = Space(units_high=64, layers_high=2, iter_low=20, iter_high=60)
        args.prune_extra = [
            "search_space.iterations.low=20",
            "search_space.iterations.high=60",
            "search_space.hidden_units.high=64",
        ]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.sklearn_child:  # the scikit-learn side, in its own process
        configs = None
        if args.sklearn_configs:
            configs = json.loads(Path(args.sklearn_configs).read_text())
        result = run_sklearn(
            train_split(args.seed), args.space, args.trials, args.folds, args.seed, configs
        )
        Path(args.sklearn_child).write_text(json.dumps(result))
        return
    lines = header(args)
    raw: dict = {"args": {k: v for k, v in vars(args).items() if k != "space"}}
    raw["args"]["space"] = asdict(args.space)
    runs: list[PipelineRun] = []
    if 1 in args.parts or 2 in args.parts:
        part, raw["equal_budget"], runs = part_equal_budget(args, args.space)
        lines += part + [""] if 1 in args.parts else []
    if 3 in args.parts:
        pruning_lines, raw["pruning"], unpruned = part_pruning(args)
        runs += unpruned
    if 2 in args.parts:
        if args.default_run:
            print("part 2: python -m pipeline.sweep (the default command)")
            runs.append(run_pipeline("the default command (as is; progress bar off)", []))
        startup = startup_seconds()
        raw["startup_import_seconds"] = startup
        lines += part_overhead(runs, startup) + [""]
        raw["overhead"] = [
            {
                "label": r.label,
                "overhead": r.overhead,
                "overhead_floor": r.overhead_floor,
                "cpu_use": r.cpu_use,
                "refit_seconds": r.refit_seconds,
                "discarded_seconds": r.discarded_seconds,
                "overhead_if_discarded_is_fitting": r.overhead_if_discarded_is_fitting,
                "fitting_wall_seconds": r.fitting_wall_seconds,
                "nothing_fitting": r.nothing_fitting,
            }
            for r in runs
        ]
    if 3 in args.parts:
        lines += pruning_lines + [""]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sweep.md").write_text(text)
    (RESULTS / "sweep.json").write_text(json.dumps(raw, indent=2, default=str))


if __name__ == "__main__":
    main()

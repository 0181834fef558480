"""What the results side of a sweep costs as the study grows: the end-of-sweep report, the
summary and ``python -m pipeline.train run_id=`` at 100, 1,000 and 10,000 trials.

    python benchmarks/bench_results.py --trials 100 1000 10000 --folder /tmp/bench-results \\
        --tracking http://127.0.0.1:5077          # a running `mlflow server` (PostgreSQL behind)
    python benchmarks/bench_results.py --trials 100 2000 --tracking sqlite
    python benchmarks/bench_results.py ... --study-storage "$MLP_SWEEP_TEST_POSTGRES_URL"

No trial is fitted: each study is written directly, once, through Optuna's storage API
(``optuna.trial.create_trial`` + ``add_trials``) and MLflow's client (``create_run``,
``log_batch``, ``set_terminated``), with the project's own names (pipeline.names,
pipeline.tracking.runs), so that the code under test sees what a sweep leaves: a study
``bench-N`` (60 % complete with 5 fold scores, 35 % pruned after 1-4 folds, 5 % failed), its
parent run and one finished child run per trial with its params, fold scores, mean, std, times,
state tags and a 20-step learning curve; the study's ``config.yaml`` is the parent run's, where
``pipeline.train run_id=`` and the champion's ``best_params.yaml`` read it. The stores stay in ``--folder`` (a journal file per study;
``mlflow.db`` with ``--tracking sqlite``) and are reused by later invocations with the same
folder and tracking store.

Then times, median of ``--repeat`` calls, on each study:
- ``close lost runs``: pipeline.tracking.lost_runs.close_lost_runs, which a sweep's lead worker
  calls before finalising;
- ``summary``: state counts, best trial and the printed summary (pipeline.results.summary);
- ``report``: pipeline.results.report.log_study_report on the parent run (trials.csv and the
  study's plots: what the sweep draws while the champion is refitted), split into its parts;
- ``train run_id=``: pipeline.train.prepare_train for a child run (the lookup of its run, the
  parent's config.yaml and the data set; no fitting);
- ``finalise``: pipeline.results.champion.finalize, the first time with the champion's refit,
  test and registration, then again when that champion is kept (counts, lookup, report).
Loading the study is timed apart: the sweep has it loaded already. With ``--study-storage`` the
studies are read from a database (copied there from their journals the first time). Prints a
Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import optuna
from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from pipeline.config.command_line import SWEEP, TRAIN, compose_config
from pipeline.config.settings import (
    comparable_settings,
    config_yaml,
    fixed_model_params,
    sweep_params,
)
from pipeline.names import (
    FAIL_REASON,
    FIT_SECONDS,
    OWNER_ATTR,
    PARENT_RUN_ATTR,
    ROLE_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
)
from pipeline.redaction import redact
from pipeline.search.study import record_settings
from pipeline.tracking.runs import (
    create_parent_run,
    ending,
    fold_metrics,
    trial_run_ids,
    trial_run_name,
)
from pipeline.tracking.store import connect

FOLDS = 5
CURVE_STEPS = 20
DONE_TAG = "bench_results.trials"  # on the experiment once its study is written in full
DISTRIBUTIONS = {
    "learning_rate": FloatDistribution(0.001, 0.1, log=True),
    "hidden_units": IntDistribution(16, 256, log=True),
    "hidden_layers": IntDistribution(1, 3),
    "iterations": IntDistribution(50, 500, step=10),
    "activation": CategoricalDistribution(["sigmoid", "tanh", "relu", "leaky_relu"]),
}


# MLflow prints each run's link when a run on a server ends: tens of thousands of lines here.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def tracking_uri(tracking: str, folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}" if tracking == "sqlite" else tracking


def sweep_config(n: int, folder: Path, uri: str):
    """The composed sweep config a study of ``n`` trials would have run with."""
    return compose_config(
        [
            "dataset=iris",
            "dataset.task=classification",
            "cv.metric=accuracy",
            f"study.name=bench-{n}",
            f"study.storage={folder / f'optuna-{n}.journal'}",
            f"study.n_trials={n}",
            f"tracking.uri={uri}",
            f"tracking.experiment=bench-results-{n}",
            f"tracking.artifact_location={folder / 'artifacts'}",
        ],
        SWEEP,
        check=False,
    )


def open_journal(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def synthetic_trial(number: int, rng: np.random.Generator) -> dict:
    """One trial's made-up outcome: state, params, fold scores, times."""
    params = {
        "learning_rate": float(np.exp(rng.uniform(np.log(0.001), np.log(0.1)))),
        "hidden_units": int(np.exp(rng.uniform(np.log(16), np.log(256)))),
        "hidden_layers": int(rng.integers(1, 4)),
        "iterations": int(rng.integers(5, 51) * 10),
        "activation": str(rng.choice(DISTRIBUTIONS["activation"].choices)),
    }
    draw = rng.uniform()
    state = "COMPLETE" if draw < 0.60 else "PRUNED" if draw < 0.95 else "FAIL"
    folds = (
        FOLDS if state == "COMPLETE" else int(rng.integers(1, FOLDS)) if state == "PRUNED" else 0
    )
    level = 0.7 + 0.25 * rng.uniform()
    scores = {f: float(min(1.0, level + rng.normal(0, 0.02))) for f in range(folds)}
    curve = np.geomspace(2.0, 0.05 + 0.3 * rng.uniform(), CURVE_STEPS)
    reason = {"PRUNED": f"pruned after {folds} of {FOLDS} folds", "FAIL": "diverged"}.get(state)
    return {
        "number": number,
        "state": state,
        "params": params,
        "scores": scores,
        "curve": curve,
        "fit_seconds": float(rng.uniform(0.5, 5.0)),
        "reason": reason,
    }


def log_child_run(client, experiment_id, parent_id, study_name, fixed, trial) -> str:
    """The trial's finished child run, as pipeline.tracking.runs.TrialRun leaves it."""
    number = trial["number"]
    tags = {
        "mlflow.parentRunId": parent_id,
        STUDY_TAG: study_name,
        ROLE_TAG: "trial",
        TRIAL_NUMBER_TAG: str(number),
        "mlp_sweep.worker": "0",
    }
    name = trial_run_name(number)
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    status, end_tags = ending(name, trial["state"], trial["reason"])
    params = [Param(k, str(v)) for k, v in {**trial["params"], **fixed}.items()]
    metrics = fold_metrics(
        "accuracy", trial["scores"], trial["fit_seconds"], trial["curve"], trial["fit_seconds"]
    )
    client.log_batch(run_id, metrics=metrics, params=params, tags=end_tags)
    client.set_terminated(run_id, status=status)
    return run_id


def frozen_trial(trial: dict) -> optuna.trial.FrozenTrial:
    scores = trial["scores"]
    owner = {"host": "bench", "pid": 1, "worker": 0}
    attrs = {OWNER_ATTR: owner, FIT_SECONDS: trial["fit_seconds"]}
    value = None
    if trial["state"] == "COMPLETE":
        value = float(np.mean([scores[f] for f in sorted(scores)]))
    elif trial["state"] == "PRUNED":
        value = scores[max(scores)]  # what the sweep's pruned trials hold: their last fold
    if trial["reason"]:
        attrs[FAIL_REASON] = trial["reason"]
    return optuna.trial.create_trial(
        state=TrialState[trial["state"]],
        value=value,
        params=trial["params"],
        distributions=DISTRIBUTIONS,
        user_attrs=attrs,
        intermediate_values=scores,
    )


def write_study(n: int, folder: Path, uri: str, threads: int) -> None:
    """Write study ``bench-n`` and its runs, unless a previous invocation finished them."""
    cfg = sweep_config(n, folder, uri)
    client, experiment_id = connect(uri, str(folder / "artifacts"), cfg.tracking.experiment)
    if client.get_experiment(experiment_id).tags.get(DONE_TAG) == str(n):
        return
    if client.search_runs([experiment_id], max_results=1):  # an interrupted invocation's
        client.rename_experiment(
            experiment_id, f"{cfg.tracking.experiment}-abandoned-{time.time():.0f}"
        )
        client, experiment_id = connect(uri, str(folder / "artifacts"), cfg.tracking.experiment)
    journal = folder / f"optuna-{n}.journal"
    journal.unlink(missing_ok=True)
    started = time.perf_counter()
    study = optuna.create_study(
        storage=open_journal(journal), study_name=cfg.study.name, direction="maximize"
    )
    record_settings(study, comparable_settings(cfg))
    parent_id = create_parent_run(
        client, experiment_id, study.study_name, sweep_params(cfg), config_yaml(cfg)
    )
    study.set_user_attr(PARENT_RUN_ATTR, parent_id)
    fixed = fixed_model_params(cfg)
    rng = np.random.default_rng(n)
    trials = [synthetic_trial(number, rng) for number in range(n)]

    def child(trial):
        return log_child_run(client, experiment_id, parent_id, study.study_name, fixed, trial)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(child, trials))
    study.add_trials([frozen_trial(t) for t in trials])
    client.set_terminated(parent_id, status="FINISHED")
    client.set_experiment_tag(experiment_id, DONE_TAG, str(n))
    print(f"wrote study bench-{n}: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def median_seconds(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def study_storage(n: int, folder: Path, database: str | None):
    """Study ``bench-n``'s storage: its journal file, or ``database`` (an Optuna RDB URL) opened
    as a sweep opens it (pipeline.search.storage)."""
    if database is None:
        return open_journal(folder / f"optuna-{n}.journal")
    from pipeline.search.storage import open_storage

    return open_storage(database, heartbeat_interval=60)


def copy_to_database(n: int, folder: Path, database: str) -> None:
    """Copy study ``bench-n`` from its journal into ``database``, unless it is there already."""
    storage = study_storage(n, folder, database)
    if f"bench-{n}" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        started = time.perf_counter()
        journal = study_storage(n, folder, None)
        optuna.copy_study(from_study_name=f"bench-{n}", from_storage=journal, to_storage=storage)
        print(f"copied bench-{n}: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def measure(
    n: int, folder: Path, uri: str, repeat: int, database: str | None = None
) -> dict[str, float]:
    """Seconds per step on study ``bench-n`` (in ``database`` if given), medians of ``repeat``
    calls."""
    from pipeline.results import report
    from pipeline.results.summary import SweepSummary, format_summary, state_counts
    from pipeline.tracking.lost_runs import close_lost_runs
    from pipeline.train import prepare_train

    cfg = sweep_config(n, folder, uri)
    client, experiment_id = connect(uri, str(folder / "artifacts"), cfg.tracking.experiment)
    started = time.perf_counter()  # a journal is read when opened, a database at the first call
    storage = study_storage(n, folder, database)
    study = optuna.load_study(study_name=cfg.study.name, storage=storage)
    study.get_trials(deepcopy=False)
    loaded = time.perf_counter() - started
    parent_id = study.user_attrs[PARENT_RUN_ATTR]
    last = study.get_trials(deepcopy=False)[-1].number
    child_id = trial_run_ids(client, experiment_id, parent_id, number=last)[last]

    def summary():
        counts = state_counts(study)
        best = study.best_trial
        done = SweepSummary(study.study_name, counts, parent_id, dict(best.params), best.value)
        done.cv_std, done.test_score, done.model_version = 0.0, 0.0, "1"
        format_summary(done, uri, experiment_id)

    train_cfg = compose_config(
        [f"run_id={child_id}", f"tracking.uri={uri}", f"tracking.experiment=bench-{n}-train"],
        TRAIN,
        check=False,
    )
    parts = {
        "load study": loaded,
        "close lost runs": median_seconds(
            lambda: close_lost_runs(study, client, experiment_id), repeat
        ),
        "summary": median_seconds(summary, repeat),
        "report": median_seconds(lambda: report.log_study_report(client, parent_id, study), repeat),
        "train run_id= (config)": median_seconds(lambda: prepare_train(train_cfg), repeat),
    }
    first, again = finalise_seconds(cfg, study, parent_id, repeat)
    parts["finalise, first (refit, test, register)"] = first
    parts["finalise again (champion kept)"] = again
    for name, seconds in report_parts(client, parent_id, study, repeat, folder).items():
        parts[f"  report: {name}"] = seconds
    return parts


def finalise_seconds(cfg, study, parent_id: str, repeat: int) -> tuple[float, float]:
    """pipeline.results.champion.finalize as the sweep's lead worker calls it after the last
    trial: once with the champion's refit (in this process), test and registration (the first
    time on this store; later invocations find it registered), then ``repeat`` times more, when
    the registered champion is kept and only the counts and the study's report are logged."""
    from pipeline.config.schema import registered_model_name
    from pipeline.config.task import model_spec, resolve_task
    from pipeline.data import load_dataset, split_train_test
    from pipeline.results.champion import finalize

    data = load_dataset(cfg.dataset, cfg.study.seed)
    resolve_task(cfg, data)
    split = split_train_test(data, cfg.cv.test_size, cfg.study.seed)

    def call():
        finalize(
            study, split, model_spec(cfg, data), fixed_params=fixed_model_params(cfg),
            seed=cfg.study.seed, uri=cfg.tracking.uri, parent_run_id=parent_id,
            registered_model=registered_model_name(cfg),
        )  # fmt: skip

    return median_seconds(call, 1), median_seconds(call, repeat)


def report_parts(
    client: MlflowClient, parent_id: str, study, repeat: int, scratch: Path
) -> dict[str, float]:
    """The report's parts, each alone: trials.csv (logged), each study plot and the fold spread
    (drawn and saved as PNG in ``scratch``, as the report saves them, not logged)."""
    import matplotlib.pyplot as plt

    from pipeline.results import report, study_plots
    from pipeline.results.trials_csv import log_trials_csv
    from pipeline.search.study import study_metric

    def draw(plot):
        def call():
            figure = plot()
            if figure is not None:
                figure.savefig(scratch / "figure.png", dpi=100)
                plt.close(figure)

        return call

    parts = {"trials.csv": median_seconds(lambda: log_trials_csv(client, parent_id, study), repeat)}
    plots = {
        "optimization_history": study_plots.history_figure,
        "param_importances": study_plots.importances_figure,
        "parallel_coordinate": study_plots.parallel_coordinate_figure,
        "slice": study_plots.slice_figure,
    }
    for name, plot in plots.items():
        parts[name] = median_seconds(draw(lambda p=plot: p(study)), repeat)
    metric = study_metric(study)
    parts["fold_spread"] = median_seconds(
        draw(lambda: report.fold_spread_figure(study_plots.complete_trials(study), metric)), repeat
    )
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--folder", type=Path, required=True, help="the stores, kept for reuse")
    parser.add_argument(
        "--tracking", default="sqlite", help="sqlite (in --folder) or a tracking server's URL"
    )
    parser.add_argument("--threads", type=int, default=4, help="writers of the child runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--study-storage",
        default=None,
        help="an Optuna database URL (e.g. $MLP_SWEEP_TEST_POSTGRES_URL): the studies are copied "
        "there once and read from there instead of their journal files",
    )
    args = parser.parse_args()
    args.folder = args.folder.resolve()
    args.folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    uri = tracking_uri(args.tracking, args.folder)
    threads = 1 if uri.startswith("sqlite") else args.threads
    for n in args.trials:
        write_study(n, args.folder, uri, threads)
    database = args.study_storage
    for n in args.trials if database else ():
        copy_to_database(n, args.folder, database)
    measure(min(args.trials), args.folder, uri, 1, database)  # imports, first calls: not counted
    results = {n: measure(n, args.folder, uri, args.repeat, database) for n in args.trials}
    where = "SQLite" if uri.startswith("sqlite") else f"mlflow server {uri}"
    stored = "a journal file per study" if database is None else redact(database)
    print(f"tracking: {where}; Optuna: {stored}; median of {args.repeat}")
    print("| seconds | " + " | ".join(f"{n:,} trials" for n in args.trials) + " |")
    print("|---|" + "---:|" * len(args.trials))
    for part in results[args.trials[0]]:
        cells = " | ".join(f"{results[n][part]:.3f}" for n in args.trials)
        print(f"| {part} | {cells} |")


if __name__ == "__main__":
    main()

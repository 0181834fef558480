"""After the search: refit the best configuration on the whole training split, score it once on
the held-out test split, log it on the parent run and register it with the alias ``champion``."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import optuna
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from pipeline.config.from_run import log_best_config
from pipeline.config.search_space import network_params
from pipeline.data import Split
from pipeline.folds.pool import run_in_pool
from pipeline.folds.worker import refit
from pipeline.model.ensemble import FoldEnsemble, ModelSpec
from pipeline.model.metrics import METRICS, task_metrics
from pipeline.names import cv_mean, cv_std, test_score
from pipeline.results.report import log_champion_report, log_report, log_study_report
from pipeline.results.summary import SweepSummary, state_counts
from pipeline.tracking.models import (
    champion_key,
    log_champion,
    point_champion_alias,
    registered_champion,
)
from pipeline.tracking.runs import log_metrics, trial_run_ids

# The steps after the last trial, in order, as the terminal names them while they run (seconds
# in which the trials' progress bar would sit at 100% without a word).
REPORT_STEP = "drawing the study's plots while the champion is refitted"
TEST_STEP = "testing the champion on the held-out split"
REGISTER_STEP = "registering the champion"
FINISHING_STEPS = (REPORT_STEP, TEST_STEP, REGISTER_STEP)


def _silent(step: str) -> None:
    pass


def refit_best(
    study: optuna.Study,
    split: Split,
    spec: ModelSpec,
    fixed_params: dict,
    seed: int,
    processes: int = 1,
) -> Future:
    """The best trial's network, trained on the whole training split (seeded like fold 0): a
    future of (FittedNetwork, fit seconds), fitted in one of the fold processes when there are
    several."""
    kwargs = {**fixed_params, **network_params(study.best_trial.params)}
    return run_in_pool(processes, refit, spec, kwargs, split.X_train, split.y_train, seed)


def finalize(
    study: optuna.Study,
    split: Split,
    spec: ModelSpec,
    *,
    fixed_params: dict,
    seed: int,
    uri: str,
    parent_run_id: str,
    registered_model: str,
    processes: int = 1,
    announce: Callable[[str], None] = _silent,
) -> SweepSummary:
    """Refit, test, log and register the champion; returns the summary for the terminal.

    With several fold ``processes``, the refit runs in one of them while this process draws the
    study's plots. ``spec`` says what the champion learns and its metric.
    ``announce`` is called with each of :data:`FINISHING_STEPS` as it starts.
    """
    counts = state_counts(study)
    summary = SweepSummary(study.study_name, counts, parent_run_id, metric=spec.metric)
    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    count_metrics = [Metric(f"trials_{k}", float(v), now, 0) for k, v in counts.items()]
    announce(REPORT_STEP)
    if counts["complete"] == 0:
        log_metrics(client, parent_run_id, count_metrics)
        log_report(client, parent_run_id, study)  # trials.csv says why each trial failed
        return summary
    best = study.best_trial
    summary.best_params = dict(best.params)
    summary.cv_mean = float(best.value)
    summary.cv_std = float(np.std(list(best.intermediate_values.values())))
    if keeps_registered_champion(
        client, summary, registered_model, champion_key(study.study_name, best)
    ):
        log_study_report(client, parent_run_id, study)  # the study may have grown meanwhile
        log_metrics(client, parent_run_id, count_metrics)
        return summary
    refitting = refit_best(study, split, spec, fixed_params, seed, processes)
    champion, tests, costs = score_champion(client, study, split, refitting, summary, announce)
    log_metrics(client, parent_run_id, count_metrics + costs)
    announce(REGISTER_STEP)
    register_champion(
        client, uri, study, champion, split.X_test[:5], registered_model, summary, tests
    )
    return summary


def keeps_registered_champion(
    client: MlflowClient, summary: SweepSummary, registered_model: str, key: dict[str, str]
) -> bool:
    """True for a rerun whose best trial already has its registered and tested champion (the
    same command again once the budget is reached, or after a kill right after registering):
    a refit would register an identical new version. ``summary`` then gets that version and its
    test score, and the alias ``champion`` points at it again if a kill came before it did."""
    version = registered_champion(client, registered_model, key)
    if version is None:
        return False
    tested = client.get_run(summary.parent_run_id).data.metrics.get(test_score(summary.metric))
    if tested is None:
        return False
    point_champion_alias(client, registered_model, version)
    summary.test_score, summary.model_version = float(tested), version
    summary.model_unchanged = True
    return True


def score_champion(
    client: MlflowClient,
    study: optuna.Study,
    split: Split,
    refitting: Future,
    summary: SweepSummary,
    announce: Callable[[str], None] = _silent,
) -> tuple[FoldEnsemble, dict[str, float], list[Metric]]:
    """Draw the study's report while the refit runs, then score the champion once on the test
    split and draw its pictures. Returns the champion, its test scores in every metric of its
    task that is defined there, and what the report and the refit cost (metrics of the study's
    parent run); the study metric's test score goes in ``summary``."""
    parent_run_id = summary.parent_run_id
    started = time.perf_counter()
    log_study_report(client, parent_run_id, study)
    report_seconds = time.perf_counter() - started
    model, refit_seconds = refitting.result()
    announce(TEST_STEP)
    champion = FoldEnsemble([model])
    tests = champion_test_scores(champion, split)
    summary.test_score = tests[summary.metric]
    y_pred = champion.predict(split.X_test)
    started = time.perf_counter()
    log_champion_report(
        client, parent_run_id, model.network.loss_curve_, split.y_test, y_pred, champion.task
    )
    report_seconds += time.perf_counter() - started
    now = int(time.time() * 1000)
    return (
        champion,
        tests,
        [
            # What drawing the report cost the sweep (the refit ran meanwhile, not counted).
            Metric("report_seconds", report_seconds, now, 0),
            Metric("refit_seconds", refit_seconds, now, 0),
        ],
    )


def champion_test_scores(champion: FoldEnsemble, split: Split) -> dict[str, float]:
    """The champion's score on the test split in each metric of its task, by name; one that is
    undefined there (ROC AUC with a class absent from the test rows) is left out."""
    output = champion.predict_output(split.X_test)
    scores = {}
    for metric in task_metrics(champion.task):
        try:
            scores[metric.name] = float(metric.score(split.y_test, output, champion.classes_))
        except ValueError:
            continue
    return scores


def register_champion(
    client: MlflowClient,
    uri: str,
    study: optuna.Study,
    champion: FoldEnsemble,
    X_example: np.ndarray,
    registered_model: str,
    summary: SweepSummary,
    tests: dict[str, float],
) -> None:
    """Log the champion on the parent run with its scores (``tests``: on the test split, by
    metric) and register it; tag the parent run with the best trial and write that trial's
    config as ``best_params.yaml``."""
    best, parent_run_id = study.best_trial, summary.parent_run_id
    # Tags, not params: the best trial may change when the study is resumed; params are immutable.
    client.log_batch(
        parent_run_id,
        tags=[RunTag("best.trial_number", str(best.number))]
        + [RunTag(f"best.{k}", str(v)) for k, v in best.params.items()],
    )
    now = int(time.time() * 1000)
    metric = summary.metric
    scores = [
        Metric(f"best_{cv_mean(metric)}", summary.cv_mean, now, 0),
        Metric(f"best_{cv_std(metric)}", summary.cv_std, now, 0),
        *(Metric(test_score(name), value, now, 0) for name, value in tests.items()),
    ]
    summary.model_version = log_champion(
        uri,
        parent_run_id,
        champion,
        X_example,
        registered_model,
        champion_key(study.study_name, best),
        scores,
    )
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    best_run = trial_run_ids(client, experiment_id, parent_run_id, number=best.number)
    if best.number in best_run:
        note = (
            f"Best trial {best.number} of study {study.study_name}: "
            f"CV {METRICS[metric].label} {best.value:.4f}"
        )
        log_best_config(client, parent_run_id, best_run[best.number], note)

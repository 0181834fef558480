"""After the search: refit the best configuration on the whole training split, score it once on
the held-out test split, log it on the parent run and register it with the alias ``champion``."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import optuna
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from pipeline.data import Split
from pipeline.fitted_model import FoldEnsemble
from pipeline.fold_pool import run_in_pool
from pipeline.fold_worker import refit
from pipeline.report import log_champion_report, log_report, log_study_report
from pipeline.search_space import network_params
from pipeline.study import replaced_numbers
from pipeline.tracking import TRIAL_RUN_ATTR, log_champion, log_metrics, registered_champion
from pipeline.trial_config import log_best_config


@dataclass
class SweepSummary:
    """What the terminal prints at the end of a sweep."""

    study_name: str
    counts: dict[str, int]
    parent_run_id: str
    best_params: dict | None = None
    cv_mean: float | None = None
    cv_std: float | None = None
    test_accuracy: float | None = None
    model_version: str | None = None
    model_unchanged: bool = False  # the registered champion already was this best trial's


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Complete / pruned / failed / running trials, lost-and-retried ones left out."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    names = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
    }
    for trial in trials:
        if trial.number not in replaced and trial.state in names:
            counts[names[trial.state]] += 1
    return counts


def refit_best(
    study: optuna.Study, split: Split, fixed_params: dict, seed: int, processes: int = 1
) -> Future:
    """The best trial's network, trained on the whole training split (seeded like fold 0): a
    future of (ScaledNetwork, fit seconds), fitted in one of the fold processes when there are
    several."""
    kwargs = {**fixed_params, **network_params(study.best_trial.params)}
    return run_in_pool(processes, refit, kwargs, split.X_train, split.y_train, seed)


def finalize(
    study: optuna.Study,
    split: Split,
    *,
    fixed_params: dict,
    seed: int,
    uri: str,
    parent_run_id: str,
    registered_model: str,
    processes: int = 1,
    feature_names: tuple[str, ...] | None = None,
) -> SweepSummary:
    """Refit, test, log and register the champion; returns the summary for the terminal.

    With several fold ``processes``, the refit runs in one of them while this process draws the
    study's plots. ``feature_names`` (the data's columns) go with the registered model.
    """
    counts = state_counts(study)
    summary = SweepSummary(study.study_name, counts, parent_run_id)
    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    count_metrics = [Metric(f"trials_{k}", float(v), now, 0) for k, v in counts.items()]
    if counts["complete"] == 0:
        log_metrics(client, parent_run_id, count_metrics)
        log_report(client, parent_run_id, study)  # trials.csv says why each trial failed
        return summary
    best = study.best_trial
    summary.best_params = dict(best.params)
    summary.cv_mean = float(best.value)
    summary.cv_std = float(best.user_attrs.get("cv_std", np.nan))
    version = registered_champion(client, registered_model, parent_run_id, best.number)
    tested = client.get_run(parent_run_id).data.metrics.get("test_accuracy") if version else None
    if version is not None and tested is not None:
        # A rerun whose best trial already has its registered champion (e.g. the same command
        # again once the budget is reached): a refit would register an identical new version.
        log_study_report(client, parent_run_id, study)  # the study may have grown meanwhile
        log_metrics(client, parent_run_id, count_metrics)
        summary.test_accuracy, summary.model_version = float(tested), version
        summary.model_unchanged = True
        return summary
    refitting = refit_best(study, split, fixed_params, seed, processes)
    started = time.perf_counter()
    log_study_report(client, parent_run_id, study)
    report_seconds = time.perf_counter() - started
    model, refit_seconds = refitting.result()
    champion = FoldEnsemble([model], feature_names)
    y_pred = champion.predict(split.X_test)
    summary.test_accuracy = float(np.mean(y_pred == split.y_test))
    started = time.perf_counter()
    log_champion_report(client, parent_run_id, model.network.loss_curve_, split.y_test, y_pred)
    report_seconds += time.perf_counter() - started
    log_metrics(
        client,
        parent_run_id,
        count_metrics
        + [
            Metric("best_cv_accuracy_mean", summary.cv_mean, now, 0),
            Metric("best_cv_accuracy_std", summary.cv_std, now, 0),
            Metric("test_accuracy", summary.test_accuracy, now, 0),
            # What drawing the report cost the sweep (the refit ran meanwhile, not counted).
            Metric("report_seconds", report_seconds, now, 0),
            Metric("refit_seconds", refit_seconds, now, 0),
        ],
    )
    # Tags, not params: the best trial may change when the study is resumed; params are immutable.
    client.log_batch(
        parent_run_id,
        tags=[RunTag("best.trial_number", str(best.number))]
        + [RunTag(f"best.{k}", str(v)) for k, v in best.params.items()],
    )
    summary.model_version = log_champion(
        uri, parent_run_id, champion, split.X_test[:5], registered_model, best.number
    )
    if TRIAL_RUN_ATTR in best.user_attrs:
        note = f"Best trial {best.number} of study {study.study_name}: CV accuracy {best.value:.4f}"
        log_best_config(client, parent_run_id, best.user_attrs[TRIAL_RUN_ATTR], note)
    return summary


def format_summary(summary: SweepSummary, tracking_uri: str) -> str:
    """A few lines for the terminal."""
    c = summary.counts
    lines = [
        f"study {summary.study_name}: {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['failed']} failed"
    ]
    if summary.best_params is None:
        lines.append(
            "no trial completed: every trial failed or was pruned; see the trials' "
            "fail_reason (for divergence, lower search_space.learning_rate.high)"
        )
    else:
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(summary.best_params.items()))
        lines += [
            f"best: {params}",
            f"CV accuracy {summary.cv_mean:.4f} ± {summary.cv_std:.4f}; "
            f"test accuracy {summary.test_accuracy:.4f}",
            f"champion: registered version {summary.model_version}"
            + (" (unchanged: the best trial is the same)" if summary.model_unchanged else ""),
        ]
    lines += [
        f"parent run {summary.parent_run_id}",
        f"inspect: mlflow ui --backend-store-uri {tracking_uri}",
    ]
    return "\n".join(lines)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

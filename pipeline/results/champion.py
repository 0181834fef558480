"""After the search: refit the best configuration on the whole training split, score it once on
the held-out test split, log it on the parent run and register it with the alias ``champion``."""

from __future__ import annotations

import time
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
from pipeline.model.ensemble import FoldEnsemble
from pipeline.names import TRIAL_RUN_ATTR
from pipeline.results.report import log_champion_report, log_report, log_study_report
from pipeline.results.summary import SweepSummary, state_counts
from pipeline.tracking.models import log_champion, registered_champion
from pipeline.tracking.runs import log_metrics


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

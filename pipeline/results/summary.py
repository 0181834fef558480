"""What a finished sweep reports: the trials' states, the best trial, the champion."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from pipeline.search.budget import replaced_numbers

# The MLflow UI's own defaults: `mlflow ui` serves on this address, and its pages open in GenAI
# mode (a per-browser setting) unless the link asks for the runs of a training experiment.
MLFLOW_UI_ADDRESS = "http://127.0.0.1:5000"
TRAINING_VIEW = "workflowType=machine_learning"


@dataclass
class SweepSummary:
    """What the terminal prints at the end of a sweep."""

    study_name: str
    counts: dict[str, int]
    parent_run_id: str
    best_params: dict | None = None
    cv_mean: float | None = None
    cv_std: float | None = None
    test_score: float | None = None  # the champion's, in the study's metric
    metric: str = "accuracy"  # cv.metric: what cv_mean, cv_std and test_score are in
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


def run_link(ui_address: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI's page of a run, opened on the training runs (not the GenAI overview)."""
    base = ui_address.rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def inspect_lines(tracking_uri: str, experiment_id: str, run_id: str) -> list[str]:
    """How to look at ``run_id``: its link on a tracking server, or the `mlflow ui` command
    over the store and the link it then serves. ``tracking_uri`` is printed as given (redacted
    by the caller)."""
    if tracking_uri.startswith(("http://", "https://")):
        return [f"inspect: {run_link(tracking_uri, experiment_id, run_id)}"]
    return [
        f"inspect: mlflow ui --backend-store-uri {tracking_uri}",
        f"  then open {run_link(MLFLOW_UI_ADDRESS, experiment_id, run_id)}",
    ]


def format_summary(summary: SweepSummary, tracking_uri: str, experiment_id: str) -> str:
    """A few lines for the terminal; the last ones open the study's parent run in MLflow."""
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
            f"CV {summary.metric} {summary.cv_mean:.4f} ± {summary.cv_std:.4f}; "
            f"test {summary.metric} {summary.test_score:.4f}",
            f"champion: registered version {summary.model_version}"
            + (" (unchanged: the best trial is the same)" if summary.model_unchanged else ""),
        ]
    lines.append(f"parent run {summary.parent_run_id}")
    lines += inspect_lines(tracking_uri, experiment_id, summary.parent_run_id)
    return "\n".join(lines)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

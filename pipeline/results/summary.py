"""What a finished sweep reports: the trials' states, the best trial, the champion."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from pipeline.search.budget import replaced_numbers


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

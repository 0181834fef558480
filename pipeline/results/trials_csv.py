"""``trials.csv``: every trial of a study as one row, written to a file row by row.

The rows go straight from the study's trials (read without copies) to a CSV file, then to the
parent run as one artifact: no table of the whole study is held in memory, whatever its size.
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
import pandas as pd
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from pipeline.names import FAIL_REASON, FIT_SECONDS, cv_mean, cv_std, fold_metric
from pipeline.search.study import study_metric

FILE_NAME = "trials.csv"


def columns(trials: Sequence[FrozenTrial], metric: str) -> tuple[list[str], list[str], int]:
    """The header of the study's rows, its parameter names (sorted) and its number of folds
    (the most folds any trial reported)."""
    param_names = sorted({name for t in trials for name in t.params})
    folds = max((max(t.intermediate_values, default=-1) + 1 for t in trials), default=0)
    header = [
        "number",
        "state",
        *param_names,
        *(fold_metric(fold, metric) for fold in range(folds)),
        cv_mean(metric),
        cv_std(metric),
        FIT_SECONDS,
        "trial_seconds",
        FAIL_REASON,
    ]
    return header, param_names, folds


def trial_row(trial: FrozenTrial, param_names: list[str], folds: int) -> list:
    """One trial's row in the order of :func:`columns`: number, state, hyperparameters, fold
    scores (the values reported to the pruner, step = fold, so a pruned trial shows the folds
    it finished), their mean and std, the fitting and trial seconds and fail reason (the trial's run
    is the child run named after its number)."""
    scores = [trial.intermediate_values.get(fold) for fold in range(folds)]
    mean, std = mean_and_std([s for s in scores if s is not None])
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return [
        trial.number,
        trial.state.name,
        *(trial.params.get(name) for name in param_names),
        *scores,
        mean,
        std,
        trial.user_attrs.get(FIT_SECONDS),
        duration,
        trial.user_attrs.get(FAIL_REASON),
    ]


def mean_and_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and population standard deviation (NumPy's ``std``) of a few fold scores, in
    plain Python: NumPy's per-call overhead was most of the time of a row. (None, None) for
    no score."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def trial_rows(study: optuna.Study) -> tuple[list[str], Iterator[list]]:
    """The header and a generator of the rows, one per trial in number order."""
    trials = study.get_trials(deepcopy=False)
    header, param_names, folds = columns(trials, study_metric(study))
    return header, (trial_row(trial, param_names, folds) for trial in trials)


def write_trials_csv(study: optuna.Study, path: Path) -> int:
    """Write the study's rows to ``path`` as they are made; returns how many."""
    header, rows = trial_rows(study)
    written = 0
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            written += 1
    return written


def log_trials_csv(client: MlflowClient, run_id: str, study: optuna.Study) -> str:
    """Write ``trials.csv`` in a temporary folder and log it on ``run_id``; returns its path
    in the run's artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, FILE_NAME)
        write_trials_csv(study, path)
        client.log_artifact(run_id, str(path))
    return FILE_NAME


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """The rows of ``trials.csv`` as a DataFrame of shape (n_trials, n_columns), in memory: for
    a small study, a notebook or a test."""
    header, rows = trial_rows(study)
    return pd.DataFrame(list(rows), columns=header)

"""The names that tie an Optuna trial to its MLflow run, spelled once.

A study and its MLflow runs are read by several parts (the trial, the lost-run recovery, the
report, reproducing a run) and by users (the MLflow UI's columns, ``trials.csv``); each name
below is the one place it is written, so that the parts cannot drift apart.
"""

from __future__ import annotations

from optuna.trial import TrialState

# --- Optuna trial user attributes -----------------------------------------------------------
# The process running the trial, {"host", "pid", "worker"} (the multirun worker index): the
# lost-trial checks read it. One attribute, since each is a write (an fsync on a journal file).
OWNER_ATTR = "owner"
OWNER_HOST = "host"  # studies made before OWNER_ATTR kept the owner's host and pid apart
OWNER_PID = "pid"
FAIL_REASON = "fail_reason"  # one line: why a trial was pruned or failed
RETRY_OF = "retry_of"  # a re-enqueued lost or interrupted trial: the number it replaces
OVER_BUDGET = "over_budget"  # a trial over the budget (made by versions before reservations)
BUDGET_SLOT = "budget_slot"  # a reserved trial's place in study.n_trials (pipeline.search.budget)
# A trial's fold scores are its intermediate values (step = fold), reported to the pruner.
# The complete trial's validation scores at the epochs of cv.checkpoints: {"<epoch>": [by fold]}
CHECKPOINT_SCORES_ATTR = "checkpoint_scores"
FIT_SECONDS = "fit_seconds"  # CPU seconds of fitting, summed over folds (also an MLflow metric)
# A trial's MLflow run is created on the tracking thread, after the trial may have ended: the
# run names its trial (STUDY_TAG, TRIAL_NUMBER_TAG and its parent run), not the other way round.

# --- Optuna study user attributes -----------------------------------------------------------
SETTINGS_ATTR = "settings"  # what the study's scores depend on ({"cv.folds": 5, ...})
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # the study's MLflow parent run

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

# --- MLflow tags ------------------------------------------------------------------------------
STUDY_TAG = "mlp_sweep.study"  # on the parent run, every trial run and registered version
ROLE_TAG = "mlp_sweep.role"  # "study", "trial" or "train"
STATE_TAG = "optuna.state"  # the trial's Optuna state on its run
FAIL_REASON_TAG = "optuna.fail_reason"
TRIAL_NUMBER_TAG = "optuna.trial_number"
CLOSED_BY_TAG = "mlp_sweep.closed_by"  # a run closed by a later start, not by its own process
SOURCE_RUN_TAG = "mlp_sweep.source_run"  # a train run that reproduces this run
CHAMPION_TRIAL_TAG = "mlp_sweep.best_trial"  # on a registered version: the trial it refits
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own: setting it renames the run
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: nests a trial's run under the study's
# MLflow's own experiment tag: this kind puts "Training runs" in the menu of the UI's GenAI mode.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
CHAMPION_TRIAL_START_TAG = "mlp_sweep.best_trial_start"  # and that trial's start (with STUDY_TAG)
CHAMPION_ALIAS = "champion"  # the registered model's alias of the study's latest champion

# --- MLflow metrics ---------------------------------------------------------------------------
# Every score is named after the study's metric (cv.metric, pipeline.model.metrics), so the
# UI's columns say what they hold. Studies and runs made before cv.metric existed were scored
# by accuracy.
LEGACY_METRIC = "accuracy"
LEGACY_TASK = "classification"  # and they classified
# Before the convergence stop, every fit trained all its iterations.
LEGACY_MODEL = {"n_iter_no_change": None, "tol": 1e-4}


def validation_curve_metric(metric: str) -> str:
    """``valid_<metric>``: the mean over folds of the validation score at each checkpoint epoch
    (the MLflow step), beside ``train_loss``."""
    return f"valid_{metric}"


def fold_metric(fold: int, metric: str) -> str:
    """``fold_<i>_<metric>``: one fold's score on its validation rows."""
    return f"fold_{fold}_{metric}"


def fold_of_metric(name: str, metric: str) -> int | None:
    """The fold of a :func:`fold_metric` name of ``metric``; None for any other metric."""
    prefix, suffix = "fold_", f"_{metric}"
    middle = name.removeprefix(prefix).removesuffix(suffix)
    if name.startswith(prefix) and name.endswith(suffix) and middle.isdigit():
        return int(middle)
    return None


def cv_mean(metric: str) -> str:
    """``cv_<metric>_mean``: the mean over the folds fitted (the trial's value)."""
    return f"cv_{metric}_mean"


def cv_std(metric: str) -> str:
    """``cv_<metric>_std``: their standard deviation."""
    return f"cv_{metric}_std"


def test_score(metric: str) -> str:
    """``test_<metric>``: the champion's score on the held-out test split."""
    return f"test_{metric}"


# --- store locations --------------------------------------------------------------------------
SQLITE_PREFIX = "sqlite:///"  # a local SQLite file: the rest is its path

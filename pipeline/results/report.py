"""Pictures and a table that explain a finished study, logged on its MLflow parent run.

The study's plots (history, importances, parallel coordinates, slices), the spread of fold
scores of the best trials, the champion's learning curve and, on the test split, its confusion
matrix (a classification) or its predictions and residuals (a regression) go under ``plots/``
as PNG files (the MLflow UI shows them); every trial is a row of ``trials.csv``
(pipeline.results.trials_csv, written row by row).
A plot that cannot be drawn (too few trials) is skipped and named in ``plots/skipped.txt``.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from sklearn.metrics import ConfusionMatrixDisplay

from pipeline.model.metrics import METRICS, REGRESSION
from pipeline.quiet import quiet_libraries
from pipeline.results import study_plots
from pipeline.results.study_plots import MAX_WIDTH
from pipeline.results.trials_csv import log_trials_csv
from pipeline.search.study import study_metric

# Files only: no display on a cluster node or in CI (switching works until a figure exists).
matplotlib.use("Agg")


log = logging.getLogger(__name__)


TOP_TRIALS = 10  # trials shown in the fold-spread plot


def study_figures(study: optuna.Study) -> tuple[dict[str, Figure], list[str]]:
    """The study's history, importance, parallel-coordinate and slice plots, by file name
    (pipeline.results.study_plots). Returns the figures and a note for each plot skipped."""
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots: dict[str, Callable[[optuna.Study], Figure]] = {
        "optimization_history": study_plots.history_figure,
        "param_importances": study_plots.importances_figure,
        "parallel_coordinate": study_plots.parallel_coordinate_figure,
        "slice": study_plots.slice_figure,
    }
    figures, notes = {}, []
    if complete < 2:
        del plots["param_importances"]
        notes.append(f"param_importances: needs >= 2 complete trials, the study has {complete}")
    if complete == 0:
        notes.append("study plots: no complete trial")
        return figures, notes
    quiet_libraries()  # a flat axis is still a fine plot
    for name, plot in plots.items():
        try:
            figures[name] = plot(study)
        except (ValueError, RuntimeError) as error:  # e.g. every parameter held fixed
            notes.append(f"{name}: {error}")
    return figures, notes


def fold_spread_figure(
    trials: Sequence[FrozenTrial], metric: str, top: int = TOP_TRIALS
) -> Figure | None:
    """Box plot (with the folds as dots) of the fold scores, in ``metric``, of the ``top`` best
    of the complete ``trials`` (by their value, the mean over folds)."""
    if not trials:
        return None
    pick = heapq.nsmallest if METRICS[metric].direction == "minimize" else heapq.nlargest
    best = pick(top, trials, key=lambda t: t.value)
    scores = [
        np.array([t.intermediate_values[f] for f in sorted(t.intermediate_values)], dtype=float)
        for t in best
    ]
    figure, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(6.0, 0.7 * len(scores) + 2)), 4.5))
    positions = np.arange(1, len(scores) + 1)
    ax.boxplot(scores, positions=positions, widths=0.5)
    rng = np.random.default_rng(0)  # jitter only spreads overlapping dots apart
    for position, values in zip(positions, scores, strict=True):
        jitter = rng.uniform(-0.12, 0.12, size=len(values))
        ax.scatter(position + jitter, values, s=14, alpha=0.7, color="tab:blue", zorder=3)
    ax.set_xticks(positions, [f"#{t.number}" for t in best])
    ax.set_xlabel("trial (best first)")
    ax.set_ylabel(f"fold {METRICS[metric].label}")
    ax.set_title(f"Fold scores of the {len(scores)} best trials")
    figure.tight_layout()
    return figure


def learning_curve_figure(loss_curve: np.ndarray, task: str = "classification") -> Figure:
    """The champion's training loss per iteration; loss_curve : ndarray of shape (n_iter,)."""
    figure, ax = plt.subplots(figsize=(7.0, 4.5))
    ax.plot(np.arange(1, len(loss_curve) + 1), loss_curve)
    ax.set_xlabel("iteration")
    loss = "squared error, standardised target" if task == REGRESSION else "cross-entropy"
    ax.set_ylabel(f"training loss ({loss})")
    ax.set_yscale("log")
    ax.set_title("Champion learning curve (whole training split)")
    figure.tight_layout()
    return figure


def confusion_matrix_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Test-split confusion matrix; y_true, y_pred : ndarray of shape (n_test,), labels."""
    labels = np.unique(np.concatenate([y_true, y_pred]))
    figure, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(5.0, 0.5 * len(labels) + 2)),) * 2)
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=labels, ax=ax, colorbar=False, xticks_rotation="vertical"
    )
    ax.grid(False)  # cells, not a grid: lines through them hide the counts
    ax.set_title(f"Champion on the test split ({len(y_true)} rows)")
    figure.tight_layout()
    return figure


def predicted_vs_actual_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Test-split predictions against the truth, with the diagonal of perfect predictions;
    y_true, y_pred : ndarray of shape (n_test,), values."""
    figure, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(y_true, y_pred, s=14, alpha=0.6)
    low = float(min(np.min(y_true), np.min(y_pred)))
    high = float(max(np.max(y_true), np.max(y_pred)))
    ax.plot([low, high], [low, high], color="grey", linewidth=1, label="perfect prediction")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.legend(loc="upper left")
    ax.set_title(f"Champion on the test split ({len(y_true)} rows)")
    figure.tight_layout()
    return figure


def residuals_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Residuals (actual - predicted) against the prediction, on the test split; a pattern in
    them is what the model missed. y_true, y_pred : ndarray of shape (n_test,)."""
    figure, ax = plt.subplots(figsize=(7.0, 4.5))
    ax.scatter(y_pred, y_true - y_pred, s=14, alpha=0.6)
    ax.axhline(0.0, color="grey", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title(f"Champion's residuals on the test split ({len(y_true)} rows)")
    figure.tight_layout()
    return figure


def log_report(
    client: MlflowClient,
    run_id: str,
    study: optuna.Study,
    *,
    loss_curve: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    task: str = "classification",
) -> list[str]:
    """Draw everything and log it on ``run_id``; returns the artifact paths written.

    The seconds it took are logged as the metric ``report_seconds`` (its cost to a sweep).
    """
    started = time.perf_counter()
    written = log_study_report(client, run_id, study)
    written += log_champion_report(client, run_id, loss_curve, y_test, y_pred, task)
    client.log_metric(run_id, "report_seconds", time.perf_counter() - started)
    return written


def log_study_report(client: MlflowClient, run_id: str, study: optuna.Study) -> list[str]:
    """``trials.csv``, Optuna's plots and the fold spread; returns the artifact paths."""
    written = [log_trials_csv(client, run_id, study)]
    figures, notes = study_figures(study)
    complete = study_plots.complete_trials(study)
    figures["fold_spread"] = fold_spread_figure(complete, study_metric(study))
    written += _log_figures(client, run_id, figures)
    if notes:
        for note in notes:
            log.info("plot skipped: %s", note)
        client.log_text(run_id, "\n".join(notes) + "\n", "plots/skipped.txt")
        written.append("plots/skipped.txt")
    return written


def log_champion_report(
    client: MlflowClient,
    run_id: str,
    loss_curve: np.ndarray | None,
    y_test: np.ndarray | None,
    y_pred: np.ndarray | None,
    task: str = "classification",
) -> list[str]:
    """The champion's learning curve and, on the test split, its confusion matrix (a
    classification) or its predictions against the truth and its residuals (a regression),
    where given; the paths."""
    figures = {}
    if loss_curve is not None and len(loss_curve):
        figures["champion_learning_curve"] = learning_curve_figure(loss_curve, task)
    if y_test is not None and y_pred is not None and task == REGRESSION:
        figures["champion_predicted_vs_actual"] = predicted_vs_actual_figure(y_test, y_pred)
        figures["champion_residuals"] = residuals_figure(y_test, y_pred)
    elif y_test is not None and y_pred is not None:
        figures["champion_confusion_matrix"] = confusion_matrix_figure(y_test, y_pred)
    return _log_figures(client, run_id, figures)


def _log_figures(client: MlflowClient, run_id: str, figures: dict[str, Figure | None]) -> list:
    written = []
    for name, figure in figures.items():
        if figure is None:
            continue
        path = f"plots/{name}.png"
        # Every figure is laid out already: bbox_inches="tight" would draw each one twice.
        client.log_figure(run_id, figure, path, save_kwargs={"dpi": 100})
        plt.close(figure)
        written.append(path)
    return written

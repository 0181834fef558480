"""The study's plots: its history, the hyperparameters' importances, parallel coordinates and
slices, drawn with matplotlib from the trials.

Not with ``optuna.visualization.matplotlib``: it sets the ggplot style for the whole process (the
champion's confusion matrix then had grid lines through its cells), names every axis "Objective
Value", leaves pruned trials out of the history, and its slice and parallel-coordinate figures
let tick labels and the colour bar run into each other. Here every axis is named after the
metric, pruned trials have their own marker, and each figure is sized for its panels with
matplotlib's constrained layout, which keeps texts and the colour bar apart (a test checks
their bounding boxes). The history shows every trial; the parallel coordinates and slices of a
study of thousands draw its best trials and a random sample of the others, and say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.axis import Axis
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from pipeline.model.metrics import METRICS
from pipeline.search.study import study_metric


def metric_label(study: optuna.Study) -> str:
    """The value axis: ``CV accuracy (mean over folds)``, after the study's metric."""
    return f"CV {METRICS[study_metric(study)].label} (mean over folds)"


PRUNED_LABEL = "pruned (score of its last fold)"
TICK_SIZE = 8
# Saved at 100 dpi, a figure this wide (in inches) is shown at its own size in the MLflow UI's
# artifact viewer of a browser window 1400 pixels wide (850 pixels there); a wider one is scaled
# down, its labels with it (tests/e2e/test_browser.py looks).
MAX_WIDTH = 8.4
SLICE_COLUMNS = 3
COLOURS = "viridis"  # the best trials in yellow, drawn last
# Beyond this many complete trials, the parallel-coordinate and slice figures draw a sample:
# thousands of lines or dots on top of each other show no more than a thousand do.
MOST_PLOTTED = 1000
BEST_PLOTTED = 100  # the best trials, always in the sample


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def plotted_trials(
    trials: Sequence[FrozenTrial], maximize: bool, most: int = MOST_PLOTTED
) -> tuple[list[FrozenTrial], str]:
    """The complete ``trials`` a figure draws, in number order, and what they are, for its
    title: all of them (``"complete trials"``), or, when there are more than ``most``, the
    :data:`BEST_PLOTTED` best and a seeded random sample of the others, ``most`` in all."""
    if len(trials) <= most:
        return list(trials), "complete trials"
    ranked = sorted(trials, key=lambda t: t.value, reverse=maximize)
    best, others = ranked[:BEST_PLOTTED], ranked[BEST_PLOTTED:]
    drawn = np.random.default_rng(0).choice(len(others), most - len(best), replace=False)
    chosen = sorted(best + [others[i] for i in drawn], key=lambda t: t.number)
    return chosen, (
        f"{most:,} of {len(trials):,} complete trials: "
        f"the {len(best)} best, {most - len(best):,} at random"
    )


def param_names(trials: Sequence[FrozenTrial]) -> list[str]:
    """The parameters that vary, sorted (a fixed one, low == high, is left out)."""
    names = sorted({name for t in trials for name in t.params})
    return [n for n in names if len({repr(t.params[n]) for t in trials if n in t.params}) > 1]


def history_figure(study: optuna.Study) -> Figure:
    """Each trial's score by trial number, pruned ones by the last fold they fitted, and the best
    score so far."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = complete_trials(study)
    pruned = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.value is not None
    ]
    figure, ax = plt.subplots(figsize=(8.0, 5.0), layout="constrained")
    if pruned:
        ax.scatter(
            [t.number for t in pruned],
            [t.value for t in pruned],
            marker="x",
            s=16,
            color="tab:orange",
            label=f"{PRUNED_LABEL}: {len(pruned)}",
        )
    numbers = np.array([t.number for t in complete])
    values = np.array([t.value for t in complete])
    ax.scatter(numbers, values, s=16, color="tab:blue", label=f"complete: {len(complete)}")
    best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric_label(study))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right" if maximize else "upper right", fontsize=TICK_SIZE + 1)
    ax.set_title("Optimisation history")
    return figure


def importances_figure(study: optuna.Study) -> Figure:
    """How much each hyperparameter explains of the score (Optuna's default evaluator)."""
    importances = optuna.importance.get_param_importances(study)
    names = list(reversed(importances))
    values = [importances[name] for name in names]
    figure, ax = plt.subplots(figsize=(8.0, 1.5 + 0.5 * len(names)), layout="constrained")
    ax.barh(names, values, color="tab:blue")
    for row, value in enumerate(values):
        ax.text(value, row, f" {value:.2f}" if value >= 0.01 else " <0.01", va="center")
    ax.set_xlim(0, max(values, default=1.0) * 1.15 or 1.0)
    ax.set_xlabel(f"importance for the {metric_label(study)}")
    ax.set_title("Hyperparameter importances")
    return figure


def slice_figure(study: optuna.Study) -> Figure:
    """The score against each hyperparameter, one panel each (rows of three, so that the figure
    fits the UI's width), coloured by trial number; past :data:`MOST_PLOTTED` complete trials,
    a sample of them (:func:`plotted_trials`, named in the title)."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials, shown = plotted_trials(complete_trials(study), maximize)
    names = param_names(trials) or sorted(trials[0].params)
    columns = min(SLICE_COLUMNS, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(min(MAX_WIDTH, 2.6 * columns + 1.5), 3.0 * rows + 0.5),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    norm = Normalize(0, max(t.number for t in trials) or 1)
    panels = axes.ravel()
    for ax, name in zip(panels, names, strict=False):
        have = [t for t in trials if name in t.params]
        distribution = have[0].distributions[name]
        positions = place_axis(ax.xaxis, distribution, [t.params[name] for t in have])
        points = ax.scatter(
            positions,
            [t.value for t in have],
            c=[t.number for t in have],
            cmap=COLOURS,
            norm=norm,
            s=14,
        )
        ax.set_xlabel(name)
        ax.tick_params(labelsize=TICK_SIZE)
    for ax in panels[len(names) :]:
        ax.remove()
    for row in axes:
        row[0].set_ylabel(metric_label(study))
    figure.colorbar(points, ax=panels[: len(names)].tolist(), label="trial", pad=0.02)
    figure.suptitle(f"Score against each hyperparameter ({shown})")
    return figure


def parallel_coordinate_figure(study: optuna.Study) -> Figure:
    """One line per complete trial through the score and each hyperparameter, each on its own
    vertical axis (its values and labels beside it), coloured by the score; past
    :data:`MOST_PLOTTED` complete trials, a sample of them (:func:`plotted_trials`, named in
    the title)."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials, shown = plotted_trials(complete_trials(study), maximize)
    names = param_names(trials) or sorted(trials[0].params)
    trials = [t for t in trials if all(n in t.params for n in names)]
    trials.sort(key=lambda t: t.value, reverse=study.direction.name == "MINIMIZE")
    columns = [(None, [t.value for t in trials])]
    columns += [(trials[0].distributions[n], [t.params[n] for t in trials]) for n in names]
    figure, ax = plt.subplots(
        figsize=(min(MAX_WIDTH, 1.3 * len(columns) + 1.5), 5.0), layout="constrained"
    )
    heights = np.column_stack([_column(ax, index, *column) for index, column in enumerate(columns)])
    x = np.arange(len(columns))
    lines = LineCollection(
        [np.column_stack([x, row]) for row in heights], cmap=COLOURS, linewidths=1.0, alpha=0.8
    )
    lines.set_array(np.array([t.value for t in trials]))
    ax.add_collection(lines)
    ax.set_xlim(-0.6, len(columns) - 0.8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(x, ["CV " + METRICS[study_metric(study)].label, *names], fontsize=TICK_SIZE + 1)
    ax.yaxis.set_major_locator(NullLocator())
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    figure.colorbar(lines, ax=ax, label=metric_label(study), pad=0.02)
    ax.set_title(f"Parallel coordinates ({shown})")
    return figure


def _column(ax, index: int, distribution: BaseDistribution | None, values: list) -> np.ndarray:
    """Draw the vertical axis of column ``index`` with its labels beside it; returns the values'
    heights in [0, 1]. ``distribution`` None is the score's column: its own range."""
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        heights = np.array([choices.index(v) for v in values], dtype=float)
        ticks, labels = np.arange(len(choices), dtype=float), [str(c) for c in choices]
        low, high = 0.0, float(len(choices) - 1)
    else:
        heights = np.asarray(values, dtype=float)
        low, high = (
            (float(heights.min()), float(heights.max()))
            if distribution is None
            else (float(distribution.low), float(distribution.high))
        )
        log = getattr(distribution, "log", False)
        ticks = np.array(log_ticks(low, high) if log else _linear_ticks(low, high, distribution))
        labels = [f"{t:g}" for t in ticks]
        if log:
            heights, ticks, low, high = (
                np.log10(heights),
                np.log10(ticks),
                np.log10(low),
                np.log10(high),
            )
    ax.axvline(index, color="0.35", linewidth=0.8, zorder=0)
    if high <= low:  # one value: mid-height
        _axis_label(ax, index, 0.5, labels[0])
        return np.full(len(values), 0.5)
    for tick, label in zip(ticks, labels, strict=True):
        _axis_label(ax, index, (tick - low) / (high - low), label)
    return (heights - low) / (high - low)


def _axis_label(ax, index: int, height: float, label: str) -> None:
    """A value's label left of its column's axis, on a pale box that keeps it readable over
    the lines."""
    box = {"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.0}
    ax.text(index - 0.04, height, label, ha="right", va="center", fontsize=TICK_SIZE, bbox=box)


def _linear_ticks(low: float, high: float, distribution: BaseDistribution | None) -> list:
    integer = isinstance(distribution, IntDistribution)
    ticks = MaxNLocator(nbins=4, integer=integer).tick_values(low, high)
    return [t for t in ticks if low <= t <= high] or [low]


def log_ticks(low: float, high: float, most: int = 5) -> list[float]:
    """Round numbers for a log axis from ``low`` to ``high``: 1-2-5, 1-3 or 1 per decade, the
    densest that gives at most ``most`` ticks (a decade of 1-2-5 labels did not fit a panel);
    a range too narrow for two of them gets linear ones."""
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    for steps in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**d for d in decades for m in steps if low <= m * 10.0**d <= high]
        if 2 <= len(ticks) <= most:
            return ticks
    if len(ticks) > most:  # many decades: every 2nd (3rd, ...) one
        return ticks[:: -(-len(ticks) // most)]
    return [t for t in MaxNLocator(nbins=3).tick_values(low, high) if low <= t <= high]


def place_axis(axis: Axis, distribution: BaseDistribution, values: list) -> np.ndarray:
    """Positions of ``values`` along ``axis``, whose scale, limits and ticks follow the
    parameter's distribution: categories by name, log ranges on a log scale with round ticks."""
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        axis.set_major_locator(FixedLocator(range(len(choices))))
        axis.set_ticklabels([str(c) for c in choices], rotation=45, ha="right")
        axis.axes.set_xlim(-0.5, len(choices) - 0.5)
        return np.array([choices.index(v) for v in values])
    low, high = float(distribution.low), float(distribution.high)
    if getattr(distribution, "log", False):
        axis.axes.set_xscale("log")
        axis.set_major_locator(FixedLocator(log_ticks(low, high)))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(lambda value, _: f"{value:g}")
        axis.axes.set_xlim(low / 1.15, high * 1.15)
    else:
        integer = isinstance(distribution, IntDistribution)
        axis.set_major_locator(MaxNLocator(nbins=4, integer=integer))
        margin = 0.05 * (high - low) or 0.5
        axis.axes.set_xlim(low - margin, high + margin)
    return np.asarray(values, dtype=float)

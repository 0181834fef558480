"""Every plot of the report is readable at the size it is saved (and the MLflow UI shows): no two
texts overlap, no panel or colour bar covers another, axes are named after the metric, and
pruned trials are in the history. Drawn from a study of the real search space (conf/)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optuna
import pytest
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from optuna.trial import TrialState

from pipeline.config.search_space import suggest_params
from pipeline.results.report import (
    confusion_matrix_figure,
    fold_spread_figure,
    learning_curve_figure,
    study_figures,
)
from pipeline.results.study_plots import (
    MAX_WIDTH,
    PRUNED_LABEL,
    complete_trials,
    log_ticks,
    metric_label,
)
from tests.helpers import FAST, REPORT_PLOTS, compose_config

FOLDS = 5
DPI = 100  # as pipeline.results.report saves them


def sweep_like_study(n_trials: int, seed: int = 0, overrides=()) -> optuna.Study:
    """Trials of the search space of conf/ (with ``overrides``) with fold scores that depend on
    the parameters; every third trial is pruned after its first fold, as a sweep's pruner does."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = compose_config(list(overrides)).search_space
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    rng = np.random.default_rng(seed)
    for number in range(n_trials):
        trial = study.ask()
        params = suggest_params(trial, space)
        base = 0.9 + 0.02 * np.log10(params["learning_rate"] * 1000) + params["hidden_units"] / 1e4
        scores = np.clip(base + rng.normal(0, 0.01, FOLDS), 0, 1)
        for fold, score in enumerate(scores):
            trial.report(float(score), step=fold)
            if number % 3 == 2:
                break
        if number % 3 == 2:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, float(scores.mean()))
    return study


def report_figures(study: optuna.Study) -> dict[str, matplotlib.figure.Figure]:
    figures, notes = study_figures(study)
    assert not notes
    figures["fold_spread"] = fold_spread_figure(complete_trials(study), "accuracy")
    figures["champion_learning_curve"] = learning_curve_figure(np.geomspace(2.3, 0.01, 300))
    labels = np.arange(10)  # digits: the data set with the most classes
    y_pred = np.where(np.arange(360) % 7 == 0, (np.arange(360) + 1) % 10, np.arange(360) % 10)
    figures["champion_confusion_matrix"] = confusion_matrix_figure(
        labels[np.arange(360) % 10], y_pred
    )
    return figures


def drawn_texts(figure) -> list[Text]:
    """The texts a draw of ``figure`` shows: non-empty, visible, tick labels of ticks in view."""
    figure.set_dpi(DPI)
    figure.canvas.draw()
    out_of_view = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            margin = 1e-9 * (high - low)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - margin <= tick.get_loc() <= high + margin:
                    out_of_view |= {id(tick.label1), id(tick.label2)}
    return [
        text
        for text in figure.findobj(Text)
        if text.get_visible() and text.get_text().strip() and id(text) not in out_of_view
    ]


def area(a: Bbox, b: Bbox) -> float:
    overlap = Bbox.intersection(a, b)
    return 0.0 if overlap is None else overlap.width * overlap.height


def collisions(figure) -> list[str]:
    """What a reader could not read: texts over texts, panels over panels, texts over a panel
    they do not belong to, texts cut off by the figure's edge (in pixels, > 1 px²)."""
    texts = drawn_texts(figure)
    renderer = figure.canvas.get_renderer()
    boxes = [(text, text.get_window_extent(renderer)) for text in texts]
    panels = [(ax, ax.get_window_extent(renderer)) for ax in figure.axes]
    found = []
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1 :]:
            if area(box, other_box) > 1:
                found.append(f"text {text.get_text()!r} over {other.get_text()!r}")
        for ax, panel in panels:
            if ax is not text.axes and area(box, panel) > 1:
                found.append(f"text {text.get_text()!r} over panel {ax.get_label() or ax}")
        edge = figure.bbox
        if box.x0 < edge.x0 - 1 or box.y0 < edge.y0 - 1 or box.x1 > edge.x1 + 1:
            found.append(f"text {text.get_text()!r} cut off")
    for i, (ax, panel) in enumerate(panels):
        for other, other_panel in panels[i + 1 :]:
            if area(panel, other_panel) > 1:
                found.append(f"panel {ax} over panel {other}")
    return found


@pytest.fixture(scope="module")
def figures():
    drawn = report_figures(sweep_like_study(300))
    yield drawn
    for figure in drawn.values():
        plt.close(figure)


@pytest.mark.parametrize(
    "name",
    REPORT_PLOTS,
)
def test_no_text_or_panel_of_a_plot_covers_another(figures, name):
    assert collisions(figures[name]) == []
    assert figures[name].get_figwidth() <= MAX_WIDTH  # else the UI shows it scaled down


def test_the_small_search_space_of_the_tests_draws_every_plot_readably():
    study = sweep_like_study(8, overrides=FAST)  # e.g. hidden_units 16-32: no decade tick
    figures, notes = study_figures(study)
    assert notes == []
    for name, figure in figures.items():
        assert collisions(figure) == [], name
        plt.close(figure)


def test_the_check_sees_labels_running_into_each_other_and_a_colour_bar_over_a_panel():
    figure, axes = plt.subplots(1, 2, figsize=(4, 3))
    axes[0].set_xticks(range(8), [f"label-{i}" for i in range(8)])
    points = axes[1].scatter([0, 1], [0, 1], c=[0, 1])
    figure.colorbar(points, cax=figure.add_axes((0.7, 0.2, 0.05, 0.6)))  # over the 2nd panel
    found = collisions(figure)
    plt.close(figure)
    assert any("'label-0' over 'label-1'" in f for f in found)
    assert any(f.startswith("panel") for f in found)


def test_axes_are_named_after_the_metric_and_pruned_trials_are_in_the_history(figures):
    study = sweep_like_study(300)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    history = figures["optimization_history"].axes[0]
    assert history.get_ylabel() == metric_label(study) == "CV accuracy (mean over folds)"
    marked = {text.get_text() for text in history.get_legend().get_texts()}
    assert f"{PRUNED_LABEL}: {len(pruned)}" in marked
    plotted = {tuple(point) for c in history.collections for point in c.get_offsets()}
    assert {(t.number, t.value) for t in pruned} <= plotted
    assert figures["slice"].axes[0].get_ylabel() == metric_label(study)
    assert figures["parallel_coordinate"].axes[-1].get_ylabel() == metric_label(study)  # colour bar
    assert "Objective Value" not in {t.get_text() for f in figures.values() for t in drawn_texts(f)}


def test_the_confusion_matrix_has_no_grid_lines_and_the_plots_leave_the_style_alone(figures):
    matrix = figures["champion_confusion_matrix"].axes[0]
    assert not any(line.get_visible() for line in matrix.get_xgridlines() + matrix.get_ygridlines())
    assert plt.rcParams["axes.grid"] is False  # no style of a plotting library left behind


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.001, 0.1, [0.001, 0.003, 0.01, 0.03, 0.1]),  # 1-2-5 would give 7 labels
        (16, 256, [20, 50, 100, 200]),
        (1e-5, 1.0, [1e-5, 1e-3, 1e-1]),  # six decades: every other one
        (16, 32, [18, 24, 30]),  # no two round numbers: linear ones
    ],
)
def test_log_axes_get_a_few_round_ticks(low, high, expected):
    np.testing.assert_allclose(log_ticks(low, high), expected)

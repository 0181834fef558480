"""The search space of ``conf/search_space/*.yaml`` turned into Optuna suggestions.

Optuna's flat trial parameters (``learning_rate``, ``hidden_units`` or ``hidden_units_<i>``,
``hidden_layers``, ``iterations``, ``activation``) are the names users see in the MLflow UI and
in the study; :func:`network_params` maps them to :class:`core.MLPClassifier` arguments, so
a trial, a refit and a reproduction from an MLflow run all build the very same network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna


def suggest_params(trial: optuna.Trial, space) -> dict[str, Any]:
    """Ask the trial for one point of the space; returns Optuna's flat parameter dict."""
    trial.suggest_float(
        "learning_rate",
        space.learning_rate.low,
        space.learning_rate.high,
        log=space.learning_rate.log,
    )
    layers = _suggest_int(trial, "hidden_layers", space.hidden_layers)
    if space.per_layer_units:
        for index in range(layers):
            _suggest_int(trial, f"hidden_units_{index}", space.hidden_units)
    else:
        _suggest_int(trial, "hidden_units", space.hidden_units)
    _suggest_int(trial, "iterations", space.iterations)
    trial.suggest_categorical("activation", list(space.activation.choices))
    return dict(trial.params)


def search_distributions(space) -> dict[str, optuna.distributions.BaseDistribution]:
    """The distribution of every parameter :func:`suggest_params` may suggest, by name."""
    distributions = {
        "learning_rate": optuna.distributions.FloatDistribution(
            space.learning_rate.low, space.learning_rate.high, log=space.learning_rate.log
        ),
        "hidden_layers": _int_distribution(space.hidden_layers),
        "iterations": _int_distribution(space.iterations),
        "activation": optuna.distributions.CategoricalDistribution(list(space.activation.choices)),
    }
    if space.per_layer_units:
        for index in range(space.hidden_layers.high):
            distributions[f"hidden_units_{index}"] = _int_distribution(space.hidden_units)
    else:
        distributions["hidden_units"] = _int_distribution(space.hidden_units)
    return distributions


def config_key(param: str) -> str:
    """The search_space key behind an Optuna parameter name (``hidden_units_2``: hidden_units)."""
    if param.startswith("hidden_units"):
        return "search_space.hidden_units"
    return f"search_space.{param}" + (".choices" if param == "activation" else "")


def _int_distribution(node) -> optuna.distributions.IntDistribution:
    step = 1 if node.log else node.step
    return optuna.distributions.IntDistribution(node.low, node.high, log=node.log, step=step)


def _suggest_int(trial: optuna.Trial, name: str, node) -> int:
    step = None if node.log else node.step
    return trial.suggest_int(name, node.low, node.high, step=step or 1, log=node.log)


def network_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Map flat trial parameters to the searched :class:`core.MLPClassifier` arguments."""
    layers = int(params["hidden_layers"])
    if "hidden_units" in params:
        sizes = (int(params["hidden_units"]),) * layers
    else:
        sizes = tuple(int(params[f"hidden_units_{i}"]) for i in range(layers))
    return {
        "hidden_layer_sizes": sizes,
        "learning_rate": float(params["learning_rate"]),
        "iterations": int(params["iterations"]),
        "activation": str(params["activation"]),
    }


def grid_sampler(
    search_space, points: int = 3, seed: int | None = None
) -> optuna.samplers.GridSampler:
    """An Optuna GridSampler over ``points`` values per numeric dimension and every choice.

    Per-layer widths are not gridded (the grid needs a fixed set of names); the shared width is.
    """
    grid: dict[str, list] = {
        "learning_rate": _grid_values(search_space.learning_rate, points, integer=False),
        "hidden_layers": _grid_values(search_space.hidden_layers, points, integer=True),
        "hidden_units": _grid_values(search_space.hidden_units, points, integer=True),
        "iterations": _grid_values(search_space.iterations, points, integer=True),
        "activation": list(search_space.activation.choices),
    }
    return optuna.samplers.GridSampler(grid, seed=seed)


def _grid_values(node, points: int, *, integer: bool) -> list:
    if node.get("log"):
        values = np.geomspace(node.low, node.high, points)
    else:
        values = np.linspace(node.low, node.high, points)
    if integer:
        return sorted({int(round(v)) for v in values})
    return sorted({float(v) for v in values})

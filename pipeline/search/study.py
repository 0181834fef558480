"""The named Optuna study: created or resumed, and resumed only with the direction and the
settings its trials were scored with.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from pipeline.compat import distribution_change_refused
from pipeline.config.search_space import config_key
from pipeline.errors import UserInputError
from pipeline.names import LEGACY_METRIC, LEGACY_MODEL, LEGACY_TASK, SETTINGS_ATTR, cv_mean

# What the settings added since a study first recorded its own were then: a study made before
# them is resumed with these (it classified, scored accuracy, and kept every column).
LEGACY_SETTINGS = {
    "dataset.task": LEGACY_TASK,
    "cv.metric": LEGACY_METRIC,
    "dataset.drop": [],
    "dataset.categorical": [],
    "dataset.max_categories": 100,
    **{f"model.{key}": value for key, value in LEGACY_MODEL.items()},
}


def check_direction(storage, name: str, direction: str) -> None:
    """An existing study of that name must have ``direction``; checked before anything is written."""
    existing = find_study(storage, name)
    if existing is None:
        return
    found = existing.direction.name.lower()
    if found != direction:
        raise UserInputError(
            f"study.direction={direction}: study {name!r} already exists with direction "
            f"{found}; use another study.name or study.direction={found}"
        )


def check_settings(storage, name: str, settings: dict[str, Any]) -> None:
    """An existing study of that name was made with these ``settings``; checked before anything
    is written.

    ``settings`` are what a trial's score depends on besides its hyperparameters (the data, the
    hold-out split, the folds, the fixed training settings; see :data:`SETTINGS_ATTR`). Resumed
    with others, a study would rank trials scored on different data or folds against each other
    and refit its champion on data it was never chosen on. A study made before the settings were
    recorded has nothing to compare with; it gets them when it is next opened.
    """
    existing = find_study(storage, name)
    recorded = None if existing is None else existing.user_attrs.get(SETTINGS_ATTR)
    if recorded is None:
        return
    recorded = {**LEGACY_SETTINGS, **recorded}
    differing = [key for key in sorted(settings.keys() | recorded.keys())
                 if settings.get(key) != recorded.get(key)]  # fmt: skip
    if differing:
        key, more = differing[0], differing[1:]
        also = f" (also {', '.join(more)})" if more else ""
        raise UserInputError(
            f"{key}={settings.get(key)}: study {name!r} was made with {key}="
            f"{recorded.get(key)}{also}, so their scores would not compare; resume with the "
            "study's settings or give another study.name"
        )


def record_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Keep ``settings`` on a study that has none yet (a new one, or one made before they were
    recorded), for :func:`check_settings` when it is resumed."""
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, settings)


def study_metric(study: optuna.Study) -> str:
    """The metric the study's trials are scored with (``cv.metric``, kept in its settings)."""
    settings = study.user_attrs.get(SETTINGS_ATTR) or {}
    return settings.get("cv.metric", LEGACY_METRIC)


def open_study(storage, name: str, direction: str, metric: str, sampler, pruner) -> optuna.Study:
    """Create the study or load the existing one of that name (then its direction must match);
    ``metric`` names its value for optuna-dashboard."""
    check_direction(storage, name, direction)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    existing = study.direction.name.lower()
    if existing != direction:
        raise UserInputError(
            f"study.direction={direction}: study {name!r} already exists with direction "
            f"{existing}; use another study.name or study.direction={existing}"
        )
    if study.metric_names is None:
        # optuna-dashboard names its axes after it (else "Objective 0").
        study.set_metric_names([cv_mean(metric)])
    return study


def find_study(storage, name: str) -> optuna.Study | None:
    """The study if it already exists, without creating it."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def check_search_space(storage, name: str, distributions: dict) -> None:
    """An existing study of that name can take the search space of ``distributions``; checked
    before anything is written.

    Ranges may change between runs (a trial keeps the range it was drawn from); a parameter's
    kind, its log scale and a categorical's choices may not: Optuna's storage refuses them at the
    first trial that suggests the parameter.
    """
    existing = find_study(storage, name)
    if existing is None:
        return
    recorded = {}
    for trial in existing.get_trials(deepcopy=False):
        recorded.update(trial.distributions)  # the latest trial's, by name
    for param, new in distributions.items():
        old = recorded.get(param)
        problem = None if old is None else _incompatibility(old, new)
        if problem:
            key = config_key(param)
            raise UserInputError(
                f"{key}: study {name!r} was searched with {param} {problem}; Optuna cannot "
                "change that within a study: keep it, or give another study.name"
            )


def _incompatibility(old, new) -> str | None:
    """What differs between a recorded and a new distribution, if Optuna refuses the change."""
    if not distribution_change_refused(old, new):
        return None
    if type(old) is not type(new):
        return f"as a {type(old).__name__}, not a {type(new).__name__}"
    if isinstance(old, CategoricalDistribution):
        return f"choices {list(old.choices)}, not {list(new.choices)}"
    return f"log={old.log}, not log={new.log}"

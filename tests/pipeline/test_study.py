"""pipeline.search.study: the storage, and a study resumed only with the settings its trials were
scored with."""

from __future__ import annotations

import optuna
import pytest

from pipeline.config.settings import comparable_settings
from pipeline.errors import UserInputError
from pipeline.names import SETTINGS_ATTR
from pipeline.search.storage import open_storage
from pipeline.search.study import check_settings, record_settings
from tests.helpers import compose_config


def new_study(storage, name="s"):
    return optuna.create_study(storage=storage, study_name=name, direction="maximize")


def test_the_settings_name_the_data_split_folds_and_training_settings():
    settings = comparable_settings(compose_config(["dataset=iris", "cv.folds=3"]))
    assert settings["dataset.name"] == "iris" and settings["cv.folds"] == 3
    assert {"cv.test_size", "study.seed", "model.solver", "model.dtype"} <= settings.keys()
    # What a resumed sweep may change is left out.
    assert not any(key.startswith(("search_space.", "sampler.", "pruner.")) for key in settings)
    assert "study.n_trials" not in settings and "cv.n_jobs" not in settings


def test_a_study_resumed_with_its_own_settings_passes():
    storage = optuna.storages.InMemoryStorage()
    settings = comparable_settings(compose_config(["dataset=iris"]))
    record_settings(new_study(storage), settings)
    check_settings(storage, "s", settings)
    check_settings(storage, "other", {**settings, "cv.folds": 9})  # no such study yet


def test_a_study_resumed_with_other_settings_names_the_first_that_differs():
    storage = optuna.storages.InMemoryStorage()
    before = comparable_settings(compose_config(["dataset=iris", "cv.folds=3"]))
    record_settings(new_study(storage), before)
    after = comparable_settings(compose_config(["dataset=wine", "cv.folds=4"]))
    with pytest.raises(UserInputError) as info:
        check_settings(storage, "s", after)
    message = str(info.value)
    assert message.startswith("cv.folds=4: study 's' was made with cv.folds=3 (also dataset.name)")
    assert "\n" not in message


def test_a_study_without_recorded_settings_gets_them_and_keeps_the_first():
    storage = optuna.storages.InMemoryStorage()
    study = new_study(storage)
    settings = comparable_settings(compose_config(["dataset=iris"]))
    check_settings(storage, "s", settings)  # made before settings were recorded: nothing to compare
    record_settings(study, settings)
    record_settings(study, {**settings, "cv.folds": 9})  # never overwritten
    assert study.user_attrs[SETTINGS_ATTR] == settings


def test_an_sqlite_storage_gets_its_folder_like_a_journal_file(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'new' / 'sub' / 'optuna.db'}", 10)
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert (tmp_path / "new" / "sub" / "optuna.db").is_file()


def test_a_study_recorded_before_the_task_and_metric_settings_resumes_with_their_defaults():
    """Studies made before dataset.task, cv.metric, dataset.drop, dataset.categorical and
    dataset.max_categories existed recorded none of them: they classified, scored accuracy and
    kept every column, and resume as such."""
    storage = optuna.storages.InMemoryStorage()
    cfg = compose_config(["dataset=iris", "dataset.task=classification", "cv.metric=accuracy"])
    now = comparable_settings(cfg)
    new_keys = ("dataset.task", "cv.metric", "dataset.drop", "dataset.categorical")
    old = {k: v for k, v in now.items() if k not in (*new_keys, "dataset.max_categories")}
    record_settings(new_study(storage), old)
    check_settings(storage, "s", now)
    other = comparable_settings(compose_config(["dataset=iris", "cv.metric=balanced_accuracy"]))
    with pytest.raises(
        UserInputError, match=r"^cv.metric=balanced_accuracy: .* cv.metric=accuracy"
    ):
        check_settings(storage, "s", {**other, "dataset.task": "classification"})


def test_a_study_made_with_full_batches_and_no_convergence_stop_is_refused_with_the_new_defaults():
    """model.batch_size=200 and model.n_iter_no_change=10 became the defaults: a study made
    before (full batches, every iteration trained, no n_iter_no_change recorded) resumes only
    with its own settings, and says which differ in one line."""
    storage = optuna.storages.InMemoryStorage()
    old_cfg = compose_config(
        ["dataset=iris", "model.batch_size=null", "model.n_iter_no_change=null"]
    )
    old = comparable_settings(old_cfg)
    del old["model.n_iter_no_change"], old["model.tol"]  # not recorded then
    record_settings(new_study(storage), old)
    check_settings(storage, "s", comparable_settings(old_cfg))
    with pytest.raises(
        UserInputError,
        match=r"^model.batch_size=200: .* model.batch_size=None \(also model.n_iter_no_change\)",
    ):
        check_settings(storage, "s", comparable_settings(compose_config(["dataset=iris"])))

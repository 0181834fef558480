"""Tables as users bring them: the task inferred from the target, features of every kind encoded
for the fold's preprocessing, and one line naming the column for what cannot be used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.config.schema import DatasetConfig
from pipeline.config.task import cv_splitter, resolve_task
from pipeline.data import (
    MAX_INFERRED_CLASSES,
    check_targets,
    infer_task,
    load_dataset,
    split_train_test,
)
from pipeline.errors import UserInputError
from pipeline.model.preprocessing import CATEGORICAL, NUMERIC
from tests.helpers import compose_config


def table_config(path, target="label", **settings):
    return OmegaConf.structured(
        DatasetConfig(name=settings.pop("name", "csv"), path=str(path), target=target, **settings)
    )


def mixed_frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.normal(40, 10, rows).round(1),
            "member": rng.random(rows) > 0.5,
            "city": rng.choice(["Paris", "Lyon", "Nice"], rows),
            "zip": rng.choice([75001, 69001, 6000], rows),
            "label": rng.choice(["yes", "no"], rows),
        }
    )
    frame.loc[3, "age"] = np.nan
    frame.loc[5, "city"] = None
    return frame


@pytest.mark.parametrize(
    ("values", "task", "why"),
    [
        (["a", "b", "a"], "classification", "text values"),
        ([True, False, True], "classification", "true/false values"),
        ([0.5, 1.25, 3.0], "regression", "decimal numbers"),
        (list(range(MAX_INFERRED_CLASSES)) * 2, "classification", "20 distinct integers"),
        (list(range(MAX_INFERRED_CLASSES + 1)), "regression", "21 distinct integers"),
    ],
)
def test_the_task_is_inferred_from_the_target(values, task, why):
    assert infer_task(pd.Series(values)) == (task, f"inferred: {why}")


def test_a_mixed_table_is_encoded_with_its_missing_values(tmp_path):
    path = tmp_path / "people.csv"
    mixed_frame().to_csv(path, index=False)
    data = load_dataset(table_config(path, drop=["id"], categorical=["zip"]), seed=0)
    assert data.task == "classification" and data.task_reason == "inferred: text values"
    assert data.feature_names == ("age", "member", "city", "zip")
    kinds = {c.name: c.kind for c in data.columns}
    assert kinds == {"age": NUMERIC, "member": NUMERIC, "city": CATEGORICAL, "zip": CATEGORICAL}
    city = data.columns[2]
    assert city.categories == ("Lyon", "Nice", "Paris")
    assert data.columns[3].categories == ("6000", "69001", "75001")
    assert np.isnan(data.X[3, 0]) and np.isnan(data.X[5, 2])
    assert set(np.unique(data.X[~np.isnan(data.X[:, 2]), 2])) == {0.0, 1.0, 2.0}
    assert data.n_inputs == 2 + 4 + 4  # numeric, then each category plus a missing indicator


def test_a_parquet_file_reads_like_the_same_csv(tmp_path):
    frame = mixed_frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    from_csv = load_dataset(table_config(tmp_path / "t.csv"), seed=0)
    from_parquet = load_dataset(table_config(tmp_path / "t.parquet", name="parquet"), seed=0)
    assert from_csv.columns == from_parquet.columns
    np.testing.assert_array_equal(from_csv.X, from_parquet.X)
    np.testing.assert_array_equal(from_csv.y, from_parquet.y)


def test_a_float_target_is_a_regression_split_without_strata(tmp_path):
    frame = mixed_frame(100).drop(columns="label")
    frame["price"] = np.random.default_rng(1).normal(300.0, 50.0, 100)
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(table_config(path, target="price"), seed=0)
    assert data.task == "regression" and data.y.dtype == np.float64 and data.n_outputs == 1
    split = split_train_test(data, 0.2, seed=0)
    assert len(split.y_test) == 20
    folds = list(cv_splitter("regression", 5, 0).split(split.X_train, split.y_train))
    assert sorted(np.concatenate([valid for _, valid in folds])) == list(range(80))


def test_diabetes_is_a_regression_and_its_default_metric_is_rmse():
    cfg = compose_config(["dataset=diabetes"])
    data = load_dataset(cfg.dataset, seed=0)
    resolve_task(cfg, data)
    assert (cfg.dataset.task, cfg.cv.metric, cfg.study.direction) == (
        "regression",
        "rmse",
        "minimize",
    )


@pytest.mark.parametrize(
    ("metric", "direction"),
    [("accuracy", "maximize"), ("log_loss", "minimize"), ("roc_auc", "maximize")],
)
def test_the_direction_follows_the_metric(metric, direction):
    cfg = compose_config(["dataset=iris", f"cv.metric={metric}"])
    resolve_task(cfg, load_dataset(cfg.dataset, seed=0))
    assert cfg.study.direction == direction


def test_a_regression_needs_two_rows_in_each_fold(tmp_path):
    frame = pd.DataFrame({"x": np.arange(9.0), "y": np.arange(9.0) * 1.5})
    frame.to_csv(tmp_path / "tiny.csv", index=False)
    data = load_dataset(table_config(tmp_path / "tiny.csv", target="y"), seed=0)
    with pytest.raises(UserInputError, match=r"^cv.folds=5: the training split .* 7 rows"):
        check_targets(data, folds=5, test_size=0.2)
    check_targets(data, folds=3, test_size=0.2)


def test_integers_named_categorical_are_one_hot_not_scaled(tmp_path):
    frame = pd.DataFrame({"zip": [1, 2, 3, 1, 2, 3] * 5, "label": [0, 1] * 15})
    frame.loc[4, "zip"] = np.nan  # pandas now reads the column as floats: 1.0, 2.0, ...
    frame.to_csv(tmp_path / "z.csv", index=False)
    data = load_dataset(table_config(tmp_path / "z.csv", categorical=["zip"]), seed=0)
    assert data.columns[0].categories == ("1", "2", "3")  # "1", not "1.0"


def test_a_numeric_column_with_infinity_is_refused_by_name(tmp_path):
    frame = mixed_frame()
    frame.loc[2, "age"] = np.inf
    frame.to_csv(tmp_path / "inf.csv", index=False)
    with pytest.raises(UserInputError, match=r"column 'age' has infinite values"):
        load_dataset(table_config(tmp_path / "inf.csv"), seed=0)


def test_a_text_column_past_max_categories_is_refused_with_the_way_out(tmp_path):
    frame = mixed_frame()
    frame["name"] = [f"person {i}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "names.csv", index=False)
    with pytest.raises(UserInputError) as raised:
        load_dataset(table_config(tmp_path / "names.csv", max_categories=50), seed=0)
    message = str(raised.value)
    assert "column 'name'" in message and "60 distinct texts" in message
    assert "dataset.drop=[name]" in message and "dataset.max_categories" in message
    data = load_dataset(table_config(tmp_path / "names.csv", drop=["name"]), seed=0)
    assert "name" not in data.feature_names

"""Composition of every option of every config group, and the checks that stop a bad config."""

from __future__ import annotations

import importlib.util

import optuna
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from pipeline.config.checks import validate_config
from pipeline.errors import UserInputError
from pipeline.search.strategy import build_pruner, build_sampler
from tests.helpers import CONF_DIR, compose_config


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_its_documented_options():
    assert group_options("dataset") == sorted(
        ["digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "csv", "parquet"]
    )
    assert group_options("sampler") == sorted(["tpe", "random", "gp", "qmc", "grid"])
    assert group_options("pruner") == sorted(
        ["wilcoxon", "median", "hyperband", "percentile", "none"]
    )


@pytest.mark.parametrize("dataset", group_options("dataset"))
def test_every_dataset_composes_and_validates(dataset):
    extra = ["dataset.path=x", "dataset.target=y"] if dataset in ("csv", "parquet") else []
    cfg = compose_config([f"dataset={dataset}", *extra])
    validate_config(cfg)
    assert cfg.dataset.name == dataset


@pytest.mark.parametrize("sampler", group_options("sampler"))
def test_every_sampler_composes_and_builds(sampler):
    if sampler == "gp" and importlib.util.find_spec("torch") is None:
        pytest.skip("GPSampler needs torch, which is not installed here")
    cfg = compose_config([f"sampler={sampler}"])
    validate_config(cfg)
    assert isinstance(build_sampler(cfg), optuna.samplers.BaseSampler)


@pytest.mark.parametrize("pruner", group_options("pruner"))
def test_every_pruner_composes_and_builds(pruner):
    cfg = compose_config([f"pruner={pruner}"])
    validate_config(cfg)
    assert isinstance(build_pruner(cfg), optuna.pruners.BasePruner)


def test_search_space_group_composes_with_overrides():
    cfg = compose_config(
        ["search_space.learning_rate.high=0.5", "search_space.activation.choices=[relu,tanh]"]
    )
    validate_config(cfg)
    assert cfg.search_space.learning_rate.high == 0.5
    assert list(cfg.search_space.activation.choices) == ["relu", "tanh"]


def test_defaults_match_the_contract():
    cfg = compose_config()
    assert cfg.dataset.name == "digits"
    assert cfg.cv.folds == 5 and cfg.cv.n_jobs == -1 and cfg.cv.test_size == 0.2
    assert cfg.tracking.uri == "sqlite:///mlruns/mlflow.db"
    assert cfg.tracking.artifact_location == "mlruns/artifacts"
    assert cfg.study.storage.startswith("mlruns/")


def test_workers_get_distinct_sampler_seeds_but_qmc_shares_its_sequence():
    tpe0 = build_sampler(compose_config(["worker=0"]))
    tpe1 = build_sampler(compose_config(["worker=1"]))
    assert tpe0._rng.rng.random() != tpe1._rng.rng.random()
    cfg = compose_config(["sampler=qmc", "worker=3"])
    assert build_sampler(cfg)._seed == cfg.study.seed


def test_unknown_key_fails_at_compose_time():
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["study.n_trails=5"])
    assert "n_trails" in str(info.value.__cause__ or info.value)


def test_wrong_type_fails_at_compose_time():
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)) as info:
        compose_config(["cv.folds=five"])
    assert "folds" in str(info.value.__cause__ or info.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("cv.folds=1", "cv.folds"),
        ("study.n_trials=0", "study.n_trials"),
        ("search_space.learning_rate.low=0", "search_space.learning_rate.low"),
        ("search_space.learning_rate.low=0.5", "search_space.learning_rate"),
        ("search_space.hidden_units.low=0", "search_space.hidden_units.low"),
        ("search_space.activation.choices=[]", "search_space.activation.choices"),
        ("search_space.activation.choices=[relu,softplus]", "search_space.activation.choices"),
        ("study.direction=upwards", "study.direction"),
        ("model.solver=lbfgs", "model.solver"),
        ("cv.test_size=1.5", "cv.test_size"),
        ("tracking.experiment=", "tracking.experiment"),
        ("tracking.writer=fork", "tracking.writer"),
        ("tracking.registered_model=champ:1", "tracking.registered_model=champ:1"),
        ("tracking.registered_model=..", "tracking.registered_model=.."),
        # The study's name is the registered model's unless tracking.registered_model is set.
        ("study.name=team/digits", "study.name=team/digits"),
        # Optuna's and MLflow's schemas cannot share one database (both use alembic_version).
        ("study.storage=sqlite:///mlruns/mlflow.db", "study.storage=sqlite:///mlruns/mlflow.db"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(UserInputError) as info:
        validate_config(compose_config([override]))
    message = str(info.value)
    assert message.startswith(key) and "\n" not in message


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///mlruns/mlflow.db",
        "postgresql://user@db.example/mlflow",
        "postgresql+psycopg2://user@db.example/mlflow",
        "http://127.0.0.1:5000",
        "databricks",
    ],
)
def test_stores_mlflow_opens_pass(uri):
    validate_config(compose_config([f"tracking.uri={uri}"]))


def test_optuna_and_mlflow_may_share_a_server_but_not_a_database():
    server = "postgresql://u@db.example:5432"
    validate_config(
        compose_config([f"study.storage={server}/optuna", f"tracking.uri={server}/mlflow"])
    )
    validate_config(compose_config(["study.storage=sqlite:///mlruns/optuna.db"]))
    with pytest.raises(UserInputError, match="is the database of tracking.uri"):
        validate_config(
            compose_config([f"study.storage={server}/one", f"tracking.uri={server}/one"])
        )


def test_a_study_name_the_registry_refuses_is_fine_with_a_registered_model_name():
    validate_config(compose_config(["study.name=team/digits", "tracking.registered_model=ok"]))


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("tracking.uri=bogus://x", "scheme 'bogus' is not an MLflow store"),
        ("tracking.uri=mlruns", "file store"),
        ("tracking.uri=file:///tmp/store", "file store"),
        ("tracking.artifact_location=bogus://bucket", "scheme 'bogus' is not an MLflow artifact"),
    ],
)
def test_a_store_mlflow_cannot_open_fails_before_any_store_is_touched(override, words):
    with pytest.raises(UserInputError) as info:
        validate_config(compose_config([override]))
    message = str(info.value)
    assert message.startswith(override) and words in message and "\n" not in message


def test_the_store_schemes_checked_are_mlflows_own():
    """The lists in config_schema (checked before MLflow is imported) against MLflow's registries:
    an MLflow upgrade that adds or drops a store fails here, not in a user's sweep."""
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
    from mlflow.tracking._model_registry.utils import _get_store_registry
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    from pipeline.config.checks import ARTIFACT_SCHEMES, TRACKING_NAMES, TRACKING_SCHEMES

    file_store = {"", "file"}  # refused by MLflow 3 itself unless MLFLOW_ALLOW_FILE_STORE is set
    tracking = set(TRACKING_SCHEMES) | set(TRACKING_NAMES) | file_store
    assert set(_tracking_store_registry._registry) == tracking
    assert set(_get_store_registry()._registry) == tracking
    # "runs:" and "models:" name existing artifacts; a plain path ("") is accepted as a folder.
    artifacts = set(ARTIFACT_SCHEMES) | {"", "runs", "models"}
    assert set(_artifact_repository_registry._registry) == artifacts


def test_the_command_line_check_hands_a_single_runs_config_to_the_pool_start():
    """The sweep starts its fold processes from the config the check composed (before its own
    heavy imports); a multirun or a ``--cfg`` print runs no folds in this process."""
    from pipeline.config.command_line import check_command_line

    cfg = check_command_line(["dataset=iris", "cv.folds=3", "cv.n_jobs=2"])
    assert (cfg.dataset.name, cfg.cv.folds, cfg.cv.n_jobs) == ("iris", 3, 2)
    assert check_command_line(["-m", "worker=range(2)", "dataset=iris"]) is None
    assert check_command_line(["--cfg", "job"]) is None
    with pytest.raises(UserInputError, match="cv.folds"):
        check_command_line(["cv.folds=1"])

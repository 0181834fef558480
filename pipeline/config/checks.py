"""Typed schema of the sweep config, registered in Hydra's ConfigStore, and its value checks.

The YAML files under ``conf/`` extend these dataclasses, so a misspelt key or a wrong type fails
when Hydra composes the config, before any work starts. :func:`validate_config` then checks the
values (ranges, ``low <= high``, known names) and raises :class:`UserInputError` naming the key.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig

from pipeline.config.schema import registered_model_name
from pipeline.errors import UserInputError
from pipeline.names import SQLITE_PREFIX
from pipeline.redaction import redact

ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "leaky_relu")


DATASET_NAMES = ("digits", "iris", "wine", "breast_cancer", "moons", "csv")


SOLVER_NAMES = ("gd", "sgd", "momentum", "adam", "normalized")


INIT_NAMES = ("small", "xavier", "he")


DTYPE_NAMES = ("float32", "float64")


DIRECTIONS = ("maximize", "minimize")


# The stores MLflow 3 opens for tracking and its model registry, less its file store (a path or
# file:// URI), which MLflow 3 refuses ("maintenance mode"); and where it can keep artifacts
# (a plain path is a folder). Checked here, before any import of MLflow; a test compares them
# with MLflow's own registries, so an upgrade that changes those fails there.
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")  # database servers, "+driver" or not


TRACKING_SCHEMES = ("sqlite", *DATABASE_SCHEMES, "http", "https")


TRACKING_NAMES = ("databricks", "databricks-uc", "uc")  # whole URIs, not schemes


MAX_EXPERIMENT_NAME = 500  # mlflow.utils.validation.MAX_EXPERIMENT_NAME_LENGTH


ARTIFACT_SCHEMES = (
    "file", "mlflow-artifacts", "http", "https", "s3", "gs", "wasbs", "abfss", "r2", "b2",
    "dbfs", "hdfs", "viewfs", "ftp", "sftp",
)  # fmt: skip


def _fail(key: str, message: str) -> UserInputError:
    return UserInputError(f"{key}: {message}")


def _check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _fail(key, f"{value!r} is not one of: {', '.join(allowed)}")


def _check_range(key: str, node: DictConfig, *, positive: bool, minimum: float | None) -> None:
    low, high = node.low, node.high
    if low > high:
        raise _fail(key, f"low={low} is greater than high={high}; swap them")
    if positive and low <= 0:
        raise _fail(f"{key}.low", f"must be > 0, got {low}")
    if minimum is not None and low < minimum:
        raise _fail(f"{key}.low", f"must be >= {minimum}, got {low}")
    if node.get("log") and low <= 0:
        raise _fail(f"{key}.low", f"a log-scale range needs low > 0, got {low}")
    if node.get("step", 1) < 1:
        raise _fail(f"{key}.step", f"must be >= 1, got {node.step}")


def uri_scheme(uri: str) -> str:
    """The scheme of a store URI as MLflow reads it: ``postgresql+psycopg://`` is postgresql."""
    return urlparse(uri).scheme.lower().split("+")[0]


def _check_registry_name(cfg: DictConfig) -> None:
    """MLflow's rules for a registered model's name, checked now instead of at the very end."""
    name = registered_model_name(cfg)
    key = (
        f"tracking.registered_model={name}"
        if cfg.tracking.registered_model
        else f"study.name={name} (the registered model's name, as tracking.registered_model is "
        "null)"
    )
    if any(c in name for c in "/:"):
        raise _fail(key, "MLflow's model registry refuses '/' and ':' in a name; drop them")
    normal = posixpath.normpath(name)
    if not name.strip() or normal != name or normal == "." or normal.startswith(("..", "/")):
        raise _fail(key, "MLflow's model registry needs a plain name (no leading or doubled dots)")


def validate_tracking(cfg: DictConfig) -> None:
    """``tracking.uri`` names a store MLflow 3 opens, ``tracking.artifact_location`` a folder
    or an artifact store it knows, and the experiment and registered model have names MLflow
    takes (raises :class:`UserInputError`)."""
    tracking = cfg.tracking
    experiment = str(tracking.experiment or "")
    if not experiment.strip() or len(experiment) > MAX_EXPERIMENT_NAME:
        raise _fail(
            "tracking.experiment",
            f"needs a name of 1 to {MAX_EXPERIMENT_NAME} characters, got {experiment!r}",
        )
    _check_registry_name(cfg)
    uri = str(tracking.uri)
    scheme = uri_scheme(uri)
    if scheme not in TRACKING_SCHEMES and uri not in TRACKING_NAMES:
        problem = (
            "is MLflow's file store, which MLflow 3 no longer opens"
            if scheme in ("", "file")
            else f"scheme {scheme!r} is not an MLflow store"
        )
        raise _fail(
            f"tracking.uri={redact(uri)}",
            f"{problem}; use sqlite:///PATH/mlflow.db (one machine), postgresql://... or "
            "http://HOST:PORT (an mlflow server)",
        )
    location = str(tracking.artifact_location or "")
    scheme = uri_scheme(location) if "://" in location else ""
    if scheme and scheme not in ARTIFACT_SCHEMES:
        raise _fail(
            f"tracking.artifact_location={redact(location)}",
            f"scheme {scheme!r} is not an MLflow artifact store; give a folder or a URI of: "
            f"{', '.join(ARTIFACT_SCHEMES)}",
        )


def database_identity(location: str) -> tuple | None:
    """What names one database: an SQLite file's absolute path, or a server's engine, host,
    port and database; None for a journal file or an MLflow server."""
    scheme = uri_scheme(location)
    if scheme == "sqlite":
        return ("sqlite", os.path.abspath(location.removeprefix(SQLITE_PREFIX)))
    if scheme in DATABASE_SCHEMES:
        parsed = urlparse(location)
        return (scheme, parsed.hostname, parsed.port, parsed.path.strip("/"))
    return None


def _check_separate_databases(cfg: DictConfig) -> None:
    """Optuna's and MLflow's tables cannot share a database: both keep their Alembic schema
    version in a table named ``alembic_version``, so each would find the other's revision."""
    study_db = database_identity(str(cfg.study.storage))
    if study_db is not None and study_db == database_identity(str(cfg.tracking.uri)):
        raise _fail(
            f"study.storage={redact(str(cfg.study.storage))}",
            "is the database of tracking.uri; Optuna and MLflow each need their own (both keep "
            "an alembic_version table), e.g. study.storage=sqlite:///mlruns/optuna.db",
        )


def validate_search_space(space: DictConfig) -> None:
    """Check bounds and choices of ``search_space`` (raises :class:`UserInputError`)."""
    _check_range("search_space.learning_rate", space.learning_rate, positive=True, minimum=None)
    _check_range("search_space.hidden_units", space.hidden_units, positive=True, minimum=1)
    _check_range("search_space.hidden_layers", space.hidden_layers, positive=True, minimum=1)
    _check_range("search_space.iterations", space.iterations, positive=True, minimum=1)
    choices = list(space.activation.choices)
    if not choices:
        raise _fail("search_space.activation.choices", "is empty; give at least one activation")
    for name in choices:
        _check_choice("search_space.activation.choices", name, ACTIVATION_NAMES)


def validate_config(cfg: DictConfig) -> None:
    """Check every value of a composed config before any data is loaded or store touched."""
    _check_choice("dataset.name", cfg.dataset.name, DATASET_NAMES)
    if cfg.dataset.name == "csv":
        for key in ("path", "target"):
            if not cfg.dataset.get(key):
                raise _fail(f"dataset.{key}", "is required for dataset=csv")
    if cfg.dataset.name == "moons":
        if cfg.dataset.n_samples < 10:
            raise _fail("dataset.n_samples", f"must be >= 10, got {cfg.dataset.n_samples}")
        if cfg.dataset.noise < 0:
            raise _fail("dataset.noise", f"must be >= 0, got {cfg.dataset.noise}")
    validate_search_space(cfg.search_space)
    if cfg.study.n_trials < 1:
        raise _fail("study.n_trials", f"must be >= 1, got {cfg.study.n_trials}")
    _check_choice("study.direction", cfg.study.direction, DIRECTIONS)
    if not str(cfg.study.storage).strip():
        raise _fail("study.storage", "is empty; give a file path or a database URL")
    if cfg.study.heartbeat_interval < 1:
        raise _fail("study.heartbeat_interval", f"must be >= 1, got {cfg.study.heartbeat_interval}")
    if cfg.cv.folds < 2:
        raise _fail("cv.folds", f"must be >= 2, got {cfg.cv.folds}")
    if cfg.cv.n_jobs == 0 or cfg.cv.n_jobs < -1:
        raise _fail("cv.n_jobs", f"must be -1 (all cores) or >= 1, got {cfg.cv.n_jobs}")
    if cfg.study.trials_in_flight not in (1, 2):
        raise _fail(
            "study.trials_in_flight",
            f"must be 1 or 2 (trials at a time), got {cfg.study.trials_in_flight}",
        )
    if not 0.0 < cfg.cv.test_size < 1.0:
        raise _fail("cv.test_size", f"must be between 0 and 1 (exclusive), got {cfg.cv.test_size}")
    _check_choice("model.solver", cfg.model.solver, SOLVER_NAMES)
    _check_choice("model.init", cfg.model.init, INIT_NAMES)
    _check_choice("model.dtype", cfg.model.dtype, DTYPE_NAMES)
    if cfg.model.batch_size is not None and cfg.model.batch_size < 1:
        raise _fail(
            "model.batch_size", f"must be >= 1 or null (full batch), got {cfg.model.batch_size}"
        )
    if cfg.model.batch_size is not None and cfg.model.solver == "gd":
        raise _fail(
            "model.batch_size",
            f"{cfg.model.batch_size} needs a mini-batch solver; solver=gd is full-batch, so "
            "set model.batch_size=null or model.solver=sgd",
        )
    if cfg.model.alpha < 0:
        raise _fail("model.alpha", f"must be >= 0, got {cfg.model.alpha}")
    validate_tracking(cfg)
    _check_separate_databases(cfg)
    if cfg.worker < 0:
        raise _fail("worker", f"must be >= 0, got {cfg.worker}")
    for group in ("sampler", "pruner"):
        if "_target_" not in cfg[group]:
            raise _fail(group, f"needs a _target_; choose one of the files in conf/{group}/")

"""The value checks of every command, in one place: ``python -m pipeline.sweep``, ``python -m
pipeline.train``, a multirun's launching process and the Python entries all run them on the
composed config before any data is loaded or any store is opened.

Hydra's structured configs (pipeline.config.schema) have already refused unknown keys and wrong
types; these check the values (ranges, ``low <= high``, finite numbers, known names) and raise
:class:`UserInputError` with one line that names the key. The names of activations, solvers,
initialisations and dtypes are core's own registries, so a name core learns is accepted here.
"""

from __future__ import annotations

import math
import os
import posixpath
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

import core
from core.solvers import FULL_BATCH_SOLVERS
from core.validation import DTYPES
from pipeline.config.schema import registered_model_name
from pipeline.config.settings import WRITERS
from pipeline.errors import UserInputError
from pipeline.model.metrics import METRICS, TASKS
from pipeline.names import SQLITE_PREFIX
from pipeline.redaction import redact

ACTIVATION_NAMES = tuple(sorted(core.ACTIVATIONS))
SOLVER_NAMES = tuple(core.SOLVERS)
INIT_NAMES = tuple(core.INITIALISERS)
DTYPE_NAMES = tuple(DTYPES)
DATASET_NAMES = ("digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "csv", "parquet")
DIRECTIONS = ("maximize", "minimize")
# NumPy's legacy seeding and scikit-learn's splitters take seeds below 2**32; a worker's sampler
# is seeded with study.seed + worker.
MAX_SEED = 2**32 - 1
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


def validate_config(cfg: DictConfig) -> None:
    """Check every value of a sweep's composed config (``conf/config.yaml``)."""
    check_finite(cfg)
    check_dataset(cfg.dataset)
    check_seed(cfg.study.seed, workers=cfg.worker + 1)
    check_cv(cfg.cv)
    check_model(cfg.model)
    validate_search_space(cfg.search_space)
    check_study(cfg)
    validate_tracking(cfg)
    _check_choice("tracking.writer", cfg.tracking.writer, WRITERS)
    _check_separate_databases(cfg)
    for group in ("sampler", "pruner"):
        if "_target_" not in cfg[group]:
            raise _fail(group, f"needs a _target_; choose one of the files in conf/{group}/")


def validate_train_config(cfg: DictConfig) -> None:
    """Check every value of a train command's composed config (``conf/train.yaml``).

    With ``run_id`` the data, seed, folds, model and parameters come from that run (and are
    checked once read from it, :func:`check_train_settings`); only the tracking settings, which
    say where to find it, are checked here.
    """
    check_finite(cfg)
    validate_tracking(cfg, registry=False)
    if not cfg.get("run_id"):
        check_train_settings(cfg)


def check_train_settings(cfg: DictConfig) -> None:
    """What a train run's scores depend on: data, seed, folds, model, parameters."""
    check_finite(cfg)
    check_dataset(cfg.dataset)
    check_seed(cfg.study.seed)
    check_cv(cfg.cv)
    check_model(cfg.model)
    check_params(cfg.params)


def check_finite(cfg: DictConfig) -> None:
    """No setting is NaN or infinite: a comparison with NaN is always false, so it would pass
    every range check below and fail later, deep inside a trial."""
    for key, value in _leaves(OmegaConf.to_container(cfg, resolve=True)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(key, f"must be a finite number, got {value}")


def _leaves(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{prefix}{index}.")
    else:
        yield prefix.rstrip("."), node


def check_dataset(dataset: DictConfig) -> None:
    _check_choice("dataset.name", dataset.name, DATASET_NAMES)
    if dataset.get("task") is not None:
        _check_choice("dataset.task", dataset.task, TASKS)
    if dataset.name in ("csv", "parquet"):
        for key in ("path", "target"):
            if not dataset.get(key):
                raise _fail(f"dataset.{key}", f"is required for dataset={dataset.name}")
    elif dataset.get("drop") or dataset.get("categorical"):
        key = "drop" if dataset.get("drop") else "categorical"
        raise _fail(f"dataset.{key}", f"names columns of a file; dataset={dataset.name} has none")
    if dataset.get("max_categories", 1) < 1:
        raise _fail("dataset.max_categories", f"must be >= 1, got {dataset.max_categories}")
    if dataset.name == "moons":
        if dataset.n_samples < 10:
            raise _fail("dataset.n_samples", f"must be >= 10, got {dataset.n_samples}")
        if dataset.noise < 0:
            raise _fail("dataset.noise", f"must be >= 0, got {dataset.noise}")


def check_seed(seed: int, workers: int = 1) -> None:
    """``study.seed`` seeds the split, the folds, the weights and (plus the worker's index) the
    sampler: each must be a seed NumPy and scikit-learn take."""
    highest = MAX_SEED - (workers - 1)
    if not 0 <= seed <= highest:
        raise _fail("study.seed", f"must be an integer from 0 to {highest}, got {seed}")


def check_cv(cv: DictConfig) -> None:
    if cv.folds < 2:
        raise _fail("cv.folds", f"must be >= 2, got {cv.folds}")
    if cv.n_jobs == 0 or cv.n_jobs < -1:
        raise _fail("cv.n_jobs", f"must be -1 (all cores) or >= 1, got {cv.n_jobs}")
    if not 0.0 < cv.test_size < 1.0:
        raise _fail("cv.test_size", f"must be between 0 and 1 (exclusive), got {cv.test_size}")
    if cv.get("metric") is not None:
        _check_choice("cv.metric", cv.metric, tuple(METRICS))
    epochs = list(cv.get("checkpoints", []))
    if any(epoch < 1 for epoch in epochs) or epochs != sorted(set(epochs)):
        raise _fail("cv.checkpoints", f"must be increasing epochs >= 1, or [], got {epochs}")


def check_model(model: DictConfig) -> None:
    """The training settings held fixed; names are core's own."""
    _check_choice("model.solver", model.solver, SOLVER_NAMES)
    _check_choice("model.init", model.init, INIT_NAMES)
    _check_choice("model.dtype", model.dtype, DTYPE_NAMES)
    if model.batch_size is not None and model.batch_size < 1:
        raise _fail(
            "model.batch_size", f"must be >= 1 or null (full batch), got {model.batch_size}"
        )
    if model.batch_size is not None and model.solver in FULL_BATCH_SOLVERS:
        raise _fail(
            "model.batch_size",
            f"{model.batch_size} needs a mini-batch solver; solver={model.solver} is full-batch, "
            "so set model.batch_size=null or model.solver=sgd",
        )
    if model.alpha < 0:
        raise _fail("model.alpha", f"must be >= 0, got {model.alpha}")
    if model.n_iter_no_change is not None and model.n_iter_no_change < 1:
        raise _fail(
            "model.n_iter_no_change",
            f"must be >= 1 or null (train every iteration), got {model.n_iter_no_change}",
        )
    if model.tol < 0:
        raise _fail("model.tol", f"must be >= 0, got {model.tol}")


def check_params(params: DictConfig) -> None:
    """The one configuration ``python -m pipeline.train`` cross-validates."""
    if params.learning_rate <= 0:
        raise _fail("params.learning_rate", f"must be > 0, got {params.learning_rate}")
    if params.hidden_layers < 1:
        raise _fail("params.hidden_layers", f"must be >= 1, got {params.hidden_layers}")
    if params.iterations < 1:
        raise _fail("params.iterations", f"must be >= 1, got {params.iterations}")
    _check_choice("params.activation", params.activation, ACTIVATION_NAMES)
    is_list = OmegaConf.is_list(params.hidden_units)
    units = list(params.hidden_units) if is_list else [params.hidden_units]
    if not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in units):
        raise _fail(
            "params.hidden_units",
            f"must be a width >= 1 or a list of them, got {params.hidden_units}",
        )
    if is_list and len(units) != params.hidden_layers:
        raise _fail(
            "params.hidden_units",
            f"has {len(units)} widths for params.hidden_layers={params.hidden_layers}",
        )


def check_study(cfg: DictConfig) -> None:
    study = cfg.study
    if study.n_trials < 1:
        raise _fail("study.n_trials", f"must be >= 1, got {study.n_trials}")
    if study.direction is not None:
        _check_choice("study.direction", study.direction, DIRECTIONS)
    if not str(study.storage).strip():
        raise _fail("study.storage", "is empty; give a file path or a database URL")
    if uri_scheme(str(study.storage)) == "grpc" and grpc_address(str(study.storage)) is None:
        raise _fail(f"study.storage={study.storage}", "give grpc://HOST:PORT (a storage proxy)")
    if study.heartbeat_interval < 1:
        raise _fail("study.heartbeat_interval", f"must be >= 1, got {study.heartbeat_interval}")
    if study.trials_in_flight not in (1, 2):
        raise _fail(
            "study.trials_in_flight",
            f"must be 1 or 2 (trials at a time), got {study.trials_in_flight}",
        )
    if study.max_failures_in_a_row < 0:
        raise _fail(
            "study.max_failures_in_a_row",
            f"must be >= 0 (0: never stop), got {study.max_failures_in_a_row}",
        )
    if cfg.worker < 0:
        raise _fail("worker", f"must be >= 0, got {cfg.worker}")


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


def grpc_address(location: str) -> tuple[str, int] | None:
    """(host, port) of a storage proxy's ``grpc://HOST:PORT``; None if it is not of that form."""
    parsed = urlparse(location)
    try:
        port = parsed.port
    except ValueError:  # not a number
        return None
    if not parsed.hostname or port is None or parsed.path not in ("", "/"):
        return None
    return parsed.hostname, port


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


def validate_tracking(cfg: DictConfig, *, registry: bool = True) -> None:
    """``tracking.uri`` names a store MLflow 3 opens, ``tracking.artifact_location`` a folder
    or an artifact store it knows, and the experiment and registered model have names MLflow
    takes (raises :class:`UserInputError`). ``registry``: check the registered model's name too
    (a sweep registers its champion; a train run registers nothing)."""
    tracking = cfg.tracking
    experiment = str(tracking.experiment or "")
    if not experiment.strip() or len(experiment) > MAX_EXPERIMENT_NAME:
        raise _fail(
            "tracking.experiment",
            f"needs a name of 1 to {MAX_EXPERIMENT_NAME} characters, got {experiment!r}",
        )
    if registry:
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
    if redact(location) != location:
        # MLflow stores the location in the experiment and in every run's artifact URI, for
        # anyone who can read the tracking store: a credential there cannot be masked.
        raise _fail(
            f"tracking.artifact_location={redact(location)}",
            "holds a credential, which MLflow would store with the experiment and every run; "
            "give it through the environment instead (AWS_SECRET_ACCESS_KEY, "
            "AZURE_STORAGE_CONNECTION_STRING, MLFLOW_TRACKING_PASSWORD, ...)",
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


def training_bytes(
    n_samples: int, n_features: int, n_outputs: int, sizes: tuple[int, ...], model: DictConfig
) -> int:
    """About how much memory one fold process needs to train a network of hidden ``sizes``:
    weights, their gradients and the solver's state, plus the activations of a batch."""
    widths = (n_features, *sizes, n_outputs)
    parameters = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    states = {"adam": 2, "momentum": 1}.get(model.solver, 0)
    batch = n_samples if model.batch_size is None else min(model.batch_size, n_samples)
    activations = 3 * batch * sum(widths)  # pre-activations, activations and deltas
    itemsize = 4 if model.dtype == "float32" else 8
    return itemsize * (parameters * (2 + states) + activations)


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_network_fits(
    key: str,
    sizes: tuple[int, ...],
    processes: int,
    shape: tuple[int, int, int],
    model: DictConfig,
    remedy: str,
) -> None:
    """A network of hidden ``sizes`` can be trained in ``processes`` fold processes at once on
    this machine; else its trials could not run. ``shape`` is the data's (samples, features,
    outputs); checked once it is known, before any store is opened. ``remedy`` names the keys
    that make the network smaller."""
    needed = processes * training_bytes(*shape, sizes, model)
    available = machine_memory()
    if needed > available:
        gib = 2**30
        raise _fail(
            key,
            f"the largest network ({len(sizes)} layers of width {max(sizes)}) needs about "
            f"{needed / gib:.1f} GiB to train its folds, more than this machine's "
            f"{available / gib:.1f} GiB; lower {remedy}",
        )

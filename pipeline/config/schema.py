"""Typed schema of the configs, registered in Hydra's ConfigStore.

The YAML files under ``conf/`` extend these dataclasses, so a misspelt key or a wrong type fails
when Hydra composes the config, before any work starts; the values are checked by
:mod:`pipeline.config.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig


@dataclass
class DatasetConfig:
    name: str = MISSING
    path: str | None = None  # csv/parquet only
    target: str | None = None  # csv/parquet only: the column to predict
    # classification | regression; None: inferred from the target (pipeline.data.infer_task)
    task: str | None = None
    drop: list[str] = field(default_factory=list)  # csv/parquet: columns left out (an id, ...)
    # csv/parquet: numeric columns that hold category codes (one-hot encoded, not scaled)
    categorical: list[str] = field(default_factory=list)
    # A text column with more distinct values is refused (an id or free text, not categories).
    max_categories: int = 100
    n_samples: int = 1000  # moons only
    noise: float = 0.25  # moons only


@dataclass
class FloatRange:
    low: float = MISSING
    high: float = MISSING
    log: bool = False


@dataclass
class IntRange:
    low: int = MISSING
    high: int = MISSING
    step: int = 1
    log: bool = False


@dataclass
class Choices:
    choices: list[str] = MISSING


@dataclass
class SearchSpaceConfig:
    learning_rate: FloatRange = field(default_factory=lambda: FloatRange(log=True))
    hidden_units: IntRange = field(default_factory=IntRange)
    hidden_layers: IntRange = field(default_factory=IntRange)
    iterations: IntRange = field(default_factory=IntRange)
    activation: Choices = field(default_factory=Choices)
    # One width per layer (hidden_units_0, hidden_units_1, ...) instead of one shared width.
    per_layer_units: bool = False


@dataclass
class StudyConfig:
    name: str | None = None  # None: "<dataset>-mlp"
    storage: str = "mlruns/optuna.journal"
    n_trials: int = 50
    seed: int = 0
    direction: str | None = None  # None: the direction of cv.metric
    # Seconds between heartbeats of a running trial (RDB storages only); a trial silent for
    # 4 heartbeats is failed and retried by the next worker that starts a trial.
    heartbeat_interval: int = 10
    # How long a non-leader worker waits for worker 0 to create the study and the parent run.
    leader_wait_seconds: float = 300.0
    # 2: the next trial is asked before the current one ends (pipeline.search.trial_loop).
    trials_in_flight: int = 2
    # Stop after this many trials in a row failed by an error other than divergence (0: never).
    max_failures_in_a_row: int = 5


@dataclass
class CVConfig:
    folds: int = 5
    n_jobs: int = -1
    test_size: float = 0.2
    metric: str | None = None  # None: accuracy for a classification, rmse for a regression
    # Epochs at which each fold scores its validation rows; the pruner compares trials there.
    checkpoints: list[int] = field(default_factory=lambda: [10, 20, 40, 80, 160, 320])


@dataclass
class ModelConfig:
    """Training settings held fixed during the search (the searched ones are in search_space)."""

    solver: str = "adam"
    batch_size: int | None = 200
    n_iter_no_change: int | None = 10
    tol: float = 1e-4
    alpha: float = 0.0
    init: str = "xavier"
    dtype: str = "float32"


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str = "mlruns/artifacts"
    experiment: str = "mlp-sweep"
    registered_model: str | None = None  # None: the study name
    log_trial_models: bool = True
    # Who writes the trials' runs: thread | process | auto (a process for a study of 200 trials
    # or more on a worker with 2+ cores; pipeline.tracking.run_writer).
    writer: str = "auto"


@dataclass
class SweepConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    search_space: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    sampler: Any = MISSING
    pruner: Any = MISSING
    study: StudyConfig = field(default_factory=StudyConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    worker: int = 0  # multirun: worker='range(N)'; worker 0 leads (creates, then finalises)
    progress_bar: bool = True


@dataclass
class TrainParams:
    """``python -m pipeline.train``: the searched hyperparameters, fixed to one value each."""

    learning_rate: float = 0.01
    # One width for every hidden layer, or a list with one width per layer: [64, 32].
    hidden_units: Any = 64
    hidden_layers: int = 1
    iterations: int = 200
    activation: str = "relu"


@dataclass
class SeedConfig:
    seed: int = 0  # the same study.seed as a sweep: split, folds and initial weights


@dataclass
class TrainConfig:
    """``conf/train.yaml``: data, CV, model and tracking use the sweep's own schemas (and so its
    defaults)."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    study: SeedConfig = field(default_factory=SeedConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    params: TrainParams = field(default_factory=TrainParams)
    run_id: str | None = None  # reproduce this logged trial: its settings replace the above


def register_configs() -> None:
    """Register the schemas so that ``conf/*.yaml`` can extend them via their defaults lists."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=SweepConfig)
    store.store(name="base_train_config", node=TrainConfig)
    store.store(group="dataset", name="base_dataset", node=DatasetConfig)
    store.store(group="search_space", name="base_search_space", node=SearchSpaceConfig)


def study_name(cfg: DictConfig) -> str:
    """``study.name``, or one derived from the data set (``digits-mlp``)."""
    return cfg.study.name or f"{cfg.dataset.name}-mlp"


def registered_model_name(cfg: DictConfig) -> str:
    """The champion's name in the model registry: ``tracking.registered_model`` or the study's."""
    return cfg.tracking.registered_model or study_name(cfg)

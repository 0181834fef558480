"""``python -m pipeline.train``: cross-validate ONE configuration, or reproduce a logged trial.

    python -m pipeline.train dataset=iris params.learning_rate=0.01 params.hidden_units=64 \\
        params.hidden_layers=2 params.iterations=200 params.activation=relu
    python -m pipeline.train run_id=<child run id>        # same settings, same seed, same scores
    python -m pipeline.train --config-dir best --config-name best_params   # a sweep's best

No search: the folds of the configuration run exactly as a sweep's trial runs them
(:func:`pipeline.search.objective.evaluate_folds`) and are logged like a trial (:class:`TrialRun`: the
same params, fold metrics, learning curve, config.yaml and model), as a run without a parent.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import hydra
import numpy as np
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config.checks import (
    ACTIVATION_NAMES,
    DATASET_NAMES,
    DTYPE_NAMES,
    INIT_NAMES,
    SOLVER_NAMES,
)
from pipeline.config.command_line import (
    CONF_DIR,
    exit_without_teardown,
    one_line,
    user_errors_as_one_line,
)
from pipeline.config.from_run import flat_params, settings_from_run
from pipeline.config.schema import (
    CVConfig,
    DatasetConfig,
    ModelConfig,
    TrackingConfig,
    register_configs,
)
from pipeline.config.search_space import network_params
from pipeline.data import check_class_counts, load_dataset, split_train_test
from pipeline.errors import UserInputError
from pipeline.folds.pool import resolve_n_jobs
from pipeline.names import ROLE_TAG
from pipeline.redaction import redact
from pipeline.search.objective import TrainingDiverged, evaluate_folds
from pipeline.tracking.runs import TrialRun
from pipeline.tracking.store import connect

SOURCE_RUN_TAG = "mlp_sweep.source_run"


@dataclass
class TrainParams:
    """The searched hyperparameters, fixed to one value each."""

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
    """Data, CV, model and tracking use the sweep's own schemas (and so its defaults)."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    study: SeedConfig = field(default_factory=SeedConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    params: TrainParams = field(default_factory=TrainParams)
    run_id: str | None = None  # reproduce this logged trial: its settings replace the above


@dataclass
class TrainResult:
    run_id: str
    scores: dict[int, float]
    recorded: dict[int, float] | None  # the reproduced run's fold scores, if run_id was given


def register_train_configs() -> None:
    register_configs()  # the dataset group's files extend base_dataset
    ConfigStore.instance().store(name="base_train_config", node=TrainConfig)


register_train_configs()


def _check(key: str, ok: bool, message: str) -> None:
    if not ok:
        raise UserInputError(f"{key}: {message}")


def validate_train_config(cfg: DictConfig) -> None:
    """Value checks of a composed train config (raises :class:`UserInputError` naming the key)."""
    _check("dataset.name", cfg.dataset.name in DATASET_NAMES, f"one of {DATASET_NAMES}")
    if cfg.dataset.name == "csv":
        _check("dataset.path", bool(cfg.dataset.path), "is required for dataset=csv")
        _check("dataset.target", bool(cfg.dataset.target), "is required for dataset=csv")
    _check("cv.folds", cfg.cv.folds >= 2, f"must be >= 2, got {cfg.cv.folds}")
    _check("cv.n_jobs", cfg.cv.n_jobs == -1 or cfg.cv.n_jobs >= 1, "must be -1 or >= 1")
    _check("cv.test_size", 0 < cfg.cv.test_size < 1, "must be between 0 and 1 (exclusive)")
    _check("model.solver", cfg.model.solver in SOLVER_NAMES, f"one of {SOLVER_NAMES}")
    _check("model.init", cfg.model.init in INIT_NAMES, f"one of {INIT_NAMES}")
    _check("model.dtype", cfg.model.dtype in DTYPE_NAMES, f"one of {DTYPE_NAMES}")
    _check("model.alpha", cfg.model.alpha >= 0, f"must be >= 0, got {cfg.model.alpha}")
    batch = cfg.model.batch_size
    _check("model.batch_size", batch is None or batch >= 1, "must be >= 1 or null (full batch)")
    p = cfg.params
    _check("params.learning_rate", p.learning_rate > 0, f"must be > 0, got {p.learning_rate}")
    _check("params.hidden_layers", p.hidden_layers >= 1, f"must be >= 1, got {p.hidden_layers}")
    _check("params.iterations", p.iterations >= 1, f"must be >= 1, got {p.iterations}")
    _check("params.activation", p.activation in ACTIVATION_NAMES, f"one of {ACTIVATION_NAMES}")
    units = p.hidden_units if OmegaConf.is_list(p.hidden_units) else [p.hidden_units]
    _check(
        "params.hidden_units",
        all(isinstance(u, int) and u >= 1 for u in units),
        f"must be a width >= 1 or a list of them, got {p.hidden_units}",
    )
    if OmegaConf.is_list(p.hidden_units):
        _check(
            "params.hidden_units",
            len(units) == p.hidden_layers,
            f"has {len(units)} widths for params.hidden_layers={p.hidden_layers}",
        )


def run_train(cfg: DictConfig) -> TrainResult:
    """Cross-validate the configuration of ``cfg`` (or of the run ``cfg.run_id``) and log it."""
    if not cfg.run_id:
        validate_train_config(cfg)
    client, experiment_id = connect(
        cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment
    )
    recorded = None
    if cfg.run_id:
        settings, recorded = settings_from_run(client, cfg.run_id)
        cfg = OmegaConf.merge(cfg, settings)
        validate_train_config(cfg)
    seed, folds = cfg.study.seed, cfg.cv.folds
    data = load_dataset(cfg.dataset, seed)
    check_class_counts(data.y, folds, cfg.cv.test_size)
    split = split_train_test(data, cfg.cv.test_size, seed)  # the test split stays unseen
    model_params = OmegaConf.to_container(cfg.model, resolve=True)
    params = flat_params(OmegaConf.to_container(cfg.params, resolve=True))
    tags = {ROLE_TAG: "train"}
    if cfg.run_id:
        tags[SOURCE_RUN_TAG] = cfg.run_id
    name = f"reproduce-{cfg.run_id[:8]}" if cfg.run_id else "train"
    run = TrialRun(client, experiment_id, worker=0, run_name=name, tags=tags)
    run.log_start({**params, **model_params}, redact(OmegaConf.to_yaml(cfg, resolve=True)))
    started = time.perf_counter()
    try:
        outcome = evaluate_folds(
            {**model_params, **network_params(params)},
            split.X_train,
            split.y_train,
            folds=folds,
            seed=seed,
            n_jobs=resolve_n_jobs(cfg.cv.n_jobs, folds),
        )
    except BaseException as error:
        run.end("FAIL" if isinstance(error, TrainingDiverged) else "KILLED", repr(error))
        raise
    run.log_folds(
        outcome.scores, outcome.fit_seconds, outcome.mean_curve(), time.perf_counter() - started
    )
    if cfg.tracking.log_trial_models:
        run.log_model(outcome.ensemble(data.feature_names), split.X_train[:5])
    run.end("COMPLETE")
    return TrainResult(run.run_id, outcome.scores, recorded)


def format_result(result: TrainResult) -> tuple[str, bool]:
    """The fold table (next to the recorded scores when reproducing) and whether they agree."""
    lines = ["fold  accuracy" + ("  recorded" if result.recorded is not None else "")]
    for fold, score in sorted(result.scores.items()):
        line = f"{fold:>4}  {score:.6f}"
        if result.recorded is not None:
            old = result.recorded.get(fold)
            line += "  " + (f"{old:.6f}" if old is not None else "   (not run: pruned)")
        lines.append(line)
    values = np.fromiter(result.scores.values(), dtype=np.float64)
    lines.append(f"CV accuracy {values.mean():.4f} ± {values.std():.4f}")
    agree = True
    if result.recorded is not None:
        differ = [f for f, old in result.recorded.items() if result.scores.get(f) != old]
        agree = not differ and bool(result.recorded)
        lines.append(
            f"reproduced: all {len(result.recorded)} recorded folds equal"
            if agree
            else f"NOT reproduced: folds {differ or 'none recorded'} differ from the record"
        )
    lines.append(f"run {result.run_id}")
    return "\n".join(lines), agree


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        with user_errors_as_one_line():
            result = run_train(cfg)
    except TrainingDiverged as error:
        print(f"training diverged: {error} (lower params.learning_rate)", file=sys.stderr)
        sys.exit(1)
    text, agree = format_result(result)
    print(text)
    if not agree:
        sys.exit(1)
    return float(np.mean(list(result.scores.values())))


def exit_if_bad(argv: list[str]) -> None:
    """A wrong key, type or group option: one line and exit code 2 before Hydra runs (which
    would report it over many lines with code 1). Other config folders are left to Hydra."""
    args = get_args_parser().parse_args(argv)
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or args.help or args.hydra_help:
        return
    if args.info or args.shell_completion or args.config_path or args.config_dir:
        return
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name=args.config_name or "train", overrides=list(args.overrides))
    except (HydraException, OmegaConfBaseException) as error:
        print(
            f"error: {one_line(error).replace('pipeline.sweep', 'pipeline.train')}", file=sys.stderr
        )
        sys.exit(2)
    finally:
        GlobalHydra.instance().clear()


if __name__ == "__main__":
    exit_if_bad(sys.argv[1:])
    main()
    exit_without_teardown()

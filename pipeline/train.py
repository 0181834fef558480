"""``python -m pipeline.train``: cross-validate ONE configuration, or reproduce a logged trial.

    python -m pipeline.train dataset=iris params.learning_rate=0.01 params.hidden_units=64 \\
        params.hidden_layers=2 params.iterations=200 params.activation=relu
    python -m pipeline.train run_id=<child run id>        # same settings, same seed, same scores
    python -m pipeline.train --config-dir best --config-name best_params   # a sweep's best

or from Python: ``pipeline.train.run(["dataset=iris", "params.hidden_units=32"])``.

No search: the folds of the configuration run exactly as a sweep's trial runs them
(:func:`pipeline.search.objective.evaluate_folds`) and are logged like a trial (the same params,
fold metrics, learning curve, config.yaml and model), as a run without a parent.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.config.checks import (
    check_network_fits,
    check_train_settings,
    validate_train_config,
)
from pipeline.config.command_line import (
    TRAIN,
    compose_config,
    discard_hydra_output,
    exit_if_bad,
    exit_without_teardown,
    user_errors_as_one_line,
)
from pipeline.config.from_run import flat_params, settings_from_run
from pipeline.config.schema import register_configs
from pipeline.config.search_space import network_params
from pipeline.config.stores import check_store_exists, check_tracking_store
from pipeline.config.task import check_metric_defined, model_spec, resolve_task
from pipeline.data import check_targets, load_dataset, split_train_test
from pipeline.errors import UserInputError
from pipeline.folds.pool import resolve_n_jobs
from pipeline.names import ROLE_TAG, SOURCE_RUN_TAG
from pipeline.redaction import redact, redact_standard_streams
from pipeline.search.objective import TrainingDiverged, TrialFailed, evaluate_folds

register_configs()


@dataclass
class TrainResult:
    """What one train command measured: its run, its fold scores and, when it reproduced a
    logged run, that run's recorded fold scores."""

    run_id: str
    scores: dict[int, float]
    recorded: dict[int, float] | None  # the reproduced run's fold scores, if run_id was given
    metric: str = "accuracy"  # cv.metric: what the scores are in


def run(overrides: list[str] | None = None) -> TrainResult:
    """Cross-validate one configuration from Python, as ``python -m pipeline.train OVERRIDES``.

    Never exits the process: a bad setting raises :class:`~pipeline.errors.UserInputError`
    (its one-line message names the key), divergence :class:`TrainingDiverged`, Ctrl-C
    ``KeyboardInterrupt``.
    """
    return run_train(compose_config(list(overrides or []), TRAIN))


def run_train(cfg: DictConfig, refused=lambda: None) -> TrainResult:
    """Cross-validate the configuration of ``cfg`` (or of the run ``cfg.run_id``) and log it.

    Every setting and the data are checked before the tracking store is opened; a run to
    reproduce is looked up in an existing store only. ``refused()`` is called when a check
    fails (nothing was written then).
    """
    from pipeline.tracking.runs import TrialRun

    try:
        cfg, split, data, tracking, recorded = prepare_train(cfg)
    except UserInputError:
        refused()
        raise
    client, experiment_id = tracking
    spec = model_spec(cfg, data)
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
            spec,
            {**model_params, **network_params(params)},
            split.X_train,
            split.y_train,
            folds=cfg.cv.folds,
            seed=cfg.study.seed,
            n_jobs=resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds),
            checkpoint_epochs=cfg.cv.checkpoints,
        )
    except BaseException as error:
        # Ctrl-C ends the run as interrupted (KILLED); any other error as failed.
        run.end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAIL", repr(error))
        raise
    seconds = time.perf_counter() - started
    if cfg.tracking.log_trial_models:
        run.log_model(outcome.ensemble(), split.X_train[:5])
    run.close(
        "COMPLETE", None, spec.metric, outcome.scores, outcome.fit_seconds,
        outcome.mean_curve(), seconds, outcome.validation_curve(),
    )  # fmt: skip
    return TrainResult(run.run_id, outcome.scores, recorded, spec.metric)


def prepare_train(cfg: DictConfig) -> tuple:
    """The checked config (the logged run's settings with ``run_id``), the split, the data,
    the tracking store and the reproduced run's recorded fold scores (or None)."""
    from pipeline.tracking.store import connect

    validate_train_config(cfg)
    check_tracking_store(cfg)
    recorded, tracking = None, None
    if cfg.run_id:
        check_store_exists("tracking.uri", str(cfg.tracking.uri))
        tracking = connect(
            cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment
        )
        settings, recorded = settings_from_run(tracking[0], cfg.run_id)
        cfg = OmegaConf.merge(cfg, settings)
        check_train_settings(cfg)
    data = load_dataset(cfg.dataset, cfg.study.seed)
    check_targets(data, cfg.cv.folds, cfg.cv.test_size)
    resolve_task(cfg, data)
    sizes = network_params(flat_params(OmegaConf.to_container(cfg.params, resolve=True)))
    check_network_fits(
        f"params.hidden_units={cfg.params.hidden_units}",
        sizes["hidden_layer_sizes"],
        resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds),
        (data.X.shape[0], data.n_inputs, data.n_outputs),
        cfg.model,
        "params.hidden_units or params.hidden_layers",
    )
    split = split_train_test(data, cfg.cv.test_size, cfg.study.seed)  # the test split stays unseen
    check_metric_defined(cfg, data, split)
    if tracking is None:
        tracking = connect(
            cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment
        )
    return cfg, split, data, tracking, recorded


def format_result(result: TrainResult) -> tuple[str, bool]:
    """The fold table (next to the recorded scores when reproducing) and whether they agree."""
    lines = [f"fold  {result.metric}" + ("  recorded" if result.recorded is not None else "")]
    for fold, score in sorted(result.scores.items()):
        line = f"{fold:>4}  {score:.6f}"
        if result.recorded is not None:
            old = result.recorded.get(fold)
            line += "  " + (f"{old:.6f}" if old is not None else "   (not run: pruned)")
        lines.append(line)
    values = np.fromiter(result.scores.values(), dtype=np.float64)
    lines.append(f"CV {result.metric} {values.mean():.4f} ± {values.std():.4f}")
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
            result = run_train(cfg, refused=lambda: discard_hydra_output("train"))
    except TrainingDiverged as error:
        print(f"training diverged: {error} (lower params.learning_rate)", file=sys.stderr)
        sys.exit(1)
    except TrialFailed as error:
        print(f"training failed: {error}", file=sys.stderr)
        sys.exit(1)
    text, agree = format_result(result)
    print(text)
    if not agree:
        sys.exit(1)
    return float(np.mean(list(result.scores.values())))


if __name__ == "__main__":
    redact_standard_streams()  # before anything can print a URL (--cfg job, a syntax error)
    exit_if_bad(sys.argv[1:], TRAIN)
    main()
    exit_without_teardown()

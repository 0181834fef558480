"""What a sweep's config says beyond its search: the settings a study's scores depend on, the
fixed training settings, and the config as the runs record it."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from pipeline.redaction import redact

# A study of this many trials (study.n_trials) or more is large: the machinery around each trial
# then weighs as much as its fitting, so the sweep logs the models of new bests only
# (pipeline.search.objective.Objective.keeps_model) and, on a worker with 2 cores or more, writes
# the trials' runs in a process of their own (pipeline.tracking.run_writer). docs/mlflow.md.
LARGE_STUDY_TRIALS = 200
WRITERS = ("auto", "thread", "process")  # tracking.writer: who writes the trials' runs


def large_study(cfg: DictConfig) -> bool:
    """Whether the study of ``cfg`` is large (:data:`LARGE_STUDY_TRIALS`)."""
    return cfg.study.n_trials >= LARGE_STUDY_TRIALS


def comparable_settings(cfg: DictConfig) -> dict:
    """What a trial's score depends on besides its hyperparameters, by config key: the data set
    (its task, and the columns left out or taken as categories), the hold-out split and the
    folds (both seeded by ``study.seed``), the metric, the fixed training settings; read once
    :func:`pipeline.config.task.resolve_task` has settled the task and the metric. A study is resumed only with the same (:func:`pipeline.search.study.check_settings`);
    the search space, sampler, pruner and budget may change."""
    nodes = {"dataset": cfg.dataset, "model": cfg.model}
    settings = {
        f"{group}.{key}": value
        for group, node in nodes.items()
        for key, value in OmegaConf.to_container(node, resolve=True).items()
    }
    settings.update(
        {"cv.folds": cfg.cv.folds, "cv.test_size": cfg.cv.test_size, "cv.metric": cfg.cv.metric}
    )
    settings["study.seed"] = cfg.study.seed
    return settings


def fixed_model_params(cfg: DictConfig) -> dict:
    """The training settings that are not searched (solver, batch size, L2, init, dtype)."""
    return OmegaConf.to_container(cfg.model, resolve=True)


def sweep_params(cfg: DictConfig) -> dict:
    """Settings of the whole study, logged once as the parent run's params."""
    return {
        "dataset": cfg.dataset.name,
        "cv.folds": cfg.cv.folds,
        "cv.test_size": cfg.cv.test_size,
        "study.seed": cfg.study.seed,
        "study.direction": cfg.study.direction,
        "dataset.task": cfg.dataset.task,
        "cv.metric": cfg.cv.metric,
        "sampler": cfg.sampler._target_,
        "pruner": cfg.pruner._target_,
        **{f"model.{k}": v for k, v in fixed_model_params(cfg).items()},
    }


def config_yaml(cfg: DictConfig) -> str:
    """The composed config as every run records it (``config.yaml``), passwords masked."""
    return redact(OmegaConf.to_yaml(cfg, resolve=True))

"""The sampler and the pruner of a study, built from the ``sampler`` and ``pruner`` groups."""

from __future__ import annotations

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig

from pipeline.errors import UserInputError


def build_sampler(cfg: DictConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler; each worker gets its own seed (QMC keeps one shared sequence)."""
    overrides = {}
    if "seed" in cfg.sampler and "QMCSampler" not in cfg.sampler._target_:
        overrides["seed"] = cfg.sampler.seed + cfg.worker
    try:
        return instantiate(cfg.sampler, **overrides)
    except Exception as error:
        raise UserInputError(
            f"sampler: cannot build {cfg.sampler._target_} ({error.__cause__ or error})"
        ) from None


def build_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    try:
        return instantiate(cfg.pruner)
    except Exception as error:
        raise UserInputError(
            f"pruner: cannot build {cfg.pruner._target_} ({error.__cause__ or error})"
        ) from None

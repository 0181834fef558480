"""What the launching process of a multirun does before any worker starts.

``python -m pipeline.sweep -m worker='range(N)' hydra/launcher=joblib`` starts N workers that
share one study. Two things are better done once, here (Hydra's ``on_multirun_start`` runs in
the launching process, before the launcher starts a job), than N times at the same instant:

- the shared stores are created: Optuna's tables in a fresh database and the MLflow store and
  experiment. Workers creating them together crash (MLflow's SQLite schema migration:
  "Online migration expected to match one row"; PostgreSQL: duplicate keys in its catalog;
  two ``create_experiment`` of one name).
- the cores are divided: a local launcher runs several workers on this machine, and each of
  them should use its share (``cv.n_jobs=-1`` and the BLAS threads follow
  :func:`pipeline.folds.pool.worker_cores`), not all the cores.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.compat import split_sweep_overrides
from pipeline.folds.pool import LOCAL_WORKERS_ENV

log = logging.getLogger(__name__)
STORE_KEYS = ("study.storage", "tracking.uri", "tracking.artifact_location", "tracking.experiment")


def sweep_jobs(task_overrides: list[str]) -> list[list[str]]:
    """The jobs of a basic sweep: one list of overrides per job (``worker=range(4)`` -> 4)."""
    return split_sweep_overrides(task_overrides)


def swept_keys(jobs: list[list[str]]) -> set[str]:
    """Keys whose value differs between jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}


def local_concurrency(launcher_target: str, launcher_cfg: DictConfig, jobs: int) -> int | None:
    """How many jobs the launcher runs at once on this machine; None if they run elsewhere."""
    if "joblib" in launcher_target.lower():
        n_jobs = int(launcher_cfg.get("n_jobs", -1) or -1)
        cores = os.cpu_count() or 1
        parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's -1 = all
        return max(1, min(parallel, jobs))
    if "LocalLauncher" in launcher_target:  # submitit_local: every job at once
        return jobs
    if "BasicLauncher" in launcher_target:  # one job after the other
        return 1
    return None  # SLURM and other clusters: each job has its own allocation


def prepare_stores(cfg: DictConfig) -> None:
    """Create the Optuna storage's tables and the MLflow store + experiment once.

    Only for a config that passes the workers' own checks: a bad one must leave nothing behind.
    """
    from pipeline.config.checks import validate_config
    from pipeline.config.stores import check_stores
    from pipeline.search.storage import open_storage
    from pipeline.tracking.store import connect

    validate_config(cfg)
    check_stores(cfg)
    if "://" in str(cfg.study.storage):
        open_storage(str(cfg.study.storage), int(cfg.study.heartbeat_interval))
    connect(str(cfg.tracking.uri), cfg.tracking.artifact_location, str(cfg.tracking.experiment))


class MultirunCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        task_overrides = [str(o) for o in config.hydra.overrides.task]
        try:
            jobs = sweep_jobs(task_overrides)
        except Exception:  # another sweeper's syntax: leave the cores and the stores alone
            return
        workers = local_concurrency(
            str(config.hydra.launcher._target_), config.hydra.launcher, len(jobs)
        )
        if workers is not None:
            os.environ[LOCAL_WORKERS_ENV] = str(workers)
        if swept_keys(jobs) & set(STORE_KEYS):
            return  # the stores differ between jobs; each job creates its own
        try:
            prepare_stores(config)
        except Exception as error:  # the workers report a bad store with its one-line message
            log.debug("stores not prepared: %s", type(error).__name__)

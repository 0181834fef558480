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
  :func:`pipeline.folds.pool.worker_cores`), not all the cores; workers that outnumber the
  cores take turns on them (:mod:`pipeline.search.core_turns`).

Registered in ``conf/config.yaml`` under ``hydra.callbacks``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.compat import split_sweep_overrides
from pipeline.folds.pool import LOCAL_WORKERS_ENV, machine_cores
from pipeline.search.core_turns import provide_core_turns

log = logging.getLogger(__name__)
# Imported by the launching process before it forks, so that no worker of hydra/launcher=forked
# imports them again: what a worker imports on its way to its first trial and at its end
# (pipeline.phases), and what its stores load lazily (Optuna's SQLAlchemy and Alembic, MLflow's
# stores, the database drivers). A module missing here costs each worker its import, no more.
PRELOADED_MODULES = (
    "pipeline.phases.prepare",
    "pipeline.phases.search",
    "pipeline.phases.finalise",
    "pipeline.search.storage",
    "pipeline.search.bounded_sampler",
    "pipeline.tracking.lost_runs",
    "pipeline.tracking.store",
    "pipeline.tracking.runs",
    "pipeline.results.champion",
    "optuna.samplers",
    "sqlalchemy.orm",
    "alembic.command",
    "alembic.migration",
    "alembic.script",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.rest_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.tracing.processor.otel",
    "sqlalchemy.dialects.postgresql.psycopg2",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "psycopg2",
)
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


def jobs_at_once(n_jobs: int, jobs: int) -> int:
    """A local launcher's ``n_jobs`` as joblib reads it (-1: every core, -2: all but one...),
    at most ``jobs``."""
    cores = machine_cores()
    parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, min(parallel, jobs))


def local_concurrency(launcher_target: str, launcher_cfg: DictConfig, jobs: int) -> int | None:
    """How many jobs the launcher runs at once on this machine; None if they run elsewhere."""
    if "joblib" in launcher_target.lower() or "ForkedLauncher" in launcher_target:
        return jobs_at_once(int(launcher_cfg.get("n_jobs", -1) or -1), jobs)
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


def preload_worker_modules() -> None:
    """Import what every worker would import, once, here."""
    for name in PRELOADED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional driver or a module a later version moved
            log.debug("not preloaded: %s", name)


def prepare_stores_apart(cfg: DictConfig) -> None:
    """:func:`prepare_stores` in a child process, so that the launching process never holds a
    store's connection: a worker forked from it (``hydra/launcher=forked``) would inherit the
    connection and share it with the others. A store that cannot be prepared is left to the
    workers, which report it in one line."""
    if not hasattr(os, "fork"):  # not on Linux or macOS: no launcher forks either
        prepared = _prepare_or_say_why(cfg)
    else:
        preload_worker_modules()  # the child needs most of them, and a forked worker too
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if _prepare_or_say_why(cfg) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        prepared = os.waitstatus_to_exitcode(status) == 0
    from pipeline.search.storage import GRPC_PREFIX, PREPARED_STORAGE_ENV, prepared_mark

    storage = str(cfg.study.storage)
    if prepared and "://" in storage and not storage.startswith(GRPC_PREFIX):
        os.environ[PREPARED_STORAGE_ENV] = prepared_mark(storage)


def _prepare_or_say_why(cfg: DictConfig) -> bool:
    try:
        prepare_stores(cfg)
        return True
    except Exception as error:  # the workers report a bad store with its one-line message
        log.debug("stores not prepared: %s", type(error).__name__)
        return False


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
            provide_core_turns(workers, machine_cores())
        if swept_keys(jobs) & set(STORE_KEYS):
            return  # the stores differ between jobs; each job creates its own
        prepare_stores_apart(config)

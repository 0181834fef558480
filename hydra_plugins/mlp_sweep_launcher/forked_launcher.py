"""``hydra/launcher=forked``: a multirun's jobs in processes forked from the launching process.

    python -m pipeline.sweep -m worker='range(16)' hydra/launcher=forked hydra.launcher.n_jobs=16

The joblib launcher starts fresh processes, and each of them imports Hydra, Optuna, MLflow,
scikit-learn and the project before its first trial: seconds of CPU per worker, which 16 workers
on a few cores pay one after the other. Here the launching process imports the sweep's modules
once and each job is a fork of it, ready at once; a job ends with ``os._exit`` after its result
is sent, without tearing the interpreter down module by module. Jobs run ``n_jobs`` at a time
(-1: as many as the machine has cores), like joblib's.

Fork is safe here because the launching process holds no connection and runs no thread when it
forks: it never opens a store itself (pipeline.multirun prepares them in a child process) and
starts no fold processes in a multirun (pipeline.sweep). Linux and macOS only (``os.fork``).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class ForkedLauncher(Launcher):
    def __init__(self, n_jobs: int = -1) -> None:
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        # Here, not at the top: Hydra imports every plugin's module at every start.
        from pipeline.multirun import jobs_at_once, preload_worker_modules

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        at_once = jobs_at_once(self.n_jobs, len(job_overrides))
        log.info(f"Forking {len(job_overrides)} jobs, {at_once} at a time, into {sweep_dir}")
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + idx} : {' '.join(filter_overrides(overrides))}")
        preload_worker_modules()  # done by now unless the stores were not prepared
        returns: list[JobReturn | None] = [None] * len(job_overrides)
        running: dict[int, tuple[int, int]] = {}  # pid -> (job's index, read end of its pipe)
        pending = list(enumerate(job_overrides))
        try:
            while pending or running:
                while pending and len(running) < at_once:
                    idx, overrides = pending.pop(0)
                    pid, reader = self._fork_job(initial_job_idx + idx, overrides)
                    running[pid] = (idx, reader)
                _collect_one(running, returns)
        except KeyboardInterrupt:
            # Ctrl-C reached the jobs too (one process group): each ends its trials, says so
            # and exits; wait for them, so that nothing is left running behind the prompt, and
            # exit as they do (130), without a traceback of this wait.
            while running:
                _collect_one(running, returns, interruptible=False)
            raise SystemExit(130) from None
        for ret, overrides in zip(returns, job_overrides, strict=True):
            if ret is not None and ret.overrides is None:  # a job that died without a result
                ret.overrides = list(overrides)
        return [ret for ret in returns if ret is not None]

    def _fork_job(self, idx: int, overrides: Sequence[str]) -> tuple[int, int]:
        reader, writer = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            os.close(writer)
            return pid, reader
        os.close(reader)
        _run_child(writer, lambda: self._execute(idx, overrides), overrides)
        raise AssertionError("unreachable: _run_child exits")

    def _execute(self, idx: int, overrides: Sequence[str]) -> JobReturn:
        """What the joblib launcher's job does, in this (forked) process."""
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(
            self.config, list(overrides)
        )
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        HydraConfig.instance().set_config(sweep_config)
        return run_job(
            hydra_context=self.hydra_context,
            config=sweep_config,
            task_function=self.task_function,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )


def _run_child(writer: int, execute, overrides: Sequence[str]) -> None:
    """In the forked job: run it, send its :class:`JobReturn` down ``writer``, and exit."""
    code = 1
    try:
        from pipeline.compat import failed_job_return, forget_exit_handlers

        forget_exit_handlers()  # the launching process's: its clean-up is its own
        try:
            ret = execute()
            code = 0
        except BaseException as error:  # what run_job lets through (SystemExit, Ctrl-C)
            ret = failed_job_return(error, list(overrides))
        with os.fdopen(writer, "wb") as pipe:
            pipe.write(_pickled(ret))
    finally:
        # The job's own exit work (its fold processes, temporary folders, logs), then out,
        # without the interpreter's teardown; nothing may return into the launcher's code.
        try:
            from pipeline.config.command_line import exit_without_teardown

            logging.shutdown()
            exit_without_teardown(code)
        finally:
            os._exit(1)


def _pickled(ret: JobReturn) -> bytes:
    """``ret`` pickled; an error that cannot be pickled is replaced by one that says what it
    was, so that the launching process still learns that the job failed and why."""
    from pipeline.compat import failed_job_return, job_error

    try:
        return pickle.dumps(ret)
    except Exception:
        error = job_error(ret)
        told = RuntimeError(f"{type(error).__name__}: {error}")
        return pickle.dumps(failed_job_return(told, ret.overrides))


def _collect_one(
    running: dict[int, tuple[int, int]], returns: list, interruptible: bool = True
) -> None:
    """Wait for one job to end; put its :class:`JobReturn` in ``returns``."""
    from multiprocessing.connection import wait

    while True:
        try:
            ready = wait([reader for _, reader in running.values()])
            break
        except KeyboardInterrupt:
            if interruptible:
                raise
    reader = ready[0]
    pid = next(p for p, (_, r) in running.items() if r == reader)
    idx, _ = running.pop(pid)
    chunks = []
    while chunk := os.read(reader, 1 << 20):
        chunks.append(chunk)
    os.close(reader)
    _, status = os.waitpid(pid, 0)
    returns[idx] = _returned(b"".join(chunks), status, idx)


def _returned(data: bytes, status: int, idx: int) -> JobReturn:
    """The job's :class:`JobReturn`, or a failed one if it died without sending it."""
    if data:
        try:
            return pickle.loads(data)
        except Exception as error:
            reason: Any = error
    else:
        reason = f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else None
        reason = reason or f"exit status {os.waitstatus_to_exitcode(status)}"
    from pipeline.compat import failed_job_return

    return failed_job_return(RuntimeError(f"job #{idx} ended without a result ({reason})"))

"""Turns on a machine's cores for the workers of a local multirun that outnumber them.

``hydra.launcher.n_jobs=16`` on a 2-core machine runs 16 workers at once. Each trial's
bookkeeping (asking Optuna, telling it, the storage's queries) is CPU work, and 16 processes
doing it at the same time on 2 cores each get a slice: every trial takes 8 times as long, the
processes evict each other's caches, and each of them reads every trial of the study into its
own cache. The study then finishes later than with 2 workers (docs/cluster.md).

So when a local multirun runs more workers at once than the machine has cores, they take turns:
as many run as there are cores, and the others wait in the kernel, using no CPU, before they
open anything. Worker 0 needs no turn: it leads (it creates the study and reserves its trials,
mends what a killed worker broke, and refits the champion at the end), and must never wait
behind the others; the other workers share ``cores - 1`` turns (at least one). A worker keeps
its turn for its whole sweep (:func:`core_turn`); the next one takes it when that worker ends or
is killed, and a worker whose turn comes once another worker's sweep ended (the trials ran
out, or Ctrl-C) ends at once (:attr:`Turn.study_over`).

A turn is an exclusive ``flock`` on one of the turns' files, in a folder the launching process
makes (:func:`provide_core_turns`, which names it to the workers in :data:`CORE_TURNS_ENV`). The
kernel releases a killed worker's lock, so a lost worker never keeps a turn. Workers on a
cluster (SLURM) have their own cores: no turns.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.folds.processes import folder_of_this_process

CORE_TURNS_ENV = "MLP_SWEEP_CORE_TURNS"  # "FOLDER:TURNS", set for the workers of a multirun
TURNS_FOLDER_PREFIX = "mlp-sweep-turns-"  # then the launching process's pid, "-", a suffix


def provide_core_turns(workers_at_once: int, cores: int) -> None:
    """In the launching process: give its workers turns if they outnumber the cores, else none
    (every worker then runs at once)."""
    os.environ.pop(CORE_TURNS_ENV, None)
    if workers_at_once <= cores:
        return
    folder = folder_of_this_process(TURNS_FOLDER_PREFIX)
    os.environ[CORE_TURNS_ENV] = f"{folder}:{max(1, cores - 1)}"


class Turn:
    """A worker's turn, held (or none needed) for its sweep; ``study`` names the study, so that
    the workers of two studies of one multirun do not mark each other's done."""

    def __init__(self, folder: Path | None, study: str):
        digest = hashlib.sha256(study.encode()).hexdigest()[:16]
        self._done = folder / f"done-{digest}" if folder is not None else None

    @property
    def study_over(self) -> bool:
        """Whether a worker of the study ended its sweep while this one waited: its trials ran
        out, or Ctrl-C stopped the multirun, or it failed. Either way this worker has nothing
        to do; worker 0 finishes what is left of the study."""
        return self._done is not None and self._done.exists()

    def mark_study_over(self) -> None:
        """Said by a worker whose sweep ended, however: the workers still waiting for a turn
        end at once."""
        if self._done is not None:
            self._done.touch()


@contextmanager
def core_turn(worker: int, study: str) -> Iterator[Turn]:
    """Hold worker ``worker``'s turn for the block (waiting for it first), if its multirun gave
    turns and it is not worker 0; otherwise run the block at once. Worker ``w`` queues for turn
    ``(w - 1) % turns``. ``study``: what identifies the worker's study (:class:`Turn`)."""
    setting = os.environ.get(CORE_TURNS_ENV, "")
    name, _, turns = setting.rpartition(":")
    folder = Path(name) if name and turns.isdigit() and int(turns) > 0 else None
    if folder is None or not folder.is_dir():  # no turns, or a launching process that is gone
        yield Turn(None, study)
        return
    if worker == 0:
        yield Turn(folder, study)
        return
    path = folder / f"turn-{(worker - 1) % int(turns)}"
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield Turn(folder, study)
    finally:
        os.close(descriptor)  # closing the file releases the lock

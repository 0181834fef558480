"""Heartbeats of the trials in flight, as ``study.optimize`` records them on RDB storages."""

from __future__ import annotations

import threading

import optuna
from optuna.storages import fail_stale_trials

from pipeline.compat import trial_id


class Heartbeats:
    """What ``study.optimize`` does on a storage with heartbeats (RDB with
    ``heartbeat_interval``): fail stale trials before each new one, and record a heartbeat for
    every trial in flight, from one thread."""

    def __init__(self, storage):
        # RDBStorage (and the cache Optuna wraps it in) has these; other storages do not.
        beats = hasattr(storage, "record_heartbeat") and hasattr(storage, "get_heartbeat_interval")
        self._interval = storage.get_heartbeat_interval() if beats else None
        self._storage = storage if self._interval is not None else None
        self._trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        if self._storage is not None:
            threading.Thread(target=self._beat, name="mlp-sweep-heartbeat", daemon=True).start()

    def fail_stale(self, study: optuna.Study) -> None:
        if self._storage is not None:
            fail_stale_trials(study)

    def add(self, trial: optuna.Trial) -> None:
        if self._storage is not None:
            self._storage.record_heartbeat(trial_id(trial))
            with self._lock:
                self._trial_ids.add(trial_id(trial))

    def remove(self, trial: optuna.Trial) -> None:
        with self._lock:
            self._trial_ids.discard(trial_id(trial))

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self) -> None:
        while not self._stopped.wait(timeout=self._interval):
            with self._lock:
                trial_ids = list(self._trial_ids)
            for beating in trial_ids:
                self._storage.record_heartbeat(beating)

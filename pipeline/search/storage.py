"""The Optuna storage behind ``study.storage``: a journal file, or a database with heartbeats."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from pipeline.config.checks import grpc_address
from pipeline.config.stores import cannot_open_database, with_installed_driver
from pipeline.errors import UserInputError
from pipeline.names import SQLITE_PREFIX
from pipeline.quiet import quiet_libraries
from pipeline.search.journal import set_aside_torn_records

GRPC_PREFIX = "grpc://"  # Optuna's gRPC storage proxy (python -m pipeline.storage_proxy)
# Set by a multirun's launching process once it has created and checked the database's tables
# (pipeline.multirun), for its workers: see :func:`prepared_mark`.
PREPARED_STORAGE_ENV = "MLP_SWEEP_PREPARED_STORAGE"


def open_storage(location: str, heartbeat_interval: int) -> optuna.storages.BaseStorage:
    """A database URL gives an RDB storage with heartbeats, ``grpc://HOST:PORT`` the client of
    a storage proxy (no heartbeats); anything else is a journal file. Optuna's warnings that
    heartbeats and the proxy are experimental are ignored from now on (:mod:`pipeline.quiet`)."""
    quiet_libraries()
    if location.startswith(GRPC_PREFIX):
        return open_grpc_proxy(location)
    if "://" in location:
        engine_kwargs = {}
        if location.startswith("sqlite"):
            # Several writers on one SQLite file wait for the lock instead of failing at once.
            engine_kwargs = {"connect_args": {"timeout": 60}}
            if location.startswith(SQLITE_PREFIX):  # SQLite makes the file, not its folders
                Path(location.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)
        # Tables made and checked by the launching process are not made and checked again by
        # each of its workers: Optuna's checks load its schema migrations, a second of CPU each.
        prepared = os.environ.get(PREPARED_STORAGE_ENV) == prepared_mark(location)
        try:
            return _rdb_storage_with_retries(
                with_installed_driver(location),
                skip_table_creation=prepared,
                skip_compatibility_check=prepared,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=4 * heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        except Exception as error:  # SQLAlchemy raises many kinds; all mean "cannot use it"
            raise cannot_open_database("study.storage", location, error) from None
    return open_journal(Path(location))


def prepared_mark(location: str) -> str:
    """What :data:`PREPARED_STORAGE_ENV` holds for the database at ``location`` once its tables
    are made and checked: a digest of the URL (no password in the environment) and of Optuna's
    version (a worker with another version checks the tables itself)."""
    return hashlib.sha256(f"{optuna.__version__} {location}".encode()).hexdigest()[:32]


def local_file(location: str) -> Path | None:
    """The file of a storage on this machine's file system (a journal, a SQLite database), or
    None for a server (PostgreSQL, MySQL, a storage proxy)."""
    if location.startswith(SQLITE_PREFIX):
        return Path(location.removeprefix(SQLITE_PREFIX))
    if "://" in location:
        return None
    return Path(location)


def open_grpc_proxy(location: str, timeout: float = 10.0) -> optuna.storages.BaseStorage:
    """The client of the storage proxy at ``grpc://HOST:PORT``, once it answers."""
    from optuna.storages import GrpcStorageProxy

    address = grpc_address(location)
    if address is None:
        raise UserInputError(f"study.storage={location}: give grpc://HOST:PORT")
    try:
        proxy = GrpcStorageProxy(host=address[0], port=address[1])
        proxy.wait_server_ready(timeout=timeout)
    except ImportError as error:
        raise UserInputError(f"study.storage={location}: needs grpcio ({error})") from None
    except ConnectionError:
        raise UserInputError(
            f"study.storage={location}: no storage proxy answers there within "
            f"{timeout:.0f} s; start one with python -m pipeline.storage_proxy DATABASE_URL"
        ) from None
    return proxy


def open_journal(path: Path) -> JournalStorage:
    """The journal file at ``path`` (created if missing), its torn writes set aside first; a
    file that is not an Optuna journal is refused in one line."""
    location = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        set_aside_torn_records(path)
        return JournalStorage(JournalFileBackend(location))
    except OSError as error:
        raise UserInputError(
            f"study.storage={location}: cannot write there ({error.strerror})"
        ) from None
    except (ValueError, KeyError, TypeError, IndexError) as error:  # JSON, or not Optuna's
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(
            f"study.storage={location}: not an Optuna journal file ({reason}); give another "
            "path, or move this file away"
        ) from None


def _rdb_storage_with_retries(url: str, attempts: int = 4, **kwargs) -> RDBStorage:
    """RDBStorage, retried: workers opening a fresh database at the same instant race to create
    its tables, and the losers fail with a duplicate-key error (PostgreSQL's catalog)."""
    for attempt in range(attempts):
        try:
            return RDBStorage(url, **kwargs)
        except Exception as error:
            if attempt == attempts - 1 or not _is_creation_race(error):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _is_creation_race(error: Exception) -> bool:
    text = str(error).lower()
    return "duplicate key" in text or "already exists" in text or "unique constraint" in text

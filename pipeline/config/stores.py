"""Checks of the stores a sweep will write, made before any of them is touched.

A store that cannot be created (its folder is under a regular file, or the path is a folder
where a file is expected) must fail the sweep with one line before the Optuna study or the MLflow
experiment is created, so that no half-created store is left behind. Runs as root are not stopped
by permissions, so the checks look at what the path *is*, then at write access.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from pipeline.config.checks import DATABASE_SCHEMES, uri_scheme
from pipeline.errors import UserInputError
from pipeline.names import SQLITE_PREFIX
from pipeline.redaction import redact


def local_file_of(location: str) -> Path | None:
    """The file behind a journal path or an ``sqlite:///`` URL; None for a server URL."""
    if location.startswith(SQLITE_PREFIX):
        return Path(location.removeprefix(SQLITE_PREFIX))
    if "://" in location:
        return None
    return Path(location)


def check_file_location(key: str, location: str) -> None:
    """The file at ``location`` can be created or appended to (its folders may be missing)."""
    path = local_file_of(location)
    if path is None:
        return
    if path.is_dir():
        raise UserInputError(f"{key}={redact(location)}: is a folder; give a file path in it")
    _check_folder_creatable(key, location, path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserInputError(f"{key}={redact(location)}: the file is not writable; fix its mode")


def check_folder_location(key: str, location: str) -> None:
    """The folder ``location`` exists or can be created (``file:`` URIs and plain paths)."""
    if location and "://" in location and not location.startswith("file:"):
        return
    path = Path(location.removeprefix("file://").removeprefix("file:"))
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{key}={location}: is a file, not a folder; give a folder path")
    _check_folder_creatable(key, location, path)


def _check_folder_creatable(key: str, location: str, folder: Path) -> None:
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserInputError(
            f"{key}={redact(location)}: {existing} is a file, so no folder can be made "
            "under it; choose another location"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(
            f"{key}={redact(location)}: folder {existing} is not writable; choose another location"
        )


def check_sqlite_file(key: str, location: str) -> None:
    """An existing file behind an ``sqlite:///`` URL is an SQLite database (read, not changed).

    The sweep opens its MLflow store while the first trial already runs; a file that is not a
    database must fail the sweep before that, with no trial begun.
    """
    path = local_file_of(location)
    if not location.startswith(SQLITE_PREFIX) or path is None or not path.is_file():
        return
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        ) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as error:
        raise UserInputError(
            f"{key}={redact(location)}: not an SQLite database ({error}); give a new file name"
        ) from None


def check_tracking_database(key: str, location: str) -> None:
    """A PostgreSQL, MySQL or SQL Server tracking store answers one connection.

    MLflow opens its store while the study already exists, and retries a refused connection
    for several seconds with a warning each time before it fails; one plain attempt here fails first.
    """
    if uri_scheme(location) not in DATABASE_SCHEMES:
        return
    import sqlalchemy  # Optuna's dependency, loaded by now

    try:
        engine = sqlalchemy.create_engine(location, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
    except Exception as error:  # SQLAlchemy raises many kinds; all mean "cannot use it"
        raise cannot_open_database(key, location, error) from None


def cannot_open_database(key: str, location: str, error: Exception) -> UserInputError:
    """The one line for a database URL that does not open: the error's first line, no password."""
    reason = redact(str(error).splitlines()[0]) if str(error) else type(error).__name__
    return UserInputError(
        f"{key}={redact(location)}: cannot open ({reason}); check the URL and that the "
        "database server runs and accepts this user"
    )


def check_stores(cfg) -> None:
    """A sweep's stores: ``study.storage`` and the tracking store can be written."""
    check_file_location("study.storage", str(cfg.study.storage))
    check_tracking_store(cfg)


def check_tracking_store(cfg) -> None:
    """``tracking.uri`` and ``tracking.artifact_location`` can be written, and a tracking
    database answers."""
    check_file_location("tracking.uri", str(cfg.tracking.uri))
    check_sqlite_file("tracking.uri", str(cfg.tracking.uri))
    check_tracking_database("tracking.uri", str(cfg.tracking.uri))
    if cfg.tracking.artifact_location:
        check_folder_location("tracking.artifact_location", str(cfg.tracking.artifact_location))


def check_store_exists(key: str, location: str) -> None:
    """A local SQLite store that must already hold what is asked of it (a run to reproduce):
    a missing file is named instead of being created empty."""
    path = local_file_of(location)
    if location.startswith(SQLITE_PREFIX) and path is not None and not path.exists():
        raise UserInputError(
            f"{key}={redact(location)}: no such store ({path} does not exist); give the "
            "tracking.uri of the sweep that logged the run"
        )

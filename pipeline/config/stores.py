"""Checks of the stores a sweep will write, made before any of them is touched.

A store that cannot be created (its folder is under a regular file, or the path is a folder
where a file is expected) must fail the sweep with one line before the Optuna study or the MLflow
experiment is created, so that no half-created store is left behind. Runs as root are not stopped
by permissions, so the checks look at what the path *is*, then at write access.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
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
            f"{key}={redact(location)}: folder {existing} is not writable (a read-only disk, or "
            "its permissions); run from a writable folder or choose another location"
        )


# Tables only one of the two tools makes: a database holding the other's is not for this one
# (both keep an alembic_version table, so each would take the other's schema for its own).
TABLES_OF = {
    "optuna": {"studies", "trials", "trial_values"},
    "mlflow": {"experiments", "runs", "metrics"},
}
NAME_OF = {"optuna": "Optuna's", "mlflow": "MLflow's"}


def check_database(key: str, location: str, tool: str) -> None:
    """The database behind ``location`` (an existing SQLite file, or a database server) opens,
    and does not hold the other tool's tables; read only, nothing is created or changed."""
    tables = _sqlite_tables(key, location) if location.startswith(SQLITE_PREFIX) else None
    if tables is None and uri_scheme(location) in DATABASE_SCHEMES:
        tables = _server_tables(key, location)
    other = "mlflow" if tool == "optuna" else "optuna"
    if tables and TABLES_OF[other] <= tables and not TABLES_OF[tool] <= tables:
        raise UserInputError(
            f"{key}={redact(location)}: is {NAME_OF[other]} database (it holds its tables); "
            f"give {NAME_OF[tool]} store its own database"
        )


def _sqlite_tables(key: str, location: str) -> set[str] | None:
    """The tables of an existing SQLite file (None if there is no file yet)."""
    path = local_file_of(location)
    if path is None or not path.is_file():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        ) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as error:
        raise UserInputError(
            f"{key}={redact(location)}: not an SQLite database ({error}); give a new file name"
        ) from None
    return {name for (name,) in rows}


def _server_tables(key: str, location: str) -> set[str]:
    """The tables of a PostgreSQL, MySQL or SQL Server database, in one plain connection.

    MLflow and Optuna retry a refused connection for a long while with a warning each time
    before they fail; one attempt here, with a short connect timeout, fails first.
    """
    import sqlalchemy  # Optuna's dependency, loaded by now

    url = with_installed_driver(location)
    connect_args = {"connect_timeout": 5} if uri_scheme(url) == "postgresql" else {}
    try:
        engine = sqlalchemy.create_engine(
            url, poolclass=sqlalchemy.pool.NullPool, connect_args=connect_args
        )
        with engine.connect() as connection:
            return set(sqlalchemy.inspect(connection).get_table_names())
    except Exception as error:  # SQLAlchemy raises many kinds; all mean "cannot use it"
        raise cannot_open_database(key, location, error) from None


def with_installed_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; the project installs psycopg2
    (``psycopg2-binary``), so without this the documented URL fails with "No module named
    'psycopg'". An explicit ``postgresql+driver://`` is left alone.
    """
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def check_tracking_server(key: str, location: str, timeout: float = 5.0) -> None:
    """An MLflow server at an http(s) ``tracking.uri`` answers its health check: MLflow would
    otherwise retry for minutes, while the study is already written."""
    if uri_scheme(location) not in ("http", "https"):
        return
    parsed = urllib.parse.urlsplit(location)
    host = parsed.hostname or ""
    netloc = host if parsed.port is None else f"{host}:{parsed.port}"
    health = urllib.parse.urlunsplit(
        (parsed.scheme, netloc, parsed.path.rstrip("/") + "/health", "", "")
    )
    try:
        with urllib.request.urlopen(health, timeout=timeout) as answer:
            if answer.status == 200:
                return
            reason = f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise UserInputError(
        f"{key}={redact(location)}: no MLflow server answers ({redact(reason)}); start it "
        "(mlflow server) or check the URL"
    )


def cannot_open_database(key: str, location: str, error: Exception) -> UserInputError:
    """The one line for a database URL that does not open: the error's first line, no password."""
    reason = redact(str(error).splitlines()[0]) if str(error) else type(error).__name__
    return UserInputError(
        f"{key}={redact(location)}: cannot open ({reason}); check the URL and that the "
        "database server runs and accepts this user"
    )


def check_stores(cfg) -> None:
    """A sweep's stores: ``study.storage`` and the tracking store can be written, and neither
    is the other tool's database."""
    check_file_location("study.storage", str(cfg.study.storage))
    check_database("study.storage", str(cfg.study.storage), "optuna")
    check_tracking_store(cfg)


def check_tracking_store(cfg) -> None:
    """``tracking.uri`` and ``tracking.artifact_location`` can be written, and a tracking
    database or server answers."""
    uri = str(cfg.tracking.uri)
    check_file_location("tracking.uri", uri)
    check_database("tracking.uri", uri, "mlflow")
    check_tracking_server("tracking.uri", uri)
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

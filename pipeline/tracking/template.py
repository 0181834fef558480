"""A new MLflow SQLite store copied from a migrated template instead of migrated from scratch.

MLflow makes a new SQLite store by creating its first schema and then running every Alembic
migration since (dozens of them), in every new sweep folder, before the first trial can be
tracked. The result depends only on the MLflow
version, so it is made once per version, kept in the user's cache folder without any experiment,
and copied for each new store. MLflow itself then adds the default experiment to the copy (its
artifact location depends on the working folder, not on the template), and the copy is put in
write-ahead-log mode (:func:`write_ahead_log`).

The copy is prepared under a temporary name next to the store and linked into place, which fails
if the file appeared meanwhile: a store is always either absent or complete, so two workers
creating the same store at the same instant no longer race inside MLflow's migrations.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from pathlib import Path

from pipeline.compat import dispose_mlflow_engine
from pipeline.names import SQLITE_PREFIX


def cache_folder() -> Path:
    """``$XDG_CACHE_HOME/mlp-sweep``, by default ``~/.cache/mlp-sweep``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlp-sweep"


def template_path() -> Path:
    import mlflow

    return cache_folder() / f"mlflow-{mlflow.__version__}-sqlite-store.db"


def provide_sqlite_store(uri: str) -> bool:
    """Create the SQLite file of ``uri`` from the template when it does not exist yet.

    Returns True if this call created it. Does nothing for other URIs or an existing file, and
    leaves the work to MLflow (returns False) when the cache folder cannot be used.
    """
    if not uri.startswith(SQLITE_PREFIX):
        return False
    path = Path(uri.removeprefix(SQLITE_PREFIX))
    if path.exists():
        return False
    try:
        template = template_path()
        if not template.exists():
            _build_template(template)
    except OSError:
        return False  # a read-only home, say: MLflow migrates the new store itself
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(template, staging)
    try:
        _open_with_mlflow(staging)  # adds the default experiment, as for any new store
        write_ahead_log(staging)
        os.link(staging, path)  # atomic; fails if another process made the store meanwhile
        return True
    except FileExistsError:
        return False
    finally:
        staging.unlink(missing_ok=True)


def write_ahead_log(path: Path) -> None:
    """Put the SQLite file at ``path`` in write-ahead-log mode, which the file keeps.

    Each MLflow call is a transaction; in SQLite's default mode its commit writes a rollback
    journal and syncs twice, in WAL mode it appends to the log and syncs once, and readers no
    longer wait for a writer (the sweep's run writer, its report, other local workers). WAL
    needs the store on a local disk, as a SQLite store does anyway (docs/cluster.md).
    """
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _build_template(template: Path) -> None:
    """Let MLflow create and migrate a store once; keep it without its default experiment."""
    template.parent.mkdir(parents=True, exist_ok=True)
    staging = template.with_name(f".{template.name}.{uuid.uuid4().hex}.tmp")
    try:
        _open_with_mlflow(staging)
        with contextlib.closing(sqlite3.connect(staging)) as db, db:
            db.execute("DELETE FROM experiments")
        os.replace(staging, template)
    finally:
        staging.unlink(missing_ok=True)


def _open_with_mlflow(path: Path) -> None:
    """Open the store at ``path`` as a sweep would (creating or completing it), then let go."""
    from mlflow.tracking import MlflowClient

    uri = f"{SQLITE_PREFIX}{path}"
    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    dispose_mlflow_engine(uri)  # this URI is not used again

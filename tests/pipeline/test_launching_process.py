"""What a multirun's launching process does before its workers start (pipeline.multirun): the
stores prepared in a child process, so that a worker forked from the launching process
inherits no connection; the prepared database's tables not checked again by each worker."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import optuna
import pytest

from pipeline.config.command_line import SWEEP, compose_config
from pipeline.errors import UserInputError
from pipeline.multirun import jobs_at_once, prepare_stores_apart
from pipeline.search.storage import PREPARED_STORAGE_ENV, open_storage, prepared_mark


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(PREPARED_STORAGE_ENV, raising=False)
    yield
    os.environ.pop(PREPARED_STORAGE_ENV, None)


def open_files() -> set[str]:
    folder = Path("/proc/self/fd")
    names = set()
    for fd in folder.iterdir():
        try:
            names.add(os.readlink(fd))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            pass
    return names


def test_stores_are_prepared_by_a_child_and_leave_nothing_open_here(tmp_path, clean_env):
    optuna_db, mlflow_db = tmp_path / "optuna.db", tmp_path / "mlruns" / "mlflow.db"
    cfg = compose_config(
        [
            f"study.storage=sqlite:///{optuna_db}",
            f"tracking.uri=sqlite:///{mlflow_db}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
        ],
        SWEEP,
    )
    prepare_stores_apart(cfg)
    opened = {name for name in open_files() if name.startswith(str(tmp_path))}
    assert opened == set(), "a store is open in the launching process"
    with closing(sqlite3.connect(optuna_db)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"studies", "trials"} <= tables
    with closing(sqlite3.connect(mlflow_db)) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM experiments")]
    assert str(cfg.tracking.experiment) in names
    assert os.environ[PREPARED_STORAGE_ENV] == prepared_mark(str(cfg.study.storage))


def test_a_store_that_cannot_be_prepared_is_left_to_the_workers(tmp_path, clean_env):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = compose_config([f"study.storage=sqlite:///{blocker}/optuna.db"], SWEEP)
    prepare_stores_apart(cfg)  # no error here: each worker reports it in one line
    assert PREPARED_STORAGE_ENV not in os.environ


def test_a_prepared_database_is_not_checked_again(tmp_path, clean_env):
    prepared, fresh = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    optuna.create_study(storage=open_storage(prepared, 60), study_name="s")
    os.environ[PREPARED_STORAGE_ENV] = prepared_mark(prepared)
    optuna.load_study(study_name="s", storage=open_storage(prepared, 60))
    # The mark is for one URL: another database is made and checked as always.
    optuna.create_study(storage=open_storage(fresh, 60), study_name="t")
    # Marked but without tables (as if prepared elsewhere): the worker does not create them.
    empty = tmp_path / "c.db"
    os.environ[PREPARED_STORAGE_ENV] = prepared_mark(f"sqlite:///{empty}")
    with pytest.raises(UserInputError, match="cannot open"):
        open_storage(f"sqlite:///{empty}", 60)
    with closing(sqlite3.connect(empty)) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_jobs_at_once_reads_n_jobs_as_joblib_does():
    cores = len(os.sched_getaffinity(0))
    assert jobs_at_once(16, 4) == 4
    assert jobs_at_once(3, 10) == 3
    assert jobs_at_once(-1, 100) == cores
    assert jobs_at_once(-2, 100) == max(1, cores - 1)

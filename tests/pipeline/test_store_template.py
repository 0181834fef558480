"""New MLflow SQLite stores copied from a migrated template (pipeline.tracking.template).

Real MLflow throughout: the copy must be the very store MLflow would have made itself.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import pipeline.tracking.template as store_template
from pipeline.tracking.store import connect
from pipeline.tracking.template import provide_sqlite_store, template_path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder for this test (the template is built in it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def rows(path: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sorted(db.execute(sql).fetchall(), key=repr)


def schema(path: Path) -> list[tuple]:
    """Tables and indexes, each definition's lines sorted: MLflow's migrations write a table's
    constraints in an order that differs from one run to the next."""
    return sorted(
        (kind, name, tuple(sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())))
        for kind, name, sql in rows(path, "SELECT type, name, sql FROM sqlite_master")
    )


def store_contents(path: Path) -> dict:
    """Schema, migration revision and the rows MLflow puts in a new store."""
    return {
        "schema": schema(path),
        "revision": rows(path, "SELECT * FROM alembic_version"),
        "workspaces": rows(path, "SELECT * FROM workspaces"),
        "experiments": rows(
            path, "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments"
        ),
    }


def test_a_copied_store_is_the_store_mlflow_makes(cache, workdir):
    made_by_mlflow = workdir / "mlflow-made.db"
    MlflowClient(tracking_uri=f"sqlite:///{made_by_mlflow}").search_experiments()

    copied = workdir / "sub" / "copied.db"
    assert provide_sqlite_store(f"sqlite:///{copied}")
    assert template_path().is_relative_to(cache)
    assert rows(template_path(), "SELECT * FROM experiments") == []  # no working folder in it
    assert store_contents(copied) == store_contents(made_by_mlflow)
    assert [p.name for p in copied.parent.iterdir()] == ["copied.db"]  # no staging file left


def test_the_template_is_built_once_and_existing_stores_are_left_alone(cache, workdir):
    first, second = workdir / "a.db", workdir / "b.db"
    assert provide_sqlite_store(f"sqlite:///{first}")
    built = template_path().stat().st_mtime_ns
    assert provide_sqlite_store(f"sqlite:///{second}")
    assert template_path().stat().st_mtime_ns == built

    client, experiment_id = connect(f"sqlite:///{first}", str(workdir / "art"), "kept")
    client.create_run(experiment_id)
    before = first.read_bytes()
    assert not provide_sqlite_store(f"sqlite:///{first}")
    assert first.read_bytes() == before
    assert not provide_sqlite_store("postgresql://nobody@127.0.0.1/none")


def test_an_unusable_cache_leaves_the_migration_to_mlflow(tmp_path, monkeypatch, workdir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    assert not provide_sqlite_store(uri)
    client, experiment_id = connect(uri, str(workdir / "art"), "fallback")
    assert client.get_experiment(experiment_id).name == "fallback"


def test_a_store_made_meanwhile_by_another_process_wins(cache, workdir, monkeypatch):
    """The copy is linked into place only if no store appeared meanwhile; the other's is kept."""
    target = workdir / "mlflow.db"
    provide_sqlite_store(f"sqlite:///{workdir / 'warm.db'}")  # the template exists
    open_with_mlflow = store_template._open_with_mlflow

    def another_process_first(path):
        open_with_mlflow(path)
        shutil.copyfile(path, target)  # what a simultaneous worker's link would leave

    monkeypatch.setattr(store_template, "_open_with_mlflow", another_process_first)
    assert not provide_sqlite_store(f"sqlite:///{target}")
    assert store_contents(target)["revision"]
    assert sorted(p.name for p in workdir.iterdir()) == ["cache", "mlflow.db", "warm.db"]


def test_a_new_store_logs_ahead_and_mlflow_writes_and_reads_it(cache, workdir):
    """Write-ahead-log mode (one sync per MLflow call instead of three) is kept by the file:
    MLflow's own client and a second connection, as another process would hold, use it."""
    path = workdir / "wal.db"
    assert provide_sqlite_store(f"sqlite:///{path}")
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    experiment = client.create_experiment("wal", artifact_location=str(workdir / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "learning_rate", "0.01")
    assert rows(path, "SELECT key, value FROM params") == [("learning_rate", "0.01")]

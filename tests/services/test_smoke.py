"""Smoke tests for the services that .ci/services.sh starts (PostgreSQL, MLflow server, SLURM).

They prove the plumbing (env vars -> reachable service) only; the feature tests come later.
Each test skips when its env var is absent. Run them with:

    bash .ci/services.sh && source .ci/services.env && pytest -m services
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

HINT = "start services with .ci/services.sh and source .ci/services.env"


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.skip(f"{name} not set: {HINT}")
    return value


def _libpq_url(url: str) -> str:
    """SQLAlchemy URL (postgresql+psycopg2://...) -> libpq URI that psycopg2.connect accepts."""
    scheme, sep, rest = url.partition("://")
    assert sep, f"not a URL: {scheme!r}..."
    return "postgresql://" + rest if scheme.startswith("postgresql") else url


def test_postgres_create_and_drop_table() -> None:
    url = _env("MLP_SWEEP_TEST_POSTGRES_URL")
    psycopg2 = pytest.importorskip("psycopg2")
    schema = f"smoke_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(_libpq_url(url), connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
            try:
                cur.execute(f'CREATE TABLE "{schema}".t (id integer PRIMARY KEY, name text)')
                cur.execute(f'INSERT INTO "{schema}".t VALUES (%s, %s), (%s, %s)', (1, "a", 2, "b"))
                cur.execute(f'SELECT count(*), max(name) FROM "{schema}".t')
                assert cur.fetchone() == (2, "b")
                cur.execute(f'DROP TABLE "{schema}".t')
            finally:
                cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            assert cur.fetchone() is None
    finally:
        conn.close()


def _request(url: str, payload: dict | None = None, method: str = "GET") -> tuple[int, bytes]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_mlflow_server_health_and_experiment_roundtrip() -> None:
    base = _env("MLP_SWEEP_TEST_MLFLOW_URL").rstrip("/")
    status, body = _request(f"{base}/health")
    assert status == 200, body
    assert body.strip() == b"OK"

    api = f"{base}/api/2.0/mlflow/experiments"
    name = f"smoke-{uuid.uuid4().hex}"
    status, body = _request(f"{api}/create", {"name": name}, "POST")
    assert status == 200, body
    experiment_id = json.loads(body)["experiment_id"]
    try:
        status, body = _request(f"{api}/get?experiment_id={experiment_id}")
        assert status == 200, body
        experiment = json.loads(body)["experiment"]
        assert experiment["name"] == name
        assert experiment["lifecycle_stage"] == "active"
    finally:
        status, body = _request(f"{api}/delete", {"experiment_id": experiment_id}, "POST")
        assert status == 200, body
    status, body = _request(f"{api}/get?experiment_id={experiment_id}")
    assert status == 200, body
    assert json.loads(body)["experiment"]["lifecycle_stage"] == "deleted"


@pytest.mark.timeout(180)
def test_slurm_sbatch_wait(tmp_path: Path) -> None:
    _env("MLP_SWEEP_TEST_SLURM")
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        pytest.skip(f"MLP_SWEEP_TEST_SLURM set but sbatch is not on PATH: {HINT}")
    token = uuid.uuid4().hex
    out = tmp_path / "job.out"
    cmd = [sbatch, "--wait", "--parsable", "--job-name=mlp-sweep-smoke", "--time=1"]
    cmd += ["--ntasks=1", f"--chdir={tmp_path}", f"--output={out}"]
    if partition := os.environ.get("MLP_SWEEP_TEST_SLURM_PARTITION"):
        cmd.append(f"--partition={partition}")
    cmd.append(f"--wrap=echo smoke-{token} on $(hostname)")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, f"sbatch failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
    assert proc.stdout.strip().split(";")[0].isdigit(), proc.stdout
    assert out.read_text().strip().startswith(f"smoke-{token} on ")

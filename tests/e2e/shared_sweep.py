"""One small finished sweep shared by the slow tests of serving, reproducing and the MLflow UI,
and the helpers that start real servers over its store.

A sweep costs ~10 s: each test module asks for it through a module-scoped fixture, and
:func:`finished_sweep` runs it once per test session (cached on pytest's tmp_path_factory).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.helpers import FAST, run_cli

STUDY = "iris-mlp"
N_TRIALS = 6
# The median rule after 3 complete trials, with the folds one after another (cv.n_jobs=1: a fold
# waits, so a trial can be pruned before its next fold starts): the seeded sweep prunes some
# trials and completes the others, both of which the UI tests look at. The progress bar is on to
# see the steps after the last trial.
SWEEP_ARGS = [
    *FAST,
    "dataset=iris",
    "pruner=median",
    "pruner.n_startup_trials=3",
    "cv.n_jobs=1",
    f"study.n_trials={N_TRIALS}",
    "progress_bar=true",
]
VENV_BIN = str(Path(sys.executable).parent)
_cache: dict[int, FinishedSweep] = {}


@dataclass(frozen=True)
class FinishedSweep:
    folder: Path
    tracking_uri: str  # absolute sqlite:////... URI, usable from any working directory
    parent_run_id: str
    trial_run_ids: tuple[str, ...]
    stdout: str  # what the sweep printed: the summary
    stderr: str  # the progress bars

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)


def finished_sweep(tmp_path_factory) -> FinishedSweep:
    """Run `python -m pipeline.sweep` (iris, FAST, 6 trials, some pruned) once per session."""
    key = id(tmp_path_factory)
    if key not in _cache:
        folder = tmp_path_factory.mktemp("shared-sweep")
        result = run_cli(SWEEP_ARGS, folder)
        assert result.returncode == 0, result.stderr[-3000:]
        uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("mlp-sweep")
        runs = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`mlp_sweep.study` = '{STUDY}'"
        )
        parent = next(r for r in runs if r.data.tags["mlp_sweep.role"] == "study")
        trials = [r.info.run_id for r in runs if r.data.tags["mlp_sweep.role"] == "trial"]
        _cache[key] = FinishedSweep(
            folder, uri, parent.info.run_id, tuple(trials), result.stdout, result.stderr
        )
    return _cache[key]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(tracking_uri: str) -> dict[str, str]:
    """The venv's bin first on PATH: `mlflow models serve --env-manager local` execs uvicorn."""
    return {
        **os.environ,
        "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
        "MLFLOW_TRACKING_URI": tracking_uri,
    }


@contextmanager
def running_server(
    command: list[str], ready_url: str, env: dict, cwd: Path, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """Start ``command``, wait (bounded) until ``ready_url`` answers 200, stop it afterwards."""
    log_file = cwd / f"server-{free_port()}.log"
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"{command[:3]} exited with {process.returncode}:\n"
                    + log_file.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{ready_url} not ready after {timeout} s:\n" + log_file.read_text()[-3000:]
                )
            time.sleep(0.5)
        yield process
    finally:
        # The server forks workers: stop its whole session (only the group we started).
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


@contextmanager
def mlflow_server(sweep: FinishedSweep) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 over the sweep's store (what `mlflow ui` serves); yields its
    base URL."""
    store = sweep.folder / "mlruns"
    port = free_port()
    command = [
        f"{VENV_BIN}/mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--default-artifact-root", str(store / "artifacts"),
        "-h", "127.0.0.1", "-p", str(port), "--workers", "1",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running_server(command, f"{base}/health", server_env(sweep.tracking_uri), sweep.folder):
        yield base


def http_json(url: str, body: dict | None = None) -> dict:
    """GET (or POST ``body`` as JSON) and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())

"""``study.storage=grpc://HOST:PORT``: Optuna's gRPC storage proxy (python -m
pipeline.storage_proxy), here in front of an SQLite file; the PostgreSQL runs with many workers
are in tests/services/test_scale.py."""

from __future__ import annotations

import socket
import subprocess
import sys

import optuna
import pytest

from pipeline.config.checks import grpc_address
from pipeline.errors import UserInputError
from pipeline.search.budget import Reservations
from pipeline.search.storage import open_grpc_proxy, open_storage
from tests.helpers import compose_config

pytest.importorskip("grpc", reason="grpcio is not installed (pip install -e '.[dev]')")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("location", ["grpc://host", "grpc://host:port", "grpc://:13000"])
def test_a_proxy_address_without_host_and_port_is_refused_naming_the_key(location):
    from pipeline.config.checks import validate_config

    assert grpc_address(location) is None
    with pytest.raises(UserInputError, match=r"^study.storage=grpc://.*: give grpc://HOST:PORT"):
        validate_config(compose_config([f"study.storage={location}"]))


def test_no_proxy_answering_is_one_line_naming_the_key():
    with pytest.raises(UserInputError, match="^study.storage=grpc://127.0.0.1:.*no storage proxy"):
        open_grpc_proxy(f"grpc://127.0.0.1:{free_port()}", timeout=1)


def test_the_proxy_serves_a_study_whose_reserved_trials_make_exactly_the_budget(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.storage_proxy", f"sqlite:///{tmp_path}/optuna.db"]
        + ["--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        storage = open_storage(f"grpc://127.0.0.1:{port}", heartbeat_interval=10)
        study = optuna.create_study(storage=storage, study_name="proxied", direction="maximize")
        # Two workers' views of the study through the proxy, taking reserved trials in turn.
        other = optuna.load_study(study_name="proxied", storage=storage)
        leader = Reservations(study, 5, lead=True, ahead=2)
        follower = Reservations(other, 5, lead=False, ahead=2, wait_seconds=0)
        leader.reserve()
        takers = [leader, follower]
        taken = 0
        while (trial := takers[taken % 2].take()) is not None:
            trial.suggest_float("x", 0, 1)
            trial.study.tell(trial, 0.5)
            taken += 1
        assert taken == 5
        states = [t.state for t in study.get_trials()]
        assert states == [optuna.trial.TrialState.COMPLETE] * 5
    finally:
        server.terminate()
        server.wait(timeout=30)

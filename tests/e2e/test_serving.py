"""The registered champion answers the real `mlflow models serve` like the in-process model."""

from __future__ import annotations

import json
import urllib.error

import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.e2e.shared_sweep import (
    STUDY,
    VENV_BIN,
    finished_sweep,
    free_port,
    http_json,
    running_server,
    server_env,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return finished_sweep(tmp_path_factory)


def test_served_champion_predicts_like_in_process(sweep):
    X, y = load_iris(return_X_y=True)
    rows = X[::7]  # 22 rows of every class
    mlflow.set_tracking_uri(sweep.tracking_uri)
    expected = mlflow.pyfunc.load_model(f"models:/{STUDY}@champion").predict(rows)
    assert np.mean(expected == y[::7]) > 0.8  # a model worth serving

    port = free_port()
    command = [
        f"{VENV_BIN}/mlflow", "models", "serve", "-m", f"models:/{STUDY}@champion",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running_server(command, f"{base}/ping", server_env(sweep.tracking_uri), sweep.folder):
        answer = http_json(f"{base}/invocations", {"inputs": rows.tolist()})
        narrow = error_reply(f"{base}/invocations", {"inputs": rows[:, :3].tolist()})
        columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "x"]
        frame = {"dataframe_split": {"columns": columns, "data": rows[:2].tolist()}}
        unnamed = error_reply(f"{base}/invocations", frame)
    served = np.asarray(answer["predictions"])
    assert served.shape == expected.shape
    assert served.tolist() == expected.tolist()
    # A reply to input the model cannot read says why first, with no stack trace behind it.
    assert narrow["message"].startswith("model input: expected rows of 4 features")
    assert "got shape (22, 3)" in narrow["message"]
    assert unnamed["message"].startswith("model input: no column 'petal width (cm)'")
    for reply in (narrow, unnamed):
        assert reply["error_code"] == "BAD_REQUEST"
        assert "stack_trace" not in reply and "Traceback" not in json.dumps(reply)


def error_reply(url: str, body: dict) -> dict:
    """POST ``body``; the server must refuse it with 400 and a JSON reply, returned decoded."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_json(url, body)
    assert refused.value.code == 400
    return json.loads(refused.value.read())

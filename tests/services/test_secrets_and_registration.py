"""Against PostgreSQL and an MLflow server: two identical sweeps started together register one
champion, and no secret of their URLs leaks anywhere.

The study's PostgreSQL password is given as a query parameter (``?password=``), and the MLflow
server's URL carries a canary password in its user-info (the test server has no auth, so it
ignores it). Both are searched for in every byte printed, every file written under the folder,
and everything the server holds of the experiment: the experiment, its runs (params, tags,
artifact URIs), registered versions, logged models and every artifact's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

from tests.e2e.test_registration import assert_one_champion, start_together
from tests.helpers import run_cli
from tests.workers import (
    MLFLOW_URL,
    POSTGRES_URL,
    TINY,
    files_containing,
    load_study,
    needs_mlflow_server,
    needs_postgres,
    postgres_password,
    study_runs,
    unique_name,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, needs_postgres, needs_mlflow_server]

CANARY = "canary-5ecret-b7e2"


@dataclass
class Sweeps:
    folder: Path
    name: str
    storage: str  # with the password as a query parameter
    tracking: str  # with the canary as the password of its user-info
    outputs: list[tuple[int, str, str]]

    def secrets(self) -> list[str]:
        return [postgres_password(), CANARY]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Sweeps:
    folder = tmp_path_factory.mktemp("secrets")
    url = make_url(POSTGRES_URL)
    storage = (
        f"{url.drivername}://{url.username}@{url.host}:{url.port}/{url.database}"
        f"?password={postgres_password()}"
    )
    scheme, _, address = MLFLOW_URL.partition("://")
    tracking = f"{scheme}://canary-user:{CANARY}@{address}"
    name = unique_name("secrets")
    args = [
        f"study.name={name}",
        f"tracking.experiment={name}",
        "study.n_trials=3",
        *TINY,
        # Quoted: Hydra reads an unquoted "=" in a value as a syntax error.
        f"study.storage='{storage}'",
        f"tracking.uri='{tracking}'",
    ]
    return Sweeps(folder, name, storage, tracking, start_together(args, folder))


def test_two_identical_sweeps_together_register_one_champion(sweeps):
    study = load_study(sweeps.storage, sweeps.name)
    client = MlflowClient(tracking_uri=MLFLOW_URL)
    assert_one_champion(client, sweeps.name, study.best_trial.number, sweeps.outputs)


def test_no_secret_leaks_from_a_sweep_and_a_train(sweeps):
    client = MlflowClient(tracking_uri=MLFLOW_URL)
    _, children = study_runs(client, sweeps.name, sweeps.name)  # experiment named as the study
    trial_run = next(c for c in children if c.data.tags["optuna.trial_number"] == "0").info.run_id
    train = run_cli(
        ["-m", "pipeline.train", f"run_id={trial_run}", f"tracking.uri='{sweeps.tracking}'"],
        sweeps.folder,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "Traceback" not in train.stderr
    printed = [out + err for _, out, err in sweeps.outputs] + [train.stdout + train.stderr]
    held = tracked_text(client, sweeps.name, sweeps.folder / "downloaded")
    for secret in sweeps.secrets():
        assert all(secret not in text for text in printed)
        assert secret not in held
        assert files_containing(sweeps.folder, secret) == []
    assert "canary-user:***@" in printed[0]  # MLflow's own "View run" line, masked


def tracked_text(client: MlflowClient, experiment: str, folder: Path) -> str:
    """Everything the server holds of ``experiment`` as text; its artifacts are downloaded
    under ``folder`` (which the caller searches as files)."""
    found = client.get_experiment_by_name(experiment)
    texts = [repr(found)]
    for run in client.search_runs([found.experiment_id], max_results=1000):
        texts.append(repr(run.to_dictionary()))
        client.download_artifacts(run.info.run_id, "", str(folder / run.info.run_id))
    texts += map(repr, client.search_model_versions(f"name = '{experiment}'"))
    texts += map(repr, client.search_logged_models([found.experiment_id]))
    assert len(texts) > 5 and any(folder.rglob("config.yaml"))  # the search found something
    return "\n".join(texts)

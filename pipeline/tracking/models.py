"""MLflow models of the sweep: a fold ensemble saved as a models-from-code pyfunc, the champion
logged on the parent run and registered with the alias ``champion``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from pipeline.model import pyfunc
from pipeline.model.ensemble import FoldEnsemble
from pipeline.names import CHAMPION_ALIAS, CHAMPION_TRIAL_START_TAG, CHAMPION_TRIAL_TAG, STUDY_TAG
from pipeline.quiet import quiet_libraries

# MLflow stores this file with every model and runs it to load the model (no pickle).
PYFUNC_MODEL_FILE = Path(pyfunc.__file__)
MODEL_REQUIREMENTS = ["mlflow", "numpy", "pandas", "scikit-learn"]
# log_model attributes every metric the run already has at its step to the model (the UI's
# "Models" column). The parent run's metrics are the study's (step 0, or a worker's index):
# the champion is logged at a step none of them uses, and its own scores name it themselves.
CHAMPION_STEP = -1


def model_signature(ensemble: FoldEnsemble, X_example: np.ndarray) -> ModelSignature:
    """The outputs' schema only (labels, from ``X_example``'s predictions).

    An input schema would make MLflow convert the input before the model sees it: a tensor one
    reads a DataFrame's columns by position (so reordered columns predicted silently wrong), a
    column one refuses arrays. Without it the model takes both (pipeline.model.pyfunc): a
    DataFrame by column name, an array by position, each checked against the training columns.
    """
    return ModelSignature(outputs=infer_signature(X_example, ensemble.predict(X_example)).outputs)


def save_pyfunc(ensemble: FoldEnsemble, folder: Path, X_example: np.ndarray) -> Path:
    """Write an MLflow pyfunc model (models-from-code, ``.npz`` weights) under ``folder``."""
    weights = folder / "ensemble"
    ensemble.save(weights)
    path = folder / "model"
    quiet_libraries()
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(PYFUNC_MODEL_FILE),
        artifacts={"ensemble": str(weights)},
        pip_requirements=MODEL_REQUIREMENTS,
        signature=model_signature(ensemble, X_example),
    )
    return path


def log_champion(
    uri: str,
    parent_run_id: str,
    ensemble: FoldEnsemble,
    X_example: np.ndarray,
    registered_model: str,
    key: dict[str, str],
    scores: list[Metric],
) -> str:
    """Log the champion on the parent run, register it once per ``key`` (:func:`champion_key`:
    the study and its best trial) and point the alias ``champion`` at that version. ``scores``
    (its test and CV accuracy) are logged on the parent run as the champion's, and no other
    metric is.

    MLflow has no create-if-absent for model versions, so two sweeps of one study that end
    together (or a rerun after a kill between registering and setting the alias) would each add
    a version. Each version is therefore created with its key as tags, in the same request;
    after creating one, the sweep looks for every version with that key and keeps the lowest:
    the store numbers versions in the order it creates them, so every contender sees that one
    and agrees on it, and a contender whose own version is not the lowest deletes it. Works
    alike on every tracking backend.

    Returns the registered model version.
    """
    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=parent_run_id):
        weights = Path(tmp) / "ensemble"
        ensemble.save(weights)
        quiet_libraries()
        info = mlflow.pyfunc.log_model(
            name="champion",
            python_model=str(PYFUNC_MODEL_FILE),
            artifacts={"ensemble": str(weights)},
            pip_requirements=MODEL_REQUIREMENTS,
            signature=model_signature(ensemble, X_example),
            registered_model_name=registered_model,
            step=CHAMPION_STEP,
            # Also set on the version, in the request that creates it: a version is never
            # without its key, whenever the process dies.
            tags=key,
        )
    client = MlflowClient(tracking_uri=uri)
    mine = str(info.registered_model_version)
    kept = registered_champion(client, registered_model, key) or mine
    owner = info.model_id if kept == mine else None
    owned = [Metric(m.key, m.value, m.timestamp, m.step, model_id=owner) for m in scores]
    client.log_batch(parent_run_id, metrics=owned)
    if kept != mine:  # another sweep of this study registered the same champion first
        client.delete_model_version(registered_model, mine)
        client.delete_logged_model(info.model_id)
    client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, kept)
    return kept


def champion_key(study_name: str, best_trial: FrozenTrial) -> dict[str, str]:
    """The tags that identify a registered champion: its study and best trial.

    Not the parent run: two sweeps of one study started together may each open one. The
    trial's start time tells apart studies of one name in different storages.
    """
    return {
        STUDY_TAG: study_name,
        CHAMPION_TRIAL_TAG: str(best_trial.number),
        CHAMPION_TRIAL_START_TAG: str(best_trial.datetime_start),
    }


def registered_champion(
    client: MlflowClient, registered_model: str, key: dict[str, str]
) -> str | None:
    """The version registered with ``key`` (the lowest, if two sweeps registered it at once),
    with or without the alias; None if there is none."""
    # The trial's number and start in the filter; the names, which may hold any quote
    # character, compared here.
    numbers = (CHAMPION_TRIAL_TAG, CHAMPION_TRIAL_START_TAG)
    search = " and ".join(f"tags.`{tag}` = '{key[tag]}'" for tag in numbers)
    versions = [
        int(v.version)
        for v in client.search_model_versions(search)
        if v.name == registered_model and all(v.tags.get(t) == value for t, value in key.items())
    ]
    return str(min(versions)) if versions else None


def point_champion_alias(client: MlflowClient, registered_model: str, version: str) -> None:
    """Point the alias ``champion`` at ``version``, unless it already does."""
    try:
        current = client.get_model_version_by_alias(registered_model, CHAMPION_ALIAS).version
    except mlflow.exceptions.MlflowException:  # no alias yet (or a kill took it before it was set)
        current = None
    if str(current) != version:
        client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, version)

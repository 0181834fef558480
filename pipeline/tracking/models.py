"""MLflow models of the sweep: a fold ensemble saved as a models-from-code pyfunc, the champion
logged on the parent run and registered with the alias ``champion``."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient

from pipeline.model import pyfunc
from pipeline.model.ensemble import FoldEnsemble
from pipeline.names import CHAMPION_TRIAL_TAG

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
    with quiet_model_logging():
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(PYFUNC_MODEL_FILE),
            artifacts={"ensemble": str(weights)},
            pip_requirements=MODEL_REQUIREMENTS,
            signature=model_signature(ensemble, X_example),
        )
    return path


@contextmanager
def quiet_model_logging() -> Iterator[None]:
    """MLflow advises an input example; the signature given already says it all, and an input
    example would make MLflow load and run every trial's model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*An input example was not provided")
        yield


def log_champion(
    uri: str,
    parent_run_id: str,
    ensemble: FoldEnsemble,
    X_example: np.ndarray,
    registered_model: str,
    best_trial: int,
    scores: list[Metric],
) -> str:
    """Log the champion on the parent run, register it (tagged with ``best_trial``, the number
    of the trial it refits) and point the alias ``champion`` at it. ``scores`` (its test and CV
    accuracy) are logged on the parent run as the champion's, and no other metric is.

    Returns the registered model version.
    """
    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=parent_run_id):
        weights = Path(tmp) / "ensemble"
        ensemble.save(weights)
        with quiet_model_logging():
            info = mlflow.pyfunc.log_model(
                name="champion",
                python_model=str(PYFUNC_MODEL_FILE),
                artifacts={"ensemble": str(weights)},
                pip_requirements=MODEL_REQUIREMENTS,
                signature=model_signature(ensemble, X_example),
                registered_model_name=registered_model,
                step=CHAMPION_STEP,
            )
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri=uri)
    owned = [Metric(m.key, m.value, m.timestamp, m.step, model_id=info.model_id) for m in scores]
    client.log_batch(parent_run_id, metrics=owned)
    client.set_model_version_tag(registered_model, version, CHAMPION_TRIAL_TAG, str(best_trial))
    client.set_registered_model_alias(registered_model, "champion", version)
    return version


def registered_champion(
    client: MlflowClient, registered_model: str, parent_run_id: str, best_trial: int
) -> str | None:
    """The version the alias ``champion`` points at if it is this study's refit of ``best_trial``
    (logged on ``parent_run_id``); else None (none yet, another study's, an older best)."""
    try:
        version = client.get_model_version_by_alias(registered_model, "champion")
    except mlflow.exceptions.MlflowException:  # no such model or alias yet
        return None
    if version.run_id != parent_run_id or version.tags.get(CHAMPION_TRIAL_TAG) != str(best_trial):
        return None
    return str(version.version)

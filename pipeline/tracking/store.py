"""The tracking store and the experiment: opened (or created) once per process.

A new local SQLite store is copied from a migrated template (pipeline.tracking.template) instead
of letting MLflow run its migrations; a server or database store is only connected to.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import sqlalchemy
from mlflow.tracking import MlflowClient

from pipeline.errors import UserInputError
from pipeline.names import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, SQLITE_PREFIX
from pipeline.redaction import redact
from pipeline.tracking.template import provide_sqlite_store


def connect(uri: str, artifact_location: str, experiment: str) -> tuple[MlflowClient, str]:
    """Open the tracking store (creating a local SQLite file's folder) and the experiment."""
    if uri.startswith(SQLITE_PREFIX):
        Path(uri.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)
        provide_sqlite_store(uri)  # a migrated copy instead of MLflow's migrations
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            if EXPERIMENT_KIND_TAG not in found.tags:  # an experiment made by an older version
                client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return client, found.experiment_id
        location = artifact_location
        if uri.startswith(("http://", "https://")) and "://" not in (location or ""):
            # A tracking server keeps the artifacts (mlflow server --artifacts-destination); a
            # path would be a folder on whichever node created the experiment.
            location = ""
        if location and "://" not in location:
            folder = Path(location).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            location = folder.as_uri()
        return client, _create_experiment(client, experiment, location or None)
    # MLflow's own errors, and SQLAlchemy's that it lets through (a database that went away
    # since the check before the study, pipeline.config.stores): both mean "cannot use the store".
    except (mlflow.exceptions.MlflowException, sqlalchemy.exc.SQLAlchemyError) as error:
        reason = redact(str(error).splitlines()[0]) if str(error) else type(error).__name__
        raise UserInputError(
            f"tracking.uri={redact(uri)}: cannot use the store ({reason})"
        ) from None


def _create_experiment(client: MlflowClient, name: str, location: str | None) -> str:
    """Create the experiment; if another worker created it at the same instant, use theirs."""
    try:
        # The kind tag: a training experiment, which MLflow's UI shows runs of (pipeline.names).
        return client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except mlflow.exceptions.MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id

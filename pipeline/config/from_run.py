"""A trial's exact configuration, rebuilt from its MLflow run, and written as a Hydra config file.

Everything that decides a trial's fold scores is recorded: the hyperparameters as params of its
run, and the data set, folds, hold-out size, seed and fixed model settings in ``config.yaml``,
the study's on its parent run (a study's trials all share these settings; runs logged before
this kept a copy each) or a ``pipeline.train`` run's own. :func:`settings_from_run` reads them back in the shape of ``conf/train.yaml``, so
``python -m pipeline.train run_id=...`` and the ``best_params.yaml`` file a sweep leaves behind
both train the very same network.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.errors import UserInputError
from pipeline.names import (
    LEGACY_METRIC,
    LEGACY_MODEL,
    LEGACY_TASK,
    PARENT_RUN_TAG,
    fold_of_metric,
)

log = logging.getLogger(__name__)


BEST_CONFIG_NAME = "best_params"  # the file is best_params.yaml: --config-name best_params


def params_node(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's flat trial params (or their MLflow strings) -> the ``params`` node of train.yaml.

    ``hidden_units_<i>`` (one width per layer) become a list ``hidden_units: [w0, w1, ...]``.
    """
    layers = int(flat["hidden_layers"])
    if "hidden_units" in flat:
        units: int | list[int] = int(flat["hidden_units"])
    else:
        units = [int(flat[f"hidden_units_{i}"]) for i in range(layers)]
    return {
        "learning_rate": float(flat["learning_rate"]),
        "hidden_units": units,
        "hidden_layers": layers,
        "iterations": int(flat["iterations"]),
        "activation": str(flat["activation"]),
    }


def flat_params(node: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`params_node`: the names a sweep's trial and child run use."""
    units = node["hidden_units"]
    if isinstance(units, int):
        widths = {"hidden_units": units}
    else:
        widths = {f"hidden_units_{i}": int(w) for i, w in enumerate(units)}
    return {
        "learning_rate": float(node["learning_rate"]),
        "hidden_layers": int(node["hidden_layers"]),
        **widths,
        "iterations": int(node["iterations"]),
        "activation": str(node["activation"]),
    }


def recorded_config(client: MlflowClient, run: mlflow.entities.Run):
    """The ``config.yaml`` of ``run``, or of its parent run when it has none of its own."""
    own = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    parent = run.data.tags.get(PARENT_RUN_TAG)
    source = run.info.run_id if "config.yaml" in own or parent is None else parent
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(source, "config.yaml", tmp)
        return OmegaConf.create(Path(path).read_text())


def settings_from_run(client: MlflowClient, run_id: str) -> tuple[dict, dict[int, float]]:
    """The train-config settings of a logged trial (or train run) and its recorded fold scores.

    Returns ``({"dataset", "study": {"seed"}, "cv", "model", "params"}, {fold: score})``, the
    scores in the run's ``cv.metric``. A run logged before the task and the metric were settings
    classified and scored accuracy: its settings say so.
    """
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise UserInputError(
            f"run_id={run_id}: no such run in this tracking store (check tracking.uri)"
        ) from None
    try:
        recorded = recorded_config(client, run)
        params = params_node(run.data.params)
    except (OSError, KeyError, ValueError, mlflow.exceptions.MlflowException) as error:
        raise UserInputError(
            f"run_id={run_id}: not a trial run of mlp-sweep (no config.yaml or "
            f"hyperparameters: {str(error).splitlines()[0]})"
        ) from None
    dataset = OmegaConf.to_container(recorded.dataset, resolve=True)
    dataset["task"] = dataset.get("task") or LEGACY_TASK
    cv = OmegaConf.to_container(recorded.cv, resolve=True)
    cv["metric"] = cv.get("metric") or LEGACY_METRIC
    settings = {
        "dataset": dataset,
        "study": {"seed": int(recorded.study.seed)},
        "cv": cv,
        "model": {**LEGACY_MODEL, **OmegaConf.to_container(recorded.model, resolve=True)},
        "params": params,
    }
    scores = {}
    for key, value in run.data.metrics.items():
        fold = fold_of_metric(key, cv["metric"])
        if fold is not None:
            scores[fold] = float(value)
    return settings, dict(sorted(scores.items()))


def best_config_yaml(settings: Mapping[str, Any], header: str) -> str:
    """A Hydra config file that extends ``conf/train.yaml`` with ``settings``.

    ``header`` becomes the opening comment (what the file is, the command that uses it).
    """
    dataset = dict(settings["dataset"])
    name = dataset.pop("name")
    body = {key: value for key, value in settings.items() if key != "dataset"}
    defaults = {"defaults": ["train", {"override dataset": name}, "_self_"]}
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    dump = yaml.safe_dump
    return (
        comment
        + dump(defaults, sort_keys=False)
        + dump({"dataset": dataset}, sort_keys=False)
        + dump(body, sort_keys=False)
    )


def log_best_config(
    client: MlflowClient, parent_run_id: str, best_run_id: str, note: str
) -> str | None:
    """Write the best trial's settings as ``best_params.yaml`` on the parent run; returns it.

    A best run without its record (deleted, say) only costs the file: a warning, None.
    """
    try:
        settings, _ = settings_from_run(client, best_run_id)
    except UserInputError as error:
        log.warning("%s not written: %s", f"{BEST_CONFIG_NAME}.yaml", error)
        return None
    header = (
        f"{note}\n"
        f"Rebuilt from trial run {best_run_id}. Train and cross-validate it again\n"
        f"(MLFLOW_TRACKING_URI set to the sweep's tracking.uri for the download):\n"
        f"  mlflow artifacts download -r {parent_run_id} -a {BEST_CONFIG_NAME}.yaml -d best\n"
        f"  python -m pipeline.train --config-dir best --config-name {BEST_CONFIG_NAME}"
    )
    text = best_config_yaml(settings, header)
    client.log_text(parent_run_id, text, f"{BEST_CONFIG_NAME}.yaml")
    return text

"""A trained predictor as the sweep ships it: preprocessing + a core network, or several.

A trial's k fold models form a :class:`FoldEnsemble` (probabilities or predictions averaged),
so every trial leaves a usable model without an extra fit; the champion is a one-member
ensemble refitted on the whole training split. Everything is stored as ``.npz`` + JSON, never
pickle.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import core
from pipeline.model.metrics import CLASSIFICATION, REGRESSION
from pipeline.model.preprocessing import (
    NUMERIC,
    SAVED_FORMAT,
    Column,
    TablePreprocessor,
    standardisation,
)

__all__ = ["FittedNetwork", "FoldEnsemble", "ModelSpec", "ScaledNetwork", "standardisation"]


@dataclass(frozen=True)
class ModelSpec:
    """What a fold fits besides the network's settings: the task, the columns it reads (of the
    encoded matrix, pipeline.data.Dataset.X) and the metric it is scored with."""

    task: str
    columns: tuple[Column, ...]
    metric: str

    @classmethod
    def numeric(cls, n_features: int, metric: str = "accuracy") -> ModelSpec:
        """A classification of ``n_features`` numeric columns (``x0``, ``x1``, ...)."""
        columns = tuple(Column(f"x{i}", NUMERIC) for i in range(n_features))
        return cls(CLASSIFICATION, columns, metric)


@dataclass
class FittedNetwork:
    """The preprocessing fitted on the training rows only, then the network; for a regression,
    the target standardised with the training rows' mean and scale (a network's output starts
    near 0 with unit spread, whatever the target's units).

    target_mean, target_scale : floats; 0 and 1 for a classification
    """

    preprocessor: TablePreprocessor
    network: core.MLPClassifier | core.MLPRegressor
    target_mean: float = 0.0
    target_scale: float = 1.0

    @classmethod
    def fit(
        cls,
        spec: ModelSpec,
        network_kwargs: dict,
        X: np.ndarray,
        y: np.ndarray,
        seed: int,
        monitor: Callable[[FittedNetwork, int, float], None] | None = None,
    ):
        """Fit the preprocessing on ``X`` (n_samples, n_columns, encoded), then a network of
        ``network_kwargs`` seeded with ``seed`` on the transformed rows and ``y`` (n_samples,).

        ``monitor(model, epoch, loss)``, if given, is called after every epoch with the model as
        it stands (it may predict); whatever it raises stops the fit.
        """
        preprocessor = TablePreprocessor.fit(spec.columns, X)
        inputs = preprocessor.transform(X)
        if spec.task == REGRESSION:
            network = core.MLPRegressor(**network_kwargs, random_state=seed)
            mean, scale = standardisation(y.reshape(-1, 1))
            model = cls(preprocessor, network, float(mean[0]), float(scale[0]))
            targets = (y - mean[0]) / scale[0]
        else:
            network = core.MLPClassifier(**network_kwargs, random_state=seed)
            model, targets = cls(preprocessor, network), y
        if monitor is not None:
            network.set_params(
                callback=lambda epoch, loss: monitor(model, epoch, loss), callback_every=1
            )
        network.fit(inputs, targets)
        network.set_params(callback=None)  # a fitted model holds no closure (it is pickled)
        return model

    @property
    def task(self) -> str:
        return REGRESSION if isinstance(self.network, core.MLPRegressor) else CLASSIFICATION

    @property
    def classes_(self) -> np.ndarray | None:
        """The class labels of a classifier, (n_classes,); None for a regressor."""
        return getattr(self.network, "classes_", None)

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        """What the metrics score: class probabilities (n_samples, n_classes) in ``classes_``
        order, or predicted values (n_samples,), for X (n_samples, n_columns) encoded."""
        inputs = self.preprocessor.transform(X)
        if self.task == REGRESSION:
            return self.network.predict(inputs) * self.target_scale + self.target_mean
        return self.network.predict_proba(inputs)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of shape (n_samples, n_classes), columns ordered as ``classes_``."""
        return self.predict_output(X)


ScaledNetwork = FittedNetwork  # the name models logged by mlp-sweep 0.1 know


class FoldEnsemble:
    """Members of one task (and, for a classification, the same classes): predicts the mean of
    their outputs, then the most probable class or the mean value.

    Every member reads the same columns; their names (``feature_names``) let the served model
    (pipeline.model.pyfunc) read a DataFrame's columns by name. Only an ensemble loaded from a
    model saved without them (mlp-sweep 0.1's first models) has none: it reads by position.
    """

    def __init__(self, members: list[FittedNetwork], feature_names: tuple[str, ...] | None = None):
        if not members:
            raise ValueError("members: an ensemble needs at least one member")
        self.members = members
        self.task = members[0].task
        self.classes_ = members[0].classes_
        self.columns = members[0].preprocessor.columns
        names = feature_names if feature_names is not None else [c.name for c in self.columns]
        self.feature_names = tuple(map(str, names))

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def predict_output(self, X) -> np.ndarray:
        """X : array-like (n_samples, n_columns), encoded -> the members' mean output:
        (n_samples, n_classes) probabilities, or (n_samples,) values."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_columns:
            raise ValueError(f"X: expected shape (n_samples, {self.n_columns}), got {X.shape}")
        return np.mean([m.predict_output(X) for m in self.members], axis=0)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes) of a classification ensemble."""
        return self.predict_output(X)

    def predict(self, X) -> np.ndarray:
        """Original labels (ints stay ints, strings stay strings) or values, (n_samples,)."""
        output = self.predict_output(X)
        if self.task == REGRESSION:
            return output
        return self.classes_[np.argmax(output, axis=1)]

    def save(self, directory: Path) -> None:
        """Write ``member_<i>.npz`` (core format), ``preprocessor_<i>.npz`` and
        ``ensemble.json`` (the members' preprocessing manifests and target scales)."""
        directory.mkdir(parents=True, exist_ok=True)
        members = []
        for index, member in enumerate(self.members):
            core.save_model(member.network, directory / f"member_{index}.npz")
            manifest, arrays = member.preprocessor.to_saved()
            np.savez(directory / f"preprocessor_{index}.npz", **arrays)
            members.append(
                {
                    "preprocessor": manifest,
                    "target_mean": member.target_mean,
                    "target_scale": member.target_scale,
                }
            )
        content = {
            "members": len(self.members),
            "feature_names": list(self.feature_names),
            "member_settings": members,
        }
        (directory / "ensemble.json").write_text(json.dumps(content))

    @classmethod
    def load(cls, directory: Path) -> FoldEnsemble:
        """Read what :meth:`save` wrote (or an ensemble of mlp-sweep 0.1: a scaler per member),
        without pickle.

        A missing, truncated or tampered file raises ``core.ModelFileError`` naming the file
        (never an error from deep inside NumPy or a model that predicts nonsense).
        """
        directory = Path(directory)
        manifest = directory / "ensemble.json"
        try:
            content = json.loads(manifest.read_text())
            count = content["members"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise core.ModelFileError(
                f"{manifest}: not a readable model manifest ({error})"
            ) from None
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise core.ModelFileError(f"{manifest}: members must be an integer >= 1, got {count!r}")
        settings = content.get("member_settings")
        if settings is not None and (not isinstance(settings, list) or len(settings) != count):
            raise core.ModelFileError(f"{manifest}: member_settings must list {count} members")
        names = content.get("feature_names")  # absent in models saved before they were kept
        members = []
        for index in range(count):
            network = core.load_model(directory / f"member_{index}.npz")
            if settings is None:  # mlp-sweep 0.1: numeric columns, a scaler per member
                member = _load_scaled_member(directory, index, network, names)
            else:
                member = _load_member(directory, index, network, settings[index], manifest)
            if members and member.task != members[0].task:
                raise core.ModelFileError(f"{directory}: member {index} is of another task")
            if members and (
                member.task == CLASSIFICATION
                and not np.array_equal(network.classes_, members[0].classes_)
            ):
                raise core.ModelFileError(f"{directory}: member {index} has other classes")
            members.append(member)
        n_columns = len(members[0].preprocessor.columns)
        if names is not None and (
            not isinstance(names, list)
            or len(names) != n_columns
            or not all(isinstance(n, str) for n in names)
        ):
            raise core.ModelFileError(
                f"{manifest}: feature_names must be {n_columns} strings, got {names!r}"
            )
        ensemble = cls(members, names)
        if names is None:
            ensemble.feature_names = None  # saved without them: DataFrames are read by position
        return ensemble


def _load_member(directory: Path, index: int, network, settings, manifest: Path) -> FittedNetwork:
    """A member as :meth:`FoldEnsemble.save` writes it; ModelFileError if anything is off."""
    path = directory / f"preprocessor_{index}.npz"
    if not isinstance(settings, dict) or "preprocessor" not in settings:
        raise core.ModelFileError(f"{manifest}: member {index} has no preprocessing settings")
    preprocessor = _read_preprocessor(path, settings["preprocessor"], _read_arrays(path))
    if preprocessor.n_outputs != network.n_features_in_:
        raise core.ModelFileError(
            f"{path}: gives {preprocessor.n_outputs} inputs, member {index} takes "
            f"{network.n_features_in_}"
        )
    mean, scale = settings.get("target_mean", 0.0), settings.get("target_scale", 1.0)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (mean, scale)) or (
        scale <= 0
    ):
        raise core.ModelFileError(
            f"{manifest}: member {index} needs a finite target_mean and a target_scale > 0"
        )
    return FittedNetwork(preprocessor, network, float(mean), float(scale))


def _load_scaled_member(directory: Path, index: int, network, names) -> FittedNetwork:
    """A member of mlp-sweep 0.1: its numeric columns' scaler (mean and scale, no missing
    values then), then the network; checked as a numeric preprocessing file is."""
    path = directory / f"scaler_{index}.npz"
    arrays = _read_arrays(path)
    n_features = network.n_features_in_
    if not isinstance(names, list) or len(names) != n_features:
        names = [f"x{i}" for i in range(n_features)]  # checked by the caller when given
    described = {
        "format": SAVED_FORMAT,
        "columns": [{"name": str(name), "kind": NUMERIC} for name in names],
    }
    if "mean" in arrays:
        arrays["median"] = arrays["mean"]
    return FittedNetwork(_read_preprocessor(path, described, arrays), network)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, without pickle; else ModelFileError."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except FileNotFoundError:
        raise core.ModelFileError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise core.ModelFileError(f"{path}: damaged file ({error})") from None


def _read_preprocessor(path: Path, described, arrays) -> TablePreprocessor:
    try:
        return TablePreprocessor.from_saved(described, arrays)
    except core.ModelFileError as error:
        raise core.ModelFileError(f"{path}: {error}") from None

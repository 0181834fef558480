"""A trained predictor as the sweep ships it: standardisation + a core network, or several.

A trial's k fold models form a :class:`FoldEnsemble` (probabilities averaged), so every trial
leaves a usable model without an extra fit; the champion is a one-member ensemble refitted on
the whole training split. Everything is stored as ``.npz`` + JSON, never pickle.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import core
from pipeline.model.preprocessing import standardisation  # still importable from here


@dataclass
class ScaledNetwork:
    """Standardisation fitted on the training rows only, then the network.

    mean, scale : ndarray of shape (n_features,)
    """

    mean: np.ndarray
    scale: np.ndarray
    network: core.MLPClassifier

    @classmethod
    def fit(cls, network: core.MLPClassifier, X: np.ndarray, y: np.ndarray) -> ScaledNetwork:
        """Fit the scaler on ``X`` (n_samples, n_features), then the network on the scaled rows."""
        mean, scale = standardisation(X)
        network.fit((X - mean) / scale, y)
        return cls(mean, scale, network)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of shape (n_samples, n_classes), columns ordered as ``classes_``."""
        return self.network.predict_proba((X - self.mean) / self.scale)

    @property
    def classes_(self) -> np.ndarray:
        return self.network.classes_


class FoldEnsemble:
    """Members with the same classes; predicts the argmax of their mean probabilities.

    ``feature_names``, when known, name the input columns in training order: the served model
    (pipeline.model.pyfunc) puts a DataFrame's columns in that order before predicting.
    """

    def __init__(self, members: list[ScaledNetwork], feature_names: tuple[str, ...] | None = None):
        if not members:
            raise ValueError("members: an ensemble needs at least one member")
        self.members = members
        self.classes_ = members[0].classes_
        self.feature_names = None if feature_names is None else tuple(map(str, feature_names))

    def predict_proba(self, X) -> np.ndarray:
        """X : array-like of shape (n_samples, n_features) -> (n_samples, n_classes)."""
        X = np.asarray(X, dtype=np.float64)
        expected = self.members[0].mean.shape[0]
        if X.ndim != 2 or X.shape[1] != expected:
            raise ValueError(f"X: expected shape (n_samples, {expected}), got {X.shape}")
        return np.mean([m.predict_proba(X) for m in self.members], axis=0)

    def predict(self, X) -> np.ndarray:
        """Original labels (ints stay ints, strings stay strings), shape (n_samples,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def save(self, directory: Path) -> None:
        """Write ``member_<i>.npz`` (core format), ``scaler_<i>.npz`` and ``ensemble.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        for index, member in enumerate(self.members):
            core.save_model(member.network, directory / f"member_{index}.npz")
            np.savez(directory / f"scaler_{index}.npz", mean=member.mean, scale=member.scale)
        manifest = {"members": len(self.members)}
        if self.feature_names is not None:
            manifest["feature_names"] = list(self.feature_names)
        (directory / "ensemble.json").write_text(json.dumps(manifest))

    @classmethod
    def load(cls, directory: Path) -> FoldEnsemble:
        """Read what :meth:`save` wrote, without pickle.

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
        members = []
        for index in range(count):
            network = core.load_model(directory / f"member_{index}.npz")
            scaler_file = directory / f"scaler_{index}.npz"
            mean, scale = _load_scaler(scaler_file, network.n_features_in_)
            if members and not np.array_equal(network.classes_, members[0].classes_):
                raise core.ModelFileError(f"{directory}: member {index} has other classes")
            members.append(ScaledNetwork(mean, scale, network))
        names = content.get("feature_names")  # absent in models saved before they were kept
        n_features = members[0].mean.shape[0]
        if names is not None and (
            not isinstance(names, list)
            or len(names) != n_features
            or not all(isinstance(n, str) for n in names)
        ):
            raise core.ModelFileError(
                f"{manifest}: feature_names must be {n_features} strings, got {names!r}"
            )
        return cls(members, names)


def _load_scaler(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """mean and scale, each of shape (n_features,), finite, scale > 0; else ModelFileError."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            mean, scale = arrays["mean"], arrays["scale"]
    except FileNotFoundError:
        raise core.ModelFileError(f"{path}: no such scaler file") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise core.ModelFileError(f"{path}: damaged scaler file ({error})") from None
    for name, array in (("mean", mean), ("scale", scale)):
        if array.shape != (n_features,) or array.dtype.kind != "f":
            raise core.ModelFileError(
                f"{path}: {name} has shape {array.shape} and dtype {array.dtype}, expected "
                f"({n_features},) floats"
            )
        if not np.isfinite(array).all():
            raise core.ModelFileError(f"{path}: {name} contains NaN or infinity")
    if (scale <= 0).any():
        raise core.ModelFileError(f"{path}: scale must be > 0")
    return mean, scale

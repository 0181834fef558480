"""Save and load fitted estimators as one ``.npz`` file, without pickle.

Layout of the archive:

- ``metadata``: uint8 bytes of a UTF-8 JSON object (format version, estimator class,
  constructor parameters, fitted scalars, the dtype of the class labels);
- ``coef_0 ... coef_{L-1}`` of shape (n_in, n_out) and ``intercept_0 ...`` of shape (n_out,);
- ``loss_curve`` of shape (n_iter,);
- ``classes`` (classifier only): a fixed-width str, int, float or bool array, never objects.

Loading uses ``np.load(..., allow_pickle=False)`` and checks every key, shape and value before
building the estimator, so a damaged or hostile file raises :class:`ModelFileError` naming it.
"""

import json
import zipfile
from itertools import pairwise

import numpy as np

from core import validation
from core.errors import ModelFileError
from core.estimators import LOSS_OF_OUTPUT, PARAMETER_NAMES, MLPClassifier, MLPRegressor

FORMAT_VERSION = 1
ESTIMATORS = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}
# Constructor parameters that cannot be written as JSON; reset to None when loading.
UNSAVED_PARAMETERS = ("callback", "random_state")
# Parameters added after format 1 was fixed, with the value that reproduces a model saved
# without them (which trained every iteration).
LATER_PARAMETERS = {"n_iter_no_change": None, "tol": 1e-4}


def save_model(estimator, path):
    """Write a fitted MLPClassifier/MLPRegressor to ``path``.

    path : str, os.PathLike or a binary file object; written exactly there (no suffix added).
    """
    kind = type(estimator).__name__
    if kind not in ESTIMATORS or not hasattr(estimator, "coefs_"):
        raise ValueError(f"estimator must be a fitted MLPClassifier or MLPRegressor, got {kind}")
    params = estimator.get_params()
    for name in UNSAVED_PARAMETERS:
        params[name] = None
    random_state = estimator.random_state
    if isinstance(random_state, int):
        params["random_state"] = random_state
    params["hidden_layer_sizes"] = list(validation.hidden_layer_sizes(params["hidden_layer_sizes"]))
    params["dtype"] = validation.dtype_name(params["dtype"])  # JSON holds the name, not the type
    metadata = {
        "format_version": FORMAT_VERSION,
        "estimator": kind,
        "params": params,
        "n_features_in": int(estimator.n_features_in_),
        "n_outputs": int(estimator.n_outputs_),
        "out_activation": estimator.out_activation_,
        "n_layers": len(estimator.coefs_),
        "n_iter": int(estimator.n_iter_),
    }
    arrays = {"loss_curve": np.asarray(estimator.loss_curve_, dtype=np.float64)}
    for i, (W, b) in enumerate(zip(estimator.coefs_, estimator.intercepts_, strict=True)):
        arrays[f"coef_{i}"], arrays[f"intercept_{i}"] = W, b
    if kind == "MLPClassifier":
        classes = np.asarray(estimator.classes_)
        if classes.dtype.kind not in "biufU":
            classes = classes.astype(str)  # objects would need pickle
        arrays["classes"] = classes
    else:
        metadata["y_ndim"] = int(estimator._y_ndim)
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    # Through an open file: np.savez would append ".npz" to a name without it.
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def load_model(path):
    """Read an estimator written by :func:`save_model`; it predicts exactly as the saved one.

    Raises
    ------
    ModelFileError
        If the file is missing, not an ``.npz`` archive, truncated or inconsistent.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError as error:
        raise ModelFileError(f"{path}: no such model file") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ModelFileError(f"{path}: not a readable .npz model file ({error})") from error
    try:
        return _build(arrays)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        detail = f"missing entry {error}" if isinstance(error, KeyError) else str(error)
        raise ModelFileError(f"{path}: invalid model file: {detail}") from error


def _build(arrays):
    raw = arrays["metadata"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError("metadata must be a 1-d uint8 array of JSON")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"metadata is not UTF-8 JSON ({error})") from error
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format_version, expected {FORMAT_VERSION}")
    estimator = ESTIMATORS[metadata["estimator"]]()
    params = metadata["params"]
    if isinstance(params, dict):
        params = {**LATER_PARAMETERS, **params}
    if not isinstance(params, dict) or set(params) != set(PARAMETER_NAMES):
        raise ValueError("params do not match the estimator's constructor")
    estimator.set_params(**params)
    settings = validation.training_settings(estimator.get_params())  # rejects tampered values
    estimator.hidden_layer_sizes = settings["hidden_layer_sizes"]

    n_layers = int(metadata["n_layers"])
    widths = (int(metadata["n_features_in"]), *settings["hidden_layer_sizes"])
    widths += (int(metadata["n_outputs"]),)
    if n_layers != len(widths) - 1:
        raise ValueError(f"n_layers={n_layers} does not match hidden_layer_sizes")
    coefs, intercepts = [], []
    for i, (n_in, n_out) in enumerate(pairwise(widths)):
        W, b = arrays[f"coef_{i}"], arrays[f"intercept_{i}"]
        for name, array, shape in (
            (f"coef_{i}", W, (n_in, n_out)),
            (f"intercept_{i}", b, (n_out,)),
        ):
            if array.shape != shape or array.dtype != settings["dtype"]:
                raise ValueError(
                    f"{name} has shape {array.shape} and dtype {array.dtype}, expected "
                    f"{shape} and {settings['dtype']}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{name} contains NaN or infinity")
        coefs.append(W)
        intercepts.append(b)
    output = metadata["out_activation"]
    if output not in LOSS_OF_OUTPUT:
        raise ValueError(f"out_activation={output!r} is not one of: {', '.join(LOSS_OF_OUTPUT)}")

    loss_curve = arrays["loss_curve"]
    if loss_curve.ndim != 1 or loss_curve.dtype.kind != "f":
        raise ValueError("loss_curve must be a 1-d float array")
    estimator.coefs_, estimator.intercepts_ = coefs, intercepts
    estimator.n_features_in_ = widths[0]
    estimator.n_outputs_ = widths[-1]
    estimator.n_layers_ = len(widths)
    estimator.out_activation_ = output
    estimator.loss_curve_ = [float(v) for v in loss_curve]
    estimator.loss_ = estimator.loss_curve_[-1] if estimator.loss_curve_ else None
    estimator.n_iter_ = int(metadata["n_iter"])
    if isinstance(estimator, MLPClassifier):
        _restore_classes(estimator, arrays["classes"], output, widths[-1])
    else:
        if output != "identity" or metadata["y_ndim"] not in (1, 2):
            raise ValueError("a regressor needs out_activation='identity' and y_ndim 1 or 2")
        estimator._y_ndim = metadata["y_ndim"]
    return estimator


def _restore_classes(estimator, classes, output, n_outputs):
    if classes.ndim != 1 or classes.dtype.kind not in "biufU":
        raise ValueError("classes must be a 1-d array of str, int, float or bool labels")
    expected = {"logistic": 2, "softmax": n_outputs}.get(output)
    if expected is None or classes.size != expected or (output == "softmax" and expected < 3):
        raise ValueError(f"{classes.size} classes do not fit out_activation={output!r}")
    if np.unique(classes).size != classes.size:
        raise ValueError("classes are not distinct")
    estimator.classes_ = classes

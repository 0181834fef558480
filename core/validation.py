"""Checks of hyperparameters and data, run once when ``fit``/``predict`` is entered.

Every error is a ``ValueError`` (``TypeError`` for sparse input, like scikit-learn) whose message
names the argument and what is allowed, so a bad configuration fails before any training.
"""

import math
import numbers
import warnings

import numpy as np

from core.activations import ACTIVATIONS
from core.errors import data_conversion_warning
from core.initialisation import INITIALISERS
from core.solvers import FULL_BATCH_SOLVERS, SOLVERS

DTYPES = ("float32", "float64")


def dtype_name(value):
    """The name of a dtype given as "float32", np.float32 or np.dtype("float32"); else ``value``.

    NumPy's own spellings are accepted as users of NumPy write them; the name is what the
    checks compare and what a saved model's JSON metadata holds.
    """
    return np.dtype(value).name if isinstance(value, (type, np.dtype)) else value


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of: {', '.join(sorted(allowed))}")
    return value


def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _real(name, value, *, positive):
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} must be a finite number {bound}")
    return float(value)


def hidden_layer_sizes(value):
    """An int or a sequence of ints >= 1 → tuple of int (an empty tuple: no hidden layer)."""
    sizes = (value,) if isinstance(value, numbers.Integral) else value
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if sizes is None or any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes
    ):
        raise ValueError(
            f"hidden_layer_sizes={value!r} must be a sequence of integers >= 1, e.g. (100,) "
            "or (64, 64)"
        )
    return tuple(int(s) for s in sizes)


def random_generator(random_state):
    """None, an int seed, a numpy Generator or RandomState → a numpy ``Generator``."""
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    ):
        if random_state is not None and random_state < 0:
            raise ValueError(f"random_state={random_state!r} must be None or an integer >= 0")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    raise ValueError(
        f"random_state={random_state!r} must be None, an integer >= 0 or a numpy Generator"
    )


def training_settings(params):
    """Check the estimator's constructor parameters; return them normalised, as a dict."""
    solver = _choice("solver", params["solver"], SOLVERS)
    batch_size = params["batch_size"]
    if batch_size is not None:
        batch_size = _integer("batch_size", batch_size, 1)
        if solver in FULL_BATCH_SOLVERS:
            raise ValueError(
                f"batch_size={batch_size!r} must be None for solver={solver!r} (full-batch "
                "gradient descent); use solver='sgd' for mini-batches"
            )
    dtype = dtype_name(params["dtype"])
    callback = params["callback"]
    if callback is not None and not callable(callback):
        raise ValueError(f"callback={callback!r} must be None or a callable(iteration, loss)")
    n_iter_no_change = params["n_iter_no_change"]
    if n_iter_no_change is not None:
        n_iter_no_change = _integer("n_iter_no_change", n_iter_no_change, 1)
    return {
        "hidden_layer_sizes": hidden_layer_sizes(params["hidden_layer_sizes"]),
        "activation": _choice("activation", params["activation"], ACTIVATIONS),
        "learning_rate": _real("learning_rate", params["learning_rate"], positive=True),
        "iterations": _integer("iterations", params["iterations"], 1),
        "solver": solver,
        "batch_size": batch_size,
        "alpha": _real("alpha", params["alpha"], positive=False),
        "init": _choice("init", params["init"], INITIALISERS),
        "init_scale": _real("init_scale", params["init_scale"], positive=True),
        "rng": random_generator(params["random_state"]),
        "dtype": np.dtype(_choice("dtype", dtype, DTYPES)),
        "callback": callback,
        "callback_every": _integer("callback_every", params["callback_every"], 1),
        "n_iter_no_change": n_iter_no_change,
        "tol": _real("tol", params["tol"], positive=False),
    }


def _reject_sparse(value, name):
    # Duck-typed so that scipy need not be imported: scipy.sparse matrices and arrays.
    if type(value).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported, pass a dense array "
            f"({name}.toarray())"
        )


def _numeric_array(value, name):
    _reject_sparse(value, name)
    array = np.asarray(value)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}")
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except ValueError as error:  # e.g. a word in X
            raise ValueError(f"{name} must contain numbers only: {error}") from error
        except TypeError as error:  # e.g. a dict in an object array; keeps numpy's wording
            raise TypeError(f"{name} must contain numbers only: {error}") from error
    return array


def features(X, dtype, n_features=None, estimator_name="estimator"):
    """Check X and return it as a C-contiguous array of ``dtype``.

    X : array-like of shape (n_samples, n_features), finite numbers.
    n_features : int or None; when given (after fit), X must have that many columns.
    """
    if X is None:
        raise ValueError("X must be an array of shape (n_samples, n_features), got None")
    X = _numeric_array(X, "X")
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}. "
            "Reshape your data with X.reshape(-1, 1) for a single feature or "
            "X.reshape(1, -1) for a single sample"
        )
    if X.shape[0] < 1:
        raise ValueError(f"X has 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[1] < 1:
        raise ValueError(f"X has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but {estimator_name} is expecting {n_features} "
            "features as input"
        )
    # Checked after the cast: 1e39 is finite in float64 but infinite in float32.
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise ValueError(
            f"X contains NaN or infinity (or values too large for {np.dtype(dtype).name}); "
            "clean or impute the data first"
        )
    return X


def _target(y, n_samples):
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")
    y = _check_length(np.asarray(y), n_samples)
    if y.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: y has dtype {y.dtype}")
    return y


def _check_length(y, n_samples):
    if y.ndim == 0 or y.shape[0] != n_samples:
        length = 0 if y.ndim == 0 else y.shape[0]
        raise ValueError(f"X and y have inconsistent numbers of samples: {n_samples} != {length}")
    return y


def class_labels(y, n_samples):
    """Check classification targets.

    Returns ``(classes, y_class)``: the sorted distinct labels, shape (n_classes,), and each
    sample's index into them, shape (n_samples,) of intp.
    """
    _reject_sparse(y, "y")
    y = _target(y, n_samples)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            data_conversion_warning(
                "A column-vector y was passed when a 1d array was expected; it was raveled"
            ),
            stacklevel=3,
        )
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"y should be a 1d array of class labels, got shape {y.shape} (multi-label "
            "targets are not supported)"
        )
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity")
        if not np.array_equal(y, np.round(y)):
            raise ValueError(
                "Unknown label type: 'continuous' (y holds non-integer numbers); "
                "use MLPRegressor for regression"
            )
    try:
        classes, y_class = np.unique(y, return_inverse=True)
    except TypeError as error:
        raise ValueError(
            f"Unknown label type: y mixes labels of different types ({error})"
        ) from error
    if classes.dtype == object:
        # e.g. labels read by pandas: keep a plain str/int array so that it saves without pickle.
        inferred = np.array(classes.tolist())
        if inferred.dtype.kind in "biufU" and inferred.shape == classes.shape:
            classes = inferred
    if classes.size < 2:
        raise ValueError(
            f"y has only one class ({classes[0]!r}); a classifier needs at least 2 classes"
        )
    return classes, y_class.astype(np.intp, copy=False)


def regression_targets(y, n_samples, dtype):
    """Check regression targets.

    Returns ``(targets, ndim)``: y as shape (n_samples, n_outputs) of ``dtype``, and whether y
    was given as 1-d or 2-d (predictions are returned in the same shape).
    """
    _reject_sparse(y, "y")
    y = _numeric_array(_target(y, n_samples), "y")
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] < 1):
        raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_outputs), got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    return np.ascontiguousarray(y.reshape(n_samples, -1), dtype=dtype), y.ndim

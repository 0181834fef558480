"""Estimator API: scikit-learn conformance, parameters, input validation, import isolation."""

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import core

ROOT = Path(__file__).resolve().parents[2]
X_OK = np.random.default_rng(0).normal(size=(12, 3))
Y_OK = np.array([0, 1, 2] * 4)


def test_import_core_pulls_in_numpy_only():
    heavy = ["sklearn", "scipy", "optuna", "mlflow", "hydra", "omegaconf", "pandas", "joblib"]
    code = f"import sys, core\nprint(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_public_api():
    assert set(core.SOLVERS) == {"gd", "sgd", "momentum", "adam", "normalized"}
    assert set(core.INITIALISERS) == {"small", "xavier", "he"}
    assert set(core.ACTIVATIONS) == {"identity", "leaky_relu", "relu", "sigmoid", "tanh"}
    assert issubclass(core.ModelFileError, ValueError)
    assert issubclass(core.TrainingDivergedError, ArithmeticError)
    assert not issubclass(core.TrainingDivergedError, ValueError)
    assert core.MLPClassifier().get_params() == {
        "hidden_layer_sizes": (100,),
        "activation": "relu",
        "learning_rate": 0.01,
        "iterations": 200,
        "solver": "adam",
        "batch_size": None,
        "alpha": 0.0,
        "init": "xavier",
        "init_scale": 0.01,
        "random_state": None,
        "dtype": "float32",
        "callback": None,
        "callback_every": 1,
        "n_iter_no_change": None,
        "tol": 1e-4,
    }


@pytest.mark.parametrize("estimator", [core.MLPClassifier(), core.MLPRegressor()], ids=repr)
def test_scikit_learn_check_estimator(estimator):
    with warnings.catch_warnings():
        # We do not inherit from BaseEstimator on purpose: core must not import scikit-learn.
        warnings.filterwarnings("ignore", message=".*does not inherit from `sklearn.base")
        # The array-API checks are skipped unless SCIPY_ARRAY_API is set; core is NumPy-only.
        warnings.filterwarnings("ignore", message=".*SCIPY_ARRAY_API is not set")
        check_estimator(estimator)


def test_works_inside_scikit_learn_tools():
    X = np.random.default_rng(0).normal(size=(90, 4))
    y = (X[:, 0] > 0).astype(int)
    pipeline = make_pipeline(StandardScaler(), core.MLPClassifier((8,), random_state=0))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.mean() > 0.8
    copy = clone(core.MLPClassifier((8,), activation="tanh"))
    assert copy.get_params()["activation"] == "tanh"


def test_set_params_and_repr():
    model = core.MLPRegressor()
    assert model.set_params(learning_rate=0.5, hidden_layer_sizes=(3, 2)) is model
    assert repr(model) == "MLPRegressor(hidden_layer_sizes=(3, 2), learning_rate=0.5)"
    with pytest.raises(ValueError, match="Invalid parameter 'foo'"):
        model.set_params(foo=1)


def test_string_and_int_labels_keep_their_type():
    X = np.random.default_rng(0).normal(size=(30, 2))
    for y in (np.array(["cat", "dog", "emu"] * 10), np.array([10, 20, 30] * 10)):
        model = core.MLPClassifier((4,), iterations=5, random_state=0).fit(X, y)
        np.testing.assert_array_equal(model.classes_, np.unique(y))
        assert model.predict(X).dtype == y.dtype
        probabilities = model.predict_proba(X)
        assert probabilities.shape == (30, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_fitted_attributes_have_documented_shapes():
    model = core.MLPClassifier((5, 4), iterations=3, random_state=0).fit(X_OK, Y_OK)
    assert [W.shape for W in model.coefs_] == [(3, 5), (5, 4), (4, 3)]
    assert [b.shape for b in model.intercepts_] == [(5,), (4,), (3,)]
    assert model.n_features_in_ == 3 and model.n_iter_ == 3 and len(model.loss_curve_) == 3
    assert all(isinstance(loss, float) for loss in model.loss_curve_)
    regressor = core.MLPRegressor((5,), iterations=3).fit(X_OK, np.c_[Y_OK, -Y_OK])
    assert regressor.predict(X_OK).shape == (12, 2)
    pickle.loads(pickle.dumps(model)).predict(X_OK)


def test_unfitted_estimator_raises_not_fitted():
    with pytest.raises(core.NotFittedError, match="not fitted yet"):
        core.MLPClassifier().predict(X_OK)


BAD_PARAMETERS = [
    ("hidden_layer_sizes", (0,)),
    ("hidden_layer_sizes", (10, -1)),
    ("hidden_layer_sizes", "wide"),
    ("activation", "foo"),
    ("activation", None),
    ("solver", "lbfgs"),
    ("init", "zeros"),
    ("dtype", "float16"),
    ("learning_rate", 0),
    ("learning_rate", -0.1),
    ("learning_rate", float("nan")),
    ("iterations", 0),
    ("iterations", 2.5),
    ("batch_size", 0),
    ("alpha", -1.0),
    ("init_scale", 0.0),
    ("random_state", "seed"),
    ("callback", "print"),
    ("callback_every", 0),
]


@pytest.mark.parametrize("estimator_class", [core.MLPClassifier, core.MLPRegressor])
@pytest.mark.parametrize(("name", "value"), BAD_PARAMETERS)
def test_bad_parameters_raise_value_error_naming_them(estimator_class, name, value):
    model = estimator_class(**{name: value})
    with pytest.raises(ValueError, match=rf"^{name}="):
        model.fit(X_OK, Y_OK)
    assert not hasattr(model, "coefs_")


@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64")])
def test_dtype_may_be_a_name_a_numpy_type_or_a_numpy_dtype(dtype):
    model = core.MLPClassifier((4,), iterations=2, dtype=dtype).fit(X_OK, Y_OK)
    assert all(W.dtype == np.float64 for W in model.coefs_)


def test_an_unsupported_numpy_dtype_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"^dtype='float16' is not one of: float32, float64$"):
        core.MLPClassifier(dtype=np.dtype("float16")).fit(X_OK, Y_OK)


def test_unknown_choice_lists_the_allowed_values():
    with pytest.raises(ValueError) as caught:
        core.MLPClassifier(activation="foo").fit(X_OK, Y_OK)
    assert str(caught.value) == (
        "activation='foo' is not one of: identity, leaky_relu, relu, sigmoid, tanh"
    )
    with pytest.raises(ValueError, match="solver='x' is not one of: adam, gd, momentum, normal"):
        core.MLPClassifier(solver="x").fit(X_OK, Y_OK)


def test_batch_size_with_full_batch_gd_is_refused():
    with pytest.raises(ValueError, match="batch_size=32 must be None for solver='gd'"):
        core.MLPClassifier(solver="gd", batch_size=32).fit(X_OK, Y_OK)


def _with(value, row=0, col=0):
    X = X_OK.copy()
    X[row, col] = value
    return X


BAD_DATA = [
    ("X", _with(np.nan), Y_OK),
    ("X", _with(np.inf), Y_OK),
    ("X", _with(1e39), Y_OK),  # finite in float64, infinite in the default float32
    ("X", X_OK[:, 0], Y_OK),
    ("X", np.empty((0, 3)), []),
    ("X", [["a", "b", "c"]] * 12, Y_OK),
    ("samples", X_OK, Y_OK[:-1]),
    ("y", X_OK, None),
]


@pytest.mark.parametrize("estimator_class", [core.MLPClassifier, core.MLPRegressor])
@pytest.mark.parametrize(("name", "X", "y"), BAD_DATA)
def test_bad_data_raises_value_error_naming_the_argument(estimator_class, name, X, y):
    with pytest.raises(ValueError, match=name):
        estimator_class(iterations=1).fit(X, y)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.ones(12), "y has only one class"),
        (np.linspace(0, 1, 12), "Unknown label type: 'continuous'"),
        (np.c_[Y_OK, Y_OK], "y should be a 1d array"),
    ],
)
def test_bad_class_labels(y, message):
    with pytest.raises(ValueError, match=message):
        core.MLPClassifier(iterations=1).fit(X_OK, y)


def test_predict_checks_the_number_of_features():
    model = core.MLPClassifier((3,), iterations=1).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="X has 2 features, but MLPClassifier is expecting 3"):
        model.predict(X_OK[:, :2])

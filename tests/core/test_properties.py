"""Property-based tests of the core network (hypothesis): for any valid layer list, activation,
solver, batch size, init and dtype, a fit either gives outputs of the right shape, finite losses,
probabilities in [0, 1] summing to 1 and a save/load round trip that predicts exactly as before,
or stops with a TrainingDivergedError that names the iteration and the learning rate."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import core
from core.solvers import FULL_BATCH_SOLVERS

# Sane per solver: plain steps need larger rates than adam's normalised ones to move at all.
# Rarely a configuration still blows up at these rates (a chain of narrow identity layers under
# He init: DIVERGING below); the core must then say so, not return garbage.
SANE_RATES = {"gd": 0.05, "sgd": 0.02, "momentum": 0.01, "adam": 0.005, "normalized": 0.05}

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def problems(draw):
    """A small standardised classification problem and a network configuration for it."""
    n_samples = draw(st.integers(8, 40))
    n_features = draw(st.integers(1, 6))
    n_classes = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = np.arange(n_samples) % n_classes  # every class present
    rng.shuffle(y)
    solver = draw(st.sampled_from(sorted(core.SOLVERS)))
    params = {
        "hidden_layer_sizes": tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))),
        "activation": draw(st.sampled_from(sorted(core.ACTIVATIONS))),
        "solver": solver,
        "learning_rate": SANE_RATES[solver],
        "iterations": draw(st.integers(1, 15)),
        # gd is full-batch gradient descent by definition: it takes no batch size.
        "batch_size": None
        if solver in FULL_BATCH_SOLVERS
        else draw(st.one_of(st.none(), st.integers(1, n_samples + 5))),
        "alpha": draw(st.sampled_from([0.0, 1e-4, 0.1])),
        "init": draw(st.sampled_from(sorted(core.INITIALISERS))),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "random_state": seed,
    }
    labels = draw(st.sampled_from(["int", "str"]))
    if labels == "str":
        y = np.array(["cat", "dog", "eel", "fox"])[y]
    return X, y, params


DIVERGING = (
    np.array([[2.04091912], [-2.55566503], [0.41809885], [-0.56776961], [-0.45264929]]),
    np.array([1, 1, 2, 0, 0]),
    {
        "hidden_layer_sizes": (3, 1, 1),
        "activation": "identity",
        "solver": "gd",
        "learning_rate": 0.05,
        "iterations": 5,
        "batch_size": None,
        "alpha": 0.0,
        "init": "he",
        "dtype": "float32",
        "random_state": 3,
    },
)


def fit_or_diverge(X, y, params):
    """The fitted model, or None after checking that a divergence was reported properly."""
    try:
        return core.MLPClassifier(**params).fit(X, y)
    except core.TrainingDivergedError as error:
        event("diverged")
        assert 1 <= error.iteration <= params["iterations"]
        assert f"learning_rate={params['learning_rate']}" in str(error)
        assert len(error.loss_curve) == error.iteration - 1
        assert np.isfinite(error.loss_curve).all()
        return None


def test_the_diverging_example_diverges():
    # Keeps the example above meaningful: it must exercise the divergence branch.
    X, y, params = DIVERGING
    with pytest.raises(core.TrainingDivergedError, match="learning_rate=0.05"):
        core.MLPClassifier(**params).fit(X, y)


@PROPERTY_SETTINGS
@given(problems())
@example(DIVERGING)
def test_fit_gives_shapes_finite_losses_and_probabilities(problem):
    X, y, params = problem
    model = fit_or_diverge(X, y, params)
    if model is None:
        return
    classes = np.unique(y)
    assert len(model.loss_curve_) == params["iterations"]
    assert np.isfinite(model.loss_curve_).all()
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), len(classes))
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    predictions = model.predict(X)
    assert predictions.shape == (len(X),)
    assert set(predictions) <= set(classes)
    np.testing.assert_array_equal(model.classes_, classes)


@PROPERTY_SETTINGS
@given(problems())
def test_save_load_round_trip_predicts_exactly_as_before(problem):
    X, y, params = problem
    model = fit_or_diverge(X, y, params)
    if model is None:
        return
    buffer = io.BytesIO()
    core.save_model(model, buffer)
    buffer.seek(0)
    loaded = core.load_model(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params()["hidden_layer_sizes"] == params["hidden_layer_sizes"]
    assert loaded.loss_curve_ == model.loss_curve_

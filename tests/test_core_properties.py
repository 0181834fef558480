"""Property-based tests of the core network (hypothesis): for any valid layer list, activation,
solver, batch size, init and dtype, a fit gives outputs of the right shape, finite losses at a
sane learning rate, probabilities in [0, 1] summing to 1, and a save/load round trip that
predicts exactly as before."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core.solvers import FULL_BATCH_SOLVERS

# Sane per solver: plain steps need larger rates than adam's normalised ones to move at all,
# and none of these diverges on standardised data.
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


@PROPERTY_SETTINGS
@given(problems())
def test_fit_gives_shapes_finite_losses_and_probabilities(problem):
    X, y, params = problem
    model = core.MLPClassifier(**params).fit(X, y)
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
    model = core.MLPClassifier(**params).fit(X, y)
    buffer = io.BytesIO()
    core.save_model(model, buffer)
    buffer.seek(0)
    loaded = core.load_model(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params()["hidden_layer_sizes"] == params["hidden_layer_sizes"]
    assert loaded.loss_curve_ == model.loss_curve_

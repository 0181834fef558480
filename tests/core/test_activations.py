"""The activation tables and the derivative identities of the lecture notes."""

import numpy as np
import pytest

from core import ACTIVATIONS, DERIVATIVES
from core.activations import LEAKY_RELU_SLOPE

NAMES = ["identity", "leaky_relu", "relu", "sigmoid", "tanh"]
Z_VALUES = np.linspace(-6.0, 6.0, 241).reshape(-1, 1)  # includes z = 0 exactly


def forward(name, Z):
    return ACTIVATIONS[name](Z.copy(), np.empty_like(Z))


def derivative(name, Z):
    """g'(Z) from the table: the derivative applied to a delta of ones."""
    return DERIVATIVES[name](Z, forward(name, Z), np.ones_like(Z))


def test_tables_are_keyed_by_the_public_names():
    assert sorted(ACTIVATIONS) == NAMES
    assert sorted(DERIVATIVES) == NAMES


def test_sigmoid_values_and_notes_identity():
    sigma = forward("sigmoid", Z_VALUES)
    np.testing.assert_allclose(sigma, 1.0 / (1.0 + np.exp(-Z_VALUES)), rtol=1e-12)
    # The notes: σ'(x) = e^-x / (1 + e^-x)² = σ(x)(1 - σ(x)).
    direct = np.exp(-Z_VALUES) / (1.0 + np.exp(-Z_VALUES)) ** 2
    np.testing.assert_allclose(derivative("sigmoid", Z_VALUES), direct, rtol=1e-10)
    np.testing.assert_allclose(derivative("sigmoid", Z_VALUES), sigma * (1 - sigma), rtol=1e-12)


def test_tanh_derivative_is_one_minus_tanh_squared():
    # The notes: d tanh/dx = 4 / (e^x + e^-x)² = 1 - tanh²(x).
    direct = 4.0 / (np.exp(Z_VALUES) + np.exp(-Z_VALUES)) ** 2
    np.testing.assert_allclose(derivative("tanh", Z_VALUES), direct, rtol=1e-10)
    np.testing.assert_allclose(derivative("tanh", Z_VALUES), 1 - np.tanh(Z_VALUES) ** 2)


def test_relu_and_its_derivative_with_the_notes_convention_at_zero():
    Z = np.array([[-2.0, -1e-12, 0.0, 1e-12, 3.0]])
    np.testing.assert_array_equal(forward("relu", Z), [[0.0, 0.0, 0.0, 1e-12, 3.0]])
    # g'(z) = 0 if z < 0, 1 if z >= 0: so ReLU'(0) = 1.
    np.testing.assert_array_equal(derivative("relu", Z), [[0.0, 0.0, 1.0, 1.0, 1.0]])


def test_leaky_relu_uses_slope_001():
    Z = np.array([[-2.0, 0.0, 3.0]])
    assert LEAKY_RELU_SLOPE == 0.01
    np.testing.assert_allclose(forward("leaky_relu", Z), [[-0.02, 0.0, 3.0]])
    np.testing.assert_allclose(derivative("leaky_relu", Z), [[0.01, 1.0, 1.0]])


def test_identity_is_linear():
    np.testing.assert_array_equal(forward("identity", Z_VALUES), Z_VALUES)
    np.testing.assert_array_equal(derivative("identity", Z_VALUES), np.ones_like(Z_VALUES))


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_centred_difference(name):
    Z = np.array([[-3.0, -0.7, -0.1, 0.2, 0.9, 2.5]])
    h = 1e-6
    numeric = (forward(name, Z + h) - forward(name, Z - h)) / (2 * h)
    np.testing.assert_allclose(derivative(name, Z), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_forward_in_place_equals_out_of_place(name):
    Z = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    out_of_place = forward(name, Z)
    in_place = Z.copy()
    ACTIVATIONS[name](in_place, in_place)
    np.testing.assert_array_equal(in_place, out_of_place)
    assert out_of_place.dtype == np.float32


def test_sigmoid_does_not_overflow_for_large_negative_inputs():
    Z = np.array([[-1000.0, 1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(forward("sigmoid", Z), [[0.0, 1.0]])

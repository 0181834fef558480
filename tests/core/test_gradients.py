"""Backpropagation against centred finite differences, and one example worked by hand."""

import itertools

import numpy as np
import pytest

from core import ACTIVATIONS
from core.network import Network, pack, unpack, with_bias_row
from core.solvers import GradientDescent

LOSSES = ["cross_entropy", "binary_cross_entropy", "squared_error"]
N_OUTPUTS = {"cross_entropy": 3, "binary_cross_entropy": 1, "squared_error": 2}
HIDDEN = {1: (), 2: (4,), 3: (5, 3)}  # depth = number of weight layers


def make_problem(loss, depth, activation, seed=0):
    """A small network and a batch in the training layout (samples in columns)."""
    rng = np.random.default_rng(seed)
    n_samples, n_features = 7, 3
    n_outputs = N_OUTPUTS[loss]
    network = Network((n_features, *HIDDEN[depth], n_outputs), activation, loss, np.float64)
    network.params[:] = rng.normal(0.0, 0.7, network.params.size)
    X = rng.normal(size=(n_samples, n_features))
    Y, y_index = None, None
    if loss == "cross_entropy":
        classes = rng.integers(0, n_outputs, n_samples)
        y_index = classes * n_samples + np.arange(n_samples)
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (1, n_samples)).astype(np.float64)
    else:
        Y = rng.normal(size=(n_outputs, n_samples))
    return network, with_bias_row(X), Y, y_index


@pytest.mark.parametrize(
    ("activation", "loss", "depth", "alpha"),
    list(itertools.product(sorted(ACTIVATIONS), LOSSES, (1, 2, 3), (0.0, 0.3))),
)
def test_backprop_matches_centred_finite_differences(activation, loss, depth, alpha):
    network, X, Y, y_index = make_problem(loss, depth, activation)
    network.loss_and_gradients(X, Y, y_index, alpha)
    analytic = network.grads.copy()
    start = network.params.copy()
    h = 1e-5
    numeric = np.empty_like(start)
    for i in range(start.size):
        network.params[:] = start
        network.params[i] += h
        up = network.loss_and_gradients(X, Y, y_index, alpha)
        network.params[i] -= 2 * h
        down = network.loss_and_gradients(X, Y, y_index, alpha)
        numeric[i] = (up - down) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_pack_and_unpack_are_inverse_views():
    layer_sizes = (3, 4, 2)
    flat = np.arange(3 * 4 + 4 + 4 * 2 + 2, dtype=np.float64)
    coefs, intercepts = unpack(flat, layer_sizes)
    assert [W.shape for W in coefs] == [(3, 4), (4, 2)]
    assert [b.shape for b in intercepts] == [(4,), (2,)]
    np.testing.assert_array_equal(pack(coefs, intercepts), flat)
    coefs[1][0, 0] = -1.0  # views: writing through them changes the flat vector
    assert flat[16] == -1.0


def test_one_step_worked_by_hand():
    # 2 inputs -> 1 ReLU unit -> 1 linear output, squared error, one sample.
    network = Network((2, 1, 1), "relu", "squared_error", np.float64)
    network.coefs[0][:] = [[0.5], [-0.25]]
    network.intercepts[0][:] = [0.125]
    network.coefs[1][:] = [[2.0]]
    network.intercepts[1][:] = [0.25]
    X = with_bias_row(np.array([[1.0, 2.0]]))
    Y = np.array([[1.5]])

    loss = network.loss_and_gradients(X, Y)
    # forward: z1 = 0.5*1 + (-0.25)*2 + 0.125 = 0.125; a1 = relu(0.125) = 0.125
    #          z2 = 2.0*0.125 + 0.25 = 0.5
    # loss = (z2 - y)^2 / 2 = (0.5 - 1.5)^2 / 2 = 0.5
    assert loss == 0.5
    # backward: delta2 = z2 - y = -1.0
    #   dW2 = a1 * delta2 = 0.125 * -1 = -0.125;  db2 = -1.0
    #   delta1 = delta2 * W2 * relu'(z1) = -1 * 2 * 1 = -2.0
    #   dW1 = x^T delta1 = [[1 * -2], [2 * -2]] = [[-2], [-4]];  db1 = -2.0
    np.testing.assert_array_equal(network.coef_grads[1], [[-0.125]])
    np.testing.assert_array_equal(network.intercept_grads[1], [-1.0])
    np.testing.assert_array_equal(network.coef_grads[0], [[-2.0], [-4.0]])
    np.testing.assert_array_equal(network.intercept_grads[0], [-2.0])

    GradientDescent(network.params.size, np.float64, 0.03125).step(network.params, network.grads)
    # w = w - α dw with α = 1/32: W1 = [[0.5 + 2/32], [-0.25 + 4/32]] = [[0.5625], [-0.125]]
    #   b1 = 0.125 + 2/32 = 0.1875;  W2 = 2 + 0.125/32 = 2.00390625;  b2 = 0.25 + 1/32 = 0.28125
    np.testing.assert_array_equal(network.coefs[0], [[0.5625], [-0.125]])
    np.testing.assert_array_equal(network.intercepts[0], [0.1875])
    np.testing.assert_array_equal(network.coefs[1], [[2.00390625]])
    np.testing.assert_array_equal(network.intercepts[1], [0.28125])
    # new forward: z1 = 0.5625 - 0.25 + 0.1875 = 0.5; z2 = 2.00390625 * 0.5 + 0.28125 = 1.283203125
    # loss = (1.283203125 - 1.5)^2 / 2 = 0.0234985...: the step lowered the loss from 0.5.
    assert network.loss_and_gradients(X, Y) == pytest.approx((1.283203125 - 1.5) ** 2 / 2)


def test_float32_gradients_agree_with_float64():
    net64, X, Y, y_index = make_problem("cross_entropy", 3, "tanh")
    net32 = Network(net64.layer_sizes, "tanh", "cross_entropy", np.float32)
    net32.params[:] = net64.params
    loss64 = net64.loss_and_gradients(X, Y, y_index)
    loss32 = net32.loss_and_gradients(X.astype(np.float32), Y, y_index)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(net32.grads, net64.grads, rtol=1e-3, atol=1e-5)


def test_softmax_loss_is_stable_for_huge_logits():
    from core.losses import softmax_cross_entropy

    Z = np.array([[1000.0, 0.0, -1000.0], [-500.0, -400.0, -600.0]]).T  # samples in columns
    y_index = np.array([0 * 2 + 0, 1 * 2 + 1])  # classes 0 and 1: each sample's largest logit
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = softmax_cross_entropy(Z.copy(), None, y_index)
    assert loss == pytest.approx(np.log1p(np.exp(-100.0) + np.exp(-200.0)) / 2)

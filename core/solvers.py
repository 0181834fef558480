"""Update rules: given the flat gradient vector, change the flat parameter vector in place.

Every solver works on the whole network at once (the flat vectors of :class:`core.network.Network`),
so one update is a handful of vector operations whatever the depth. ``step`` may overwrite
``grads``: they are recomputed before the next step anyway, and reusing them saves a buffer.
"""

import math

import numpy as np


class GradientDescent:
    """The notes' update ``w = w - α·dw`` (used by both ``gd`` and ``sgd``)."""

    def __init__(self, n_params, dtype, learning_rate):
        self.learning_rate = learning_rate

    def step(self, params, grads):
        """params, grads : ndarray of shape (n_params,); params updated in place."""
        grads *= self.learning_rate
        params -= grads


class Momentum:
    """Heavy-ball momentum: ``v = μ·v - α·dw``, ``w = w + v`` with μ = 0.9."""

    def __init__(self, n_params, dtype, learning_rate, momentum=0.9):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.velocity = np.zeros(n_params, dtype=dtype)

    def step(self, params, grads):
        """params, grads : ndarray of shape (n_params,); params updated in place."""
        self.velocity *= self.momentum
        grads *= self.learning_rate
        self.velocity -= grads
        params += self.velocity


class Adam:
    """Adam (Kingma & Ba 2015) with scikit-learn's defaults β1=0.9, β2=0.999, ε=1e-8."""

    def __init__(self, n_params, dtype, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.first_moment = np.zeros(n_params, dtype=dtype)
        self.second_moment = np.zeros(n_params, dtype=dtype)
        self._scratch = np.zeros(n_params, dtype=dtype)
        self.t = 0

    def step(self, params, grads):
        """params, grads : ndarray of shape (n_params,); params updated in place."""
        self.t += 1
        m, v, scratch = self.first_moment, self.second_moment, self._scratch
        m *= self.beta_1
        m += (1.0 - self.beta_1) * grads
        np.multiply(grads, grads, out=grads)
        v *= self.beta_2
        grads *= 1.0 - self.beta_2
        v += grads
        # Bias correction folded into the step size, as in the paper's Algorithm 1 variant.
        step_size = (
            self.learning_rate * math.sqrt(1.0 - self.beta_2**self.t) / (1.0 - self.beta_1**self.t)
        )
        np.sqrt(v, out=scratch)
        scratch += self.epsilon
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        params -= scratch


class Normalized:
    """The notes' normalised step ``w = w - α·dw/‖dw‖`` (‖·‖ over the whole network).

    Every step has length α whatever the gradient's size; a zero gradient means no step.
    """

    def __init__(self, n_params, dtype, learning_rate):
        self.learning_rate = learning_rate

    def step(self, params, grads):
        """params, grads : ndarray of shape (n_params,); params updated in place."""
        norm = math.sqrt(float(np.vdot(grads, grads)))
        if norm > 0.0:
            grads *= self.learning_rate / norm
            params -= grads


SOLVERS = {
    "gd": GradientDescent,
    "sgd": GradientDescent,
    "momentum": Momentum,
    "adam": Adam,
    "normalized": Normalized,
}

# Solvers that always step on the whole training set: batch_size must be None for them.
FULL_BATCH_SOLVERS = frozenset({"gd"})

"""Weight initialisers: small random weights break the symmetry between hidden units.

The notes: equal weights keep every hidden unit identical forever (each receives the same
gradient), and large weights saturate sigmoid/tanh; so weights start small and random and biases
start at zero. ``INITIALISERS[name](fan_in, fan_out, rng, dtype, init_scale)`` returns a weight
matrix of shape (fan_in, fan_out).
"""

import numpy as np


def small(fan_in, fan_out, rng, dtype, init_scale):
    """The notes' ``np.random.randn(shape) * 0.01``: standard normal times ``init_scale``."""
    return (rng.standard_normal((fan_in, fan_out)) * init_scale).astype(dtype)


def xavier(fan_in, fan_out, rng, dtype, init_scale):
    """Glorot uniform, U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), as scikit-learn's MLP.

    (scikit-learn narrows the bound to sqrt(2 / (fan_in + fan_out)) for logistic units and draws
    biases from the same range; here biases start at zero for every initialiser.)

    Keeps the variance of activations roughly constant from layer to layer for tanh-like units.
    """
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)


def he(fan_in, fan_out, rng, dtype, init_scale):
    """He normal, N(0, 2 / fan_in): the variance-preserving choice for ReLU units."""
    return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(dtype)


INITIALISERS = {"small": small, "xavier": xavier, "he": he}

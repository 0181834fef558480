"""Hidden-layer activation functions and their derivatives, applied in place.

``ACTIVATIONS[name](Z, out)`` writes ``g(Z)`` into ``out`` (which may be ``Z`` itself) and
returns it.
``DERIVATIVES[name](Z, A, delta)`` multiplies ``delta`` in place by ``g'(Z)``, where ``A = g(Z)``
is the forward output. Where the maths allows, the derivative is written in terms of ``A`` (the
notes: σ' = σ(1-σ), tanh' = 1 - tanh²), so no extra transcendental function is evaluated on the
way back. Arrays are of shape (n_samples, n_units).

The keys are the strings used by the estimators, the configs and the search space.
"""

import numpy as np

LEAKY_RELU_SLOPE = 0.01  # the notes' max(0.01 z, z)


def identity(Z, out):
    """g(z) = z."""
    if out is not Z:
        np.copyto(out, Z)
    return out


def sigmoid(Z, out):
    """g(z) = 1 / (1 + exp(-z)), computed as (1 + tanh(z/2)) / 2.

    The tanh form never overflows (exp(-z) does for z < -88 in float32) and costs one
    transcendental call instead of an exp and a division.
    """
    np.multiply(Z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def tanh(Z, out):
    """g(z) = tanh(z)."""
    return np.tanh(Z, out=out)


def relu(Z, out):
    """g(z) = max(0, z)."""
    return np.maximum(Z, 0.0, out=out)


def leaky_relu(Z, out):
    """g(z) = max(0.01 z, z) (the maximum picks z for z >= 0 because the slope is < 1)."""
    # One temporary: writing 0.01·z into ``out`` first would destroy Z when out aliases it.
    return np.maximum(Z, Z * LEAKY_RELU_SLOPE, out=out)


def identity_derivative(Z, A, delta):
    """g'(z) = 1: nothing to do."""
    return delta


def sigmoid_derivative(Z, A, delta):
    """σ'(z) = σ(z)·(1 - σ(z)) = A·(1 - A)."""
    slope = np.subtract(1.0, A, dtype=delta.dtype)  # the one temporary
    slope *= A
    return np.multiply(delta, slope, out=delta)


def tanh_derivative(Z, A, delta):
    """tanh'(z) = 1 - tanh(z)² = 1 - A²."""
    slope = np.multiply(A, A, dtype=delta.dtype)  # the one temporary
    np.subtract(1.0, slope, out=slope)
    return np.multiply(delta, slope, out=delta)


def relu_derivative(Z, A, delta):
    """g'(z) = 0 if z < 0, 1 if z >= 0 (the notes' convention, so g'(0) = 1).

    Uses Z, not A: A = 0 cannot tell z = 0 (slope 1) from z < 0 (slope 0). A product with the
    boolean mask is one plain element-wise pass, cheaper than a masked ``np.copyto(..., where=)``.
    """
    return np.multiply(delta, Z >= 0, out=delta)


def leaky_relu_derivative(Z, A, delta):
    """g'(z) = 0.01 if z < 0, 1 if z >= 0.

    The slope is positive, so A < 0 exactly when z < 0: the output alone decides.
    """
    slopes = np.where(A < 0, delta.dtype.type(LEAKY_RELU_SLOPE), delta.dtype.type(1))
    return np.multiply(delta, slopes, out=delta)


ACTIVATIONS = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
}

DERIVATIVES = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
}

# Activations whose derivative needs the pre-activation Z, not only A = g(Z). The training
# network keeps the boolean mask z >= 0 for these instead of Z (see core.network).
NEEDS_PREACTIVATION = frozenset({"relu"})

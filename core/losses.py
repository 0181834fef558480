"""Output layers paired with their losses.

Each output activation is paired with the loss whose gradient w.r.t. the output pre-activation
simplifies to ``(P - Y) / n`` (softmax + cross-entropy, sigmoid + binary cross-entropy,
identity + squared error). So one function computes, in place on the output buffer, the output
activation, the loss and the output delta, and never forms a log of every probability.

``LOSSES[name](Z, Y, y_index)``:

Z : ndarray of shape (n_samples, n_outputs)
    Output pre-activations; overwritten with the output delta dLoss/dZ.
Y : ndarray of shape (n_samples, n_outputs)
    Targets: one-hot rows for ``cross_entropy``, 0/1 column for ``binary_cross_entropy``,
    real values for ``squared_error``.
y_index : ndarray of shape (n_samples,) of intp, or None
    For ``cross_entropy`` only: flat indices ``i * n_outputs + y_i`` of the true class logits.

Returns the mean loss over the samples as a Python float (without the L2 penalty).
"""

import numpy as np

# Logits within ±SAFE_LOGIT need no shift before exp, even in float32 (overflow at ~88.7).
SAFE_LOGIT = 60.0


def softmax_cross_entropy(Z, Y, y_index):
    """Softmax output + multi-class cross-entropy: loss = mean_i(log Σ_k e^z_ik - z_iy).

    Written for few classes (short rows): numpy's reductions and broadcasts along rows of ~10
    elements are slow, so row sums are a matrix-vector product, row maxima are taken column by
    column (and only when needed), and exp runs once: softmax = e^z · (1 / Σ e^z).
    """
    n, n_classes = Z.shape
    # exp overflows above ~88 (float32) and a row underflows to a zero sum below ~-87; only
    # then shift each row by its maximum (which cancels in the softmax). Usually not needed.
    if Z.max() > SAFE_LOGIT or Z.min() < -SAFE_LOGIT:
        row_max = Z[:, 0].copy()
        for k in range(1, n_classes):
            np.maximum(row_max, Z[:, k], out=row_max)
        Z -= row_max[:, None]
    true_logits_sum = float(np.take(Z, y_index).sum())
    np.exp(Z, out=Z)
    row_sums = Z @ np.ones(n_classes, dtype=Z.dtype)
    loss = (float(np.log(row_sums).sum()) - true_logits_sum) / n
    # delta = (softmax - Y) / n: each row times 1 / (n · its sum), then the one-hot Y / n
    # subtracted at the n true-class entries only.
    row_sums *= n
    np.reciprocal(row_sums, out=row_sums)
    Z *= row_sums[:, None]
    Z.reshape(-1)[y_index] -= 1.0 / n
    return loss


def sigmoid_binary_cross_entropy(Z, Y, y_index=None):
    """Sigmoid output + binary cross-entropy: loss = mean_i(log(1 + e^z_i) - y_i z_i)."""
    n = Z.shape[0]
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): stable for any z.
    softplus = np.logaddexp(0.0, Z)
    loss = (float(softplus.sum()) - float(np.vdot(Y, Z))) / n
    sigmoid_out = Z
    np.multiply(Z, 0.5, out=sigmoid_out)
    np.tanh(sigmoid_out, out=sigmoid_out)
    sigmoid_out += 1.0
    sigmoid_out *= 0.5
    sigmoid_out -= Y
    sigmoid_out *= 1.0 / n
    return loss


def squared_error(Z, Y, y_index=None):
    """Identity output + squared error: loss = Σ_ik (z_ik - y_ik)² / (2n)."""
    n = Z.shape[0]
    Z -= Y
    loss = float(np.vdot(Z, Z)) / (2 * n)
    Z *= 1.0 / n
    return loss


LOSSES = {
    "cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": sigmoid_binary_cross_entropy,
    "squared_error": squared_error,
}


def softmax(Z):
    """Row-wise softmax of Z, shape (n_samples, n_classes), in place."""
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


def sigmoid(Z):
    """Logistic sigmoid of Z in place, via tanh so it never overflows."""
    Z *= 0.5
    np.tanh(Z, out=Z)
    Z += 1.0
    Z *= 0.5
    return Z


def identity(Z):
    """The regression output: Z unchanged."""
    return Z


# The output activation that belongs to each loss, used by predict / predict_proba.
OUTPUT_ACTIVATIONS = {
    "cross_entropy": softmax,
    "binary_cross_entropy": sigmoid,
    "squared_error": identity,
}

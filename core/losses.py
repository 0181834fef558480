"""Output layers paired with their losses.

Each output activation is paired with the loss whose gradient w.r.t. the output pre-activation
simplifies to ``(P - Y) / n`` (softmax + cross-entropy, sigmoid + binary cross-entropy,
identity + squared error). So one function computes, in place on the output buffer, the output
activation, the loss and the output delta, and never forms a log of every probability.

``LOSSES[name](Z, Y, y_index)``, with samples in columns as in training (see core.network):

Z : ndarray of shape (n_outputs, n_samples)
    Output pre-activations; overwritten with the output delta dLoss/dZ.
Y : ndarray of shape (n_outputs, n_samples)
    Targets: 0/1 row for ``binary_cross_entropy``, real values for ``squared_error``; None for
    ``cross_entropy``, which takes the classes as ``y_index``.
y_index : ndarray of shape (n_samples,) of intp, or None
    For ``cross_entropy`` only: flat indices ``y_i * n_samples + i`` of the true class logits.

Returns the mean loss over the samples as a Python float (without the L2 penalty).

``OUTPUT_ACTIVATIONS`` are for prediction, with samples in rows: shape (n_samples, n_outputs).
"""

import numpy as np

# Logits within ±SAFE_LOGIT need no shift before exp, even in float32 (overflow at ~88.7).
SAFE_LOGIT = 60.0

# Output deltas smaller than this many times the dtype's smallest normal number are set to zero.
# A confident softmax gives probabilities of e^-90 and less; left as they are, they and the
# deltas of every layer below become subnormal numbers, on which the CPU's matrix products run
# an order of magnitude slower. Their share of any gradient is far below the dtype's precision.
# The margin keeps the deltas of the layers below (products with small weights) normal too.
FLUSH_MARGIN = 2.0**32


def softmax_cross_entropy(Z, Y, y_index):
    """Softmax output + multi-class cross-entropy: loss = mean_i(log Σ_k e^z_ki - z_yi,i).

    With samples in columns every step runs along contiguous rows of n_samples: the per-sample
    sums over the few classes are a vector-matrix product, the maxima (taken only when needed)
    an element-wise maximum of the class rows, and exp runs once: softmax = e^z · (1 / Σ e^z).
    """
    n_classes, n = Z.shape
    # exp overflows above ~88 (float32) and a column underflows to a zero sum below ~-87; only
    # then shift each sample by its maximum (which cancels in the softmax). Usually not needed.
    if Z.max() > SAFE_LOGIT or Z.min() < -SAFE_LOGIT:
        Z -= Z.max(axis=0)
    true_logits_sum = float(np.take(Z, y_index).sum())
    np.exp(Z, out=Z)
    sums = np.ones(n_classes, dtype=Z.dtype) @ Z
    loss = (float(np.log(sums).sum()) - true_logits_sum) / n
    # delta = (softmax - Y) / n: each column times 1 / (n · its sum), then the one-hot Y / n
    # subtracted at the n true-class entries only.
    sums *= n
    np.reciprocal(sums, out=sums)
    Z *= sums
    np.multiply(Z, Z >= np.finfo(Z.dtype).tiny * FLUSH_MARGIN, out=Z)  # see FLUSH_MARGIN
    Z.reshape(-1)[y_index] -= 1.0 / n
    return loss


def sigmoid_binary_cross_entropy(Z, Y, y_index=None):
    """Sigmoid output + binary cross-entropy: loss = mean_i(log(1 + e^z_i) - y_i z_i).

    Z, Y : shape (1, n_samples).
    """
    n = Z.shape[1]
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
    """Identity output + squared error: loss = Σ_ki (z_ki - y_ki)² / (2n)."""
    n = Z.shape[1]
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

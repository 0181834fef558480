"""A fully connected network: parameters in one flat vector, forward pass, backpropagation.

Training works in the notes' layout, samples in columns: layer l computes
``Z[l] = W[l]·A[l-1] + b[l]`` and ``A[l] = g(Z[l])`` with ``A[0] = Xᵀ`` of shape
(n_features, n_samples) and ``W[l]`` of shape (n_out, n_in). One matrix product per layer
takes the whole batch. The parameters are stored the scikit-learn way, ``coefs_[l]`` of shape
(n_in, n_out) = ``W[l]ᵀ``, followed by its bias, so that a layer's ``[W[l]ᵀ; b[l]]`` of shape
(n_in + 1, n_out) is one contiguous block; with a row of ones under ``A[l-1]`` the bias enters
through the matrix product itself (``[W b]·[A; 1] = W·A + b``), and its gradient
``[A; 1]·δᵀ`` lands in ``grads`` as dW and db at once. This layout is kept over samples in rows
because the forward products and the bias then take fewer passes over memory.

All weights and biases are views into one flat ``params`` vector and all gradients views into
one flat ``grads`` vector (scikit-learn's ``_pack``/``_unpack``, but without copies). A solver
then updates the whole network with a few vector operations, and a finite-difference gradient
check is a loop over one vector.
"""

from itertools import pairwise

import numpy as np

from core.activations import ACTIVATIONS, DERIVATIVES, NEEDS_PREACTIVATION
from core.losses import LOSSES, OUTPUT_ACTIVATIONS


def n_parameters(layer_sizes):
    """Number of weights and biases of a network with these layer widths."""
    return sum(n_in * n_out + n_out for n_in, n_out in pairwise(layer_sizes))


def unpack_with_bias(flat, layer_sizes):
    """Views of a flat vector as one (n_in + 1, n_out) block ``[coef; intercept]`` per layer.

    Parameters
    ----------
    flat : ndarray of shape (n_parameters(layer_sizes),)
    layer_sizes : sequence of int, (n_features, *hidden_layer_sizes, n_outputs)
    """
    blocks, start = [], 0
    for n_in, n_out in pairwise(layer_sizes):
        size = (n_in + 1) * n_out
        blocks.append(flat[start : start + size].reshape(n_in + 1, n_out))
        start += size
    return blocks


def unpack(flat, layer_sizes):
    """Views of a flat vector as per-layer weights and biases (each layer's W, then its b).

    Returns
    -------
    coefs : list of ndarray of shape (n_in, n_out), views into ``flat``
    intercepts : list of ndarray of shape (n_out,), views into ``flat``
    """
    blocks = unpack_with_bias(flat, layer_sizes)
    return [block[:-1] for block in blocks], [block[-1] for block in blocks]


def pack(coefs, intercepts):
    """The inverse of :func:`unpack`: one new flat vector, layer by layer (W then b)."""
    parts = []
    for W, b in zip(coefs, intercepts, strict=True):
        parts += [W.ravel(), b.ravel()]
    return np.concatenate(parts)


def with_bias_row(X, dtype=None):
    """``[Xᵀ; 1]``: the samples as columns with a row of ones under them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    dtype : numpy dtype, default X's

    Returns
    -------
    ndarray of shape (n_features + 1, n_samples), C-contiguous: the input
    :meth:`Network.loss_and_gradients` expects.
    """
    n_samples, n_features = X.shape
    out = np.empty((n_features + 1, n_samples), dtype=dtype or X.dtype)
    out[:n_features] = X.T
    out[n_features] = 1
    return out


def forward(coefs, intercepts, activation, loss, X):
    """Network output for any number of samples (allocates; used for prediction, not training).

    Parameters
    ----------
    coefs, intercepts : lists of (n_in, n_out) and (n_out,) arrays
    activation : str, a key of ``ACTIVATIONS``
    loss : str, a key of ``LOSSES``; chooses the output activation
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples, n_outputs), float64: probabilities or regression values.
    """
    g = ACTIVATIONS[activation]
    A = X
    for W, b in zip(coefs[:-1], intercepts[:-1], strict=True):
        Z = A @ W
        Z += b
        A = g(Z, Z)
    # The output layer in float64, so that probabilities sum to 1 to double precision.
    Z = (A @ coefs[-1]).astype(np.float64)
    Z += intercepts[-1]
    return OUTPUT_ACTIVATIONS[loss](Z)


class _BatchBuffers:
    """Work arrays for batches of exactly ``n`` samples (all C-contiguous, samples in columns).

    ``inputs[l]`` of shape (n_units + 1, n) holds hidden layer l's pre-activations, overwritten in
    place by its activations, over a constant row of ones (the next layer's bias input);
    ``outputs`` of shape (n_outputs, n) the output pre-activations, then the output delta;
    ``deltas[l]`` of shape (n_units, n) the backpropagated error; for ReLU ``masks[l]``, the
    boolean z >= 0 (A = 0 cannot tell z = 0, slope 1, from z < 0), a quarter or an eighth of the
    memory traffic of a second float buffer.
    """

    def __init__(self, layer_sizes, n, dtype, keep_mask):
        hidden = layer_sizes[1:-1]
        self.inputs = [np.empty((width + 1, n), dtype=dtype) for width in hidden]
        for A in self.inputs:
            A[-1] = 1
        self.hidden = [A[:-1] for A in self.inputs]  # contiguous: all rows but the last
        self.outputs = np.empty((layer_sizes[-1], n), dtype=dtype)
        self.deltas = [np.empty((width, n), dtype=dtype) for width in hidden]
        self.masks = [np.empty((width, n), dtype=bool) for width in hidden] if keep_mask else None


class Network:
    """Parameters, gradients and reusable work buffers of one network.

    Parameters
    ----------
    layer_sizes : sequence of int
        (n_features, *hidden_layer_sizes, n_outputs).
    activation : str
        Hidden activation, a key of ``ACTIVATIONS``.
    loss : str
        A key of ``LOSSES`` (it fixes the output activation).
    dtype : numpy dtype
        float32 or float64, for parameters, gradients and buffers alike.
    """

    def __init__(self, layer_sizes, activation, loss, dtype):
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.activation = activation
        self.loss = loss
        self.dtype = np.dtype(dtype)
        size = n_parameters(self.layer_sizes)
        self.params = np.zeros(size, dtype=self.dtype)
        self.grads = np.zeros(size, dtype=self.dtype)
        self.coefs, self.intercepts = unpack(self.params, self.layer_sizes)
        self.coef_grads, self.intercept_grads = unpack(self.grads, self.layer_sizes)
        # [coefᵀ b] of each layer, shape (n_out, n_in + 1): the notes' W with its bias column.
        self._weights = [block.T for block in unpack_with_bias(self.params, self.layer_sizes)]
        self._weight_grads = unpack_with_bias(self.grads, self.layer_sizes)
        self._g = ACTIVATIONS[activation]
        self._g_prime = DERIVATIVES[activation]
        self._loss_fn = LOSSES[loss]
        self._keep_mask = activation in NEEDS_PREACTIVATION
        # One set per batch length (a full batch, or a mini-batch size and the last remainder);
        # slicing one large set would leave the short batch's arrays non-contiguous.
        self._buffers = {}

    def loss_and_gradients(self, XT, Y, y_index=None, alpha=0.0):
        """Forward pass, loss and backpropagation for one batch; gradients go to ``self.grads``.

        Parameters
        ----------
        XT : ndarray of shape (n_features + 1, n_samples), of ``self.dtype``
            ``with_bias_row(X)``: samples in columns over a row of ones. Any strided view will
            do, e.g. the transpose of a block of rows of ``with_bias_row(X).T`` (a mini-batch).
        Y : ndarray of shape (n_outputs, n_samples), or None for ``cross_entropy``
        y_index : ndarray of shape (n_samples,) of intp, for ``cross_entropy`` only
            Flat indices ``class_i * n_samples + i`` of the true-class outputs.
        alpha : float
            L2 penalty; adds ``alpha / (2 n) · Σ‖W‖²`` to the loss (biases are not penalised).

        Returns
        -------
        float : the mean loss over the batch, penalty included.
        """
        n = XT.shape[1]
        buffers = self._buffers.get(n)
        if buffers is None:
            buffers = _BatchBuffers(self.layer_sizes, n, self.dtype, self._keep_mask)
            self._buffers[n] = buffers
        inputs, hidden, masks = buffers.inputs, buffers.hidden, buffers.masks
        last = len(self.coefs) - 1

        A = XT
        for layer in range(last):
            Z = hidden[layer]
            np.matmul(self._weights[layer], A, out=Z)
            if masks is not None:
                np.greater_equal(Z, 0, out=masks[layer])  # ReLU'(z) = 1 for z >= 0
            self._g(Z, Z)
            A = inputs[layer]
        delta = buffers.outputs
        np.matmul(self._weights[last], A, out=delta)
        loss = self._loss_fn(delta, Y, y_index)  # delta now holds dLoss/dZ_out
        if alpha:
            loss += alpha / (2 * n) * sum(float(np.vdot(W, W)) for W in self.coefs)

        for layer in range(last, -1, -1):
            A = inputs[layer - 1] if layer else XT
            np.matmul(A, delta.T, out=self._weight_grads[layer])  # [dW; db] = [A; 1]·δᵀ
            if alpha:
                self.coef_grads[layer] += (alpha / n) * self.coefs[layer]
            if layer > 0:
                # Error of the layer below: back through the weights, then through g'.
                previous = buffers.deltas[layer - 1]
                np.matmul(self.coefs[layer], delta, out=previous)
                if masks is not None:
                    np.multiply(previous, masks[layer - 1], out=previous)
                else:  # the derivative from the output A alone (Z was overwritten by A)
                    A = hidden[layer - 1]
                    self._g_prime(A, A, previous)
                delta = previous
        return loss

    def predict(self, X):
        """Output of the network for X of shape (n_samples, n_features); see :func:`forward`."""
        return forward(self.coefs, self.intercepts, self.activation, self.loss, X)

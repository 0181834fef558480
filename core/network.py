"""A fully connected network: parameters in one flat vector, forward pass, backpropagation.

Layer l computes ``Z[l] = A[l-1] · W[l] + b[l]`` and ``A[l] = g(Z[l])`` with samples in rows:
``A[0] = X`` of shape (n_samples, n_features) and ``W[l]`` of shape (n_in, n_out). (The notes
write ``W·a`` with samples in columns; this is the same map transposed, which lets the whole
batch go through one matrix product per layer.)

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


def unpack(flat, layer_sizes):
    """Views of a flat vector as per-layer weights and biases.

    Parameters
    ----------
    flat : ndarray of shape (n_parameters(layer_sizes),)
    layer_sizes : sequence of int, (n_features, *hidden_layer_sizes, n_outputs)

    Returns
    -------
    coefs : list of ndarray of shape (n_in, n_out), views into ``flat``
    intercepts : list of ndarray of shape (n_out,), views into ``flat``
    """
    coefs, intercepts, start = [], [], 0
    for n_in, n_out in pairwise(layer_sizes):
        coefs.append(flat[start : start + n_in * n_out].reshape(n_in, n_out))
        start += n_in * n_out
        intercepts.append(flat[start : start + n_out])
        start += n_out
    return coefs, intercepts


def pack(coefs, intercepts):
    """The inverse of :func:`unpack`: one new flat vector, layer by layer (W then b)."""
    parts = []
    for W, b in zip(coefs, intercepts, strict=True):
        parts += [W.ravel(), b.ravel()]
    return np.concatenate(parts)


def with_bias_column(X):
    """X with a trailing column of ones, shape (n_samples, n_features + 1).

    Given to :meth:`Network.loss_and_gradients`, it lets the first layer add its bias inside the
    matrix product instead of in a separate pass over (n_samples, n_units).
    """
    n_samples, n_features = X.shape
    out = np.empty((n_samples, n_features + 1), dtype=X.dtype)
    out[:, :n_features] = X
    out[:, n_features] = 1
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
        self._g = ACTIVATIONS[activation]
        self._g_prime = DERIVATIVES[activation]
        self._loss_fn = LOSSES[loss]
        self._keep_mask = activation in NEEDS_PREACTIVATION
        first = (self.layer_sizes[0] + 1) * self.layer_sizes[1]  # W then b of the first layer
        self._first_layer = self.params[:first].reshape(-1, self.layer_sizes[1])
        self._first_layer_grad = self.grads[:first].reshape(-1, self.layer_sizes[1])
        self._capacity = 0

    def allocate(self, batch_size):
        """Preallocate the per-layer buffers for batches of up to ``batch_size`` rows.

        Z[l] holds the pre-activations, overwritten in place by the activations; delta[l] the
        backpropagated error. The output layer's Z doubles as its delta. For ReLU, whose
        derivative needs z (A = 0 cannot tell z = 0 from z < 0), a boolean mask z >= 0 is kept
        instead of a second float buffer: a quarter or an eighth of the memory traffic.
        """
        if batch_size <= self._capacity:
            return
        widths = self.layer_sizes[1:]
        self._Z = [np.empty((batch_size, w), dtype=self.dtype) for w in widths]
        self._delta = [np.empty_like(Z) for Z in self._Z[:-1]]
        if self._keep_mask:
            self._mask = [np.empty(Z.shape, dtype=bool) for Z in self._Z[:-1]]
        # Bias gradients as ones·delta: a matrix-vector product is ~5x faster than sum(axis=0).
        self._ones = np.ones(batch_size, dtype=self.dtype)
        self._capacity = batch_size
        self._views = {}

    def _batch_views(self, n):
        """The first ``n`` rows of every buffer, made once per batch size (slicing ~10 arrays
        on every call costs as much as a small element-wise pass)."""
        views = self._views.get(n)
        if views is None:
            masks = [mask[:n] for mask in self._mask] if self._keep_mask else None
            views = ([Z[:n] for Z in self._Z], [d[:n] for d in self._delta], masks)
            self._views[n] = views
        return views

    def loss_and_gradients(self, X, Y, y_index=None, alpha=0.0):
        """Forward pass, loss and backpropagation for one batch; gradients go to ``self.grads``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), of ``self.dtype``
            Or ``with_bias_column(X)``, of shape (n_samples, n_features + 1), which the training
            loop passes: the first layer then adds its bias inside its matrix product.
        Y : ndarray of shape (n_samples, n_outputs), or None for ``cross_entropy``
        y_index : ndarray of shape (n_samples,) of intp, for ``cross_entropy`` only
            Flat indices ``i * n_outputs + class_i`` of the true-class outputs.
        alpha : float
            L2 penalty; adds ``alpha / (2 n) · Σ‖W‖²`` to the loss (biases are not penalised).

        Returns
        -------
        float : the mean loss over the batch, penalty included.
        """
        n = X.shape[0]
        self.allocate(n)
        Zs, deltas, masks = self._batch_views(n)
        last = len(self.coefs) - 1
        # [X 1]·[W; b] = X·W + b: W and b of a layer are adjacent in ``params``, so [W; b] is a
        # view, and its gradient [X 1]ᵀ·delta lands in ``grads`` as dW and db at once.
        bias_column = X.shape[1] == self.layer_sizes[0] + 1

        A = X
        for layer in range(last + 1):
            Z = Zs[layer]
            if layer == 0 and bias_column:
                np.matmul(X, self._first_layer, out=Z)
            else:
                np.matmul(A, self.coefs[layer], out=Z)
                Z += self.intercepts[layer]
            if layer < last:
                if masks is not None:
                    np.greater_equal(Z, 0, out=masks[layer])  # ReLU'(z) = 1 for z >= 0
                self._g(Z, Z)
            A = Z

        delta = Zs[last]
        loss = self._loss_fn(delta, Y, y_index)  # delta now holds dLoss/dZ_out
        if alpha:
            loss += alpha / (2 * n) * sum(float(np.vdot(W, W)) for W in self.coefs)

        for layer in range(last, -1, -1):
            A = Zs[layer - 1] if layer else X
            if layer == 0 and bias_column:
                np.matmul(X.T, delta, out=self._first_layer_grad)
            else:
                np.matmul(A.T, delta, out=self.coef_grads[layer])
                np.matmul(self._ones[:n], delta, out=self.intercept_grads[layer])
            if alpha:
                self.coef_grads[layer] += (alpha / n) * self.coefs[layer]
            if layer > 0:
                # Error of the layer below: back through the weights, then through g'.
                previous = deltas[layer - 1]
                np.matmul(delta, self.coefs[layer].T, out=previous)
                if masks is not None:
                    np.multiply(previous, masks[layer - 1], out=previous)
                else:  # the derivative from the output A alone (Z was overwritten by A)
                    self._g_prime(A, A, previous)
                delta = previous
        return loss

    def predict(self, X):
        """Output of the network for X of shape (n_samples, n_features); see :func:`forward`."""
        return forward(self.coefs, self.intercepts, self.activation, self.loss, X)

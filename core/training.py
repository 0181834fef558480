"""The notes' training loop: forward + loss, backward, update, repeated.

One iteration is one epoch: a single full-batch step for ``gd`` (or ``batch_size=None``), or one
pass over all shuffled mini-batches otherwise. ``iterations`` is a cap: with ``n_iter_no_change``
set, training stops once the loss has stalled for that many epochs (scikit-learn's rule, so that
its MLP defaults and these mean the same). Inputs are validated by the caller, once; nothing
here checks arguments, so the loop does only arithmetic.
"""

import math

import numpy as np

from core.errors import TrainingDivergedError
from core.network import with_bias_row
from core.solvers import SOLVERS

# A loss this many times its first value means divergence even while it is still finite: a
# softmax net driven by a huge learning rate often keeps a large finite cross-entropy (its
# hidden units saturate or die) instead of overflowing, and would train on to garbage.
DIVERGENCE_FACTOR = 10.0


def train(
    network,
    X,
    Y,
    y_class=None,
    *,
    solver="adam",
    learning_rate=0.01,
    iterations=200,
    batch_size=None,
    alpha=0.0,
    rng=None,
    callback=None,
    callback_every=1,
    n_iter_no_change=None,
    tol=1e-4,
):
    """Fit ``network.params`` in place; return the loss curve.

    Parameters
    ----------
    network : core.network.Network
        With parameters already initialised.
    X : ndarray of shape (n_samples, n_features), of ``network.dtype``
    Y : ndarray of shape (n_samples, n_outputs), or None for the ``cross_entropy`` loss
    y_class : ndarray of shape (n_samples,) of intp, for ``cross_entropy`` only
        The index of each sample's class.
    solver : str, a key of ``SOLVERS``
    learning_rate : float
    iterations : int, the number of epochs
    batch_size : int or None (full batch)
    alpha : float, L2 penalty
    rng : numpy.random.Generator, shuffles the mini-batches
    callback : callable(iteration, loss) or None
        Called after iterations callback_every, 2·callback_every, ... (1-based). Whatever it
        raises propagates and stops training.
    callback_every : int
    n_iter_no_change : int or None
        Stop once the loss has failed to fall by ``tol`` below its best for more than this many
        consecutive epochs (scikit-learn's ``n_iter_no_change``); None trains all ``iterations``.
    tol : float

    Returns
    -------
    list of float, of length ``iterations`` at most: the mean training loss of each iteration.

    Raises
    ------
    TrainingDivergedError
        As soon as a loss is not finite, or exceeds ``DIVERGENCE_FACTOR`` times the first one.
    """
    n_samples = X.shape[0]
    # Samples in columns, over a row of ones that carries the first layer's bias (core.network).
    XT = with_bias_row(X)
    YT = None if Y is None else np.ascontiguousarray(Y.T, dtype=network.dtype)
    if batch_size is None or batch_size >= n_samples:
        batch_size = n_samples
    optimiser = SOLVERS[solver](network.params.size, network.dtype, learning_rate)
    # Flat index of the true-class output within a batch's (n_classes, m) output buffer:
    # class * m + column.
    columns = np.arange(batch_size, dtype=np.intp)
    y_index = np.empty(batch_size, dtype=np.intp)
    full_batch = batch_size == n_samples
    if full_batch and y_class is not None:
        np.multiply(y_class, n_samples, out=y_index)
        y_index += columns
    if not full_batch:
        # Shuffled by rows, which np.take gathers faster than columns; each mini-batch is then
        # the transposed view of a block of rows (BLAS takes it as it is, no copy).
        X_rows = np.ascontiguousarray(XT.T)
        X_epoch = np.empty_like(X_rows)
        YT_epoch = None if YT is None else np.empty_like(YT)
        y_class_epoch = None if y_class is None else np.empty_like(y_class)

    loss_curve = []
    loss_limit = math.inf  # set from the first iteration's loss
    stalled = StalledLoss(n_iter_no_change, tol)
    for iteration in range(1, iterations + 1):
        # Overflow in exp/matmul is how divergence shows; it is reported below, not warned about.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            if full_batch:
                loss = network.loss_and_gradients(XT, YT, y_index, alpha)
                finite = math.isfinite(loss)
                if finite:
                    optimiser.step(network.params, network.grads)
            else:
                order = rng.permutation(n_samples)
                np.take(X_rows, order, axis=0, out=X_epoch)
                if YT is not None:
                    np.take(YT, order, axis=1, out=YT_epoch)
                if y_class is not None:
                    np.take(y_class, order, out=y_class_epoch)
                loss, finite = 0.0, True
                for start in range(0, n_samples, batch_size):
                    stop = min(start + batch_size, n_samples)
                    m = stop - start
                    batch_index = None
                    if y_class is not None:
                        batch_index = y_index[:m]
                        np.multiply(y_class_epoch[start:stop], m, out=batch_index)
                        batch_index += columns[:m]
                    batch_Y = None if YT is None else YT_epoch[:, start:stop]
                    batch_loss = network.loss_and_gradients(
                        X_epoch[start:stop].T, batch_Y, batch_index, alpha
                    )
                    if not math.isfinite(batch_loss):
                        loss, finite = batch_loss, False
                        break
                    loss += batch_loss * m
                    optimiser.step(network.params, network.grads)
                if finite:
                    loss /= n_samples
        if not finite or loss > loss_limit:
            raise TrainingDivergedError(iteration, learning_rate, loss, loss_curve)
        if iteration == 1:
            loss_limit = DIVERGENCE_FACTOR * loss
        loss_curve.append(loss)
        if callback is not None and iteration % callback_every == 0:
            callback(iteration, loss)
        if stalled.update(loss):
            break
    return loss_curve


class StalledLoss:
    """scikit-learn's convergence test on the training loss (``MLPClassifier`` with
    ``early_stopping=False``): an epoch whose loss is not ``tol`` below the best so far counts
    as stalled; more than ``patience`` stalled epochs in a row end training."""

    def __init__(self, patience, tol):
        self.patience, self.tol = patience, tol
        self.best, self.count = math.inf, 0

    def update(self, loss):
        """Record one epoch's loss; True when training should stop."""
        if self.patience is None:
            return False
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        return self.count > self.patience

"""Exceptions and warnings raised by :mod:`core`.

Each one has its own class so that callers (the sweep, the tests) can catch exactly the failure
they know how to handle: a diverged trial is pruned, a bad model file is reported, but a
programming error still crashes.
"""

import sys


class TrainingDivergedError(ArithmeticError):
    """The training loss became NaN, infinite or many times its first value; training stopped.

    Not a ``ValueError``: the inputs were valid, the optimisation itself blew up (usually a
    learning rate that is too large), so a hyperparameter search may treat it as a failed trial.

    Attributes
    ----------
    iteration : int
        The 1-based iteration (epoch) at which the loss stopped being finite.
    learning_rate : float
        The learning rate in use, repeated so that the message alone says what to change.
    loss : float
        The offending loss value (``nan``, ``inf``, or a finite value far above the first loss).
    loss_curve : list of float
        The finite losses of the iterations before, for learning-curve plots of failed trials.
    """

    def __init__(self, iteration: int, learning_rate: float, loss: float, loss_curve=()):
        self.iteration = iteration
        self.learning_rate = learning_rate
        self.loss = loss
        self.loss_curve = list(loss_curve)
        super().__init__(
            f"training diverged at iteration {iteration} (loss={loss}) with "
            f"learning_rate={learning_rate}; lower the learning rate"
        )

    def __reduce__(self):
        # Keeps the exception picklable across joblib/loky worker processes.
        return (type(self), (self.iteration, self.learning_rate, self.loss, self.loss_curve))


class ModelFileError(ValueError):
    """A model file is missing, truncated, not an ``.npz`` archive or has been tampered with."""


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit``.

    Subclasses both ``ValueError`` and ``AttributeError`` like scikit-learn's exception of the
    same name. Raise it through :func:`not_fitted_error`, which also makes it an instance of
    scikit-learn's ``NotFittedError`` when scikit-learn is in use.
    """


def not_fitted_error(estimator):
    """The exception to raise when ``estimator`` is used before ``fit``.

    If scikit-learn is already imported (a pipeline, ``check_estimator``), the exception is also
    an instance of ``sklearn.exceptions.NotFittedError``, so scikit-learn code that catches its
    own class catches ours. scikit-learn is never imported here.
    """
    message = (
        f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
        "appropriate arguments before using this estimator."
    )
    if "sklearn.exceptions" in sys.modules:
        from core.sklearn_compat import also_sklearn_class

        return also_sklearn_class(NotFittedError, message)
    return NotFittedError(message)


class DataConversionWarning(UserWarning):
    """Input was converted to another shape than given (e.g. a column-vector ``y`` raveled).

    Same name and meaning as scikit-learn's warning, defined here so that ``core`` does not
    import scikit-learn.
    """


def data_conversion_warning(message):
    """A :class:`DataConversionWarning`, also scikit-learn's class when scikit-learn is in use."""
    if "sklearn.exceptions" in sys.modules:
        from core.sklearn_compat import also_sklearn_class

        return also_sklearn_class(DataConversionWarning, message)
    return DataConversionWarning(message)

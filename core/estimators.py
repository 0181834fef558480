"""``MLPClassifier`` and ``MLPRegressor`` with scikit-learn's estimator conventions.

They follow scikit-learn's API (``fit``/``predict``/``score``, ``get_params``/``set_params``,
fitted attributes ending in ``_``) without importing scikit-learn: only ``__sklearn_tags__``
imports it, and only when scikit-learn itself asks for the tags.
"""

import numpy as np

from core import validation
from core.errors import not_fitted_error
from core.initialisation import INITIALISERS
from core.network import Network, forward
from core.training import train

PARAMETER_NAMES = (
    "hidden_layer_sizes",
    "activation",
    "learning_rate",
    "iterations",
    "solver",
    "batch_size",
    "alpha",
    "init",
    "init_scale",
    "random_state",
    "dtype",
    "callback",
    "callback_every",
    "n_iter_no_change",
    "tol",
)

# The output activation (scikit-learn's ``out_activation_`` names) and the loss that goes with it.
LOSS_OF_OUTPUT = {
    "softmax": "cross_entropy",
    "logistic": "binary_cross_entropy",
    "identity": "squared_error",
}


# Set before training so that a callback may predict with the live weights (_fit_network).
FITTED_DURING_TRAINING = (
    "classes_",
    "coefs_",
    "intercepts_",
    "n_features_in_",
    "n_outputs_",
    "n_layers_",
    "out_activation_",
)


class _BaseMLP:
    """Shared constructor, parameter handling, fitting and forward pass."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        learning_rate=0.01,
        iterations=200,
        solver="adam",
        batch_size=None,
        alpha=0.0,
        init="xavier",
        init_scale=0.01,
        random_state=None,
        dtype="float32",
        callback=None,
        callback_every=1,
        n_iter_no_change=None,
        tol=1e-4,
    ):
        # Stored untouched (scikit-learn convention): checked in fit, so set_params + fit works.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.iterations = iterations
        self.solver = solver
        self.batch_size = batch_size
        self.alpha = alpha
        self.init = init
        self.init_scale = init_scale
        self.random_state = random_state
        self.dtype = dtype
        self.callback = callback
        self.callback_every = callback_every
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol

    def get_params(self, deep=True):
        """The constructor parameters, as a dict (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def set_params(self, **params):
        """Set constructor parameters by name; returns ``self``."""
        for name, value in params.items():
            if name not in PARAMETER_NAMES:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {sorted(PARAMETER_NAMES)!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = _BaseMLP().get_params()
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same(value, defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from core.sklearn_compat import estimator_tags  # only when scikit-learn asks

        return estimator_tags(classifier=isinstance(self, MLPClassifier))

    def _fit_network(self, settings, X, targets, y_class, n_outputs, output):
        """Initialise and train a network; set the fitted attributes. Returns ``self``."""
        layer_sizes = (X.shape[1], *settings["hidden_layer_sizes"], n_outputs)
        network = Network(layer_sizes, settings["activation"], LOSS_OF_OUTPUT[output], X.dtype)
        rng = settings["rng"]
        initialise = INITIALISERS[settings["init"]]
        for W in network.coefs:  # biases stay zero
            W[...] = initialise(*W.shape, rng, X.dtype, settings["init_scale"])
        # While training runs, the fitted attributes are the live weights, so that a callback
        # can score the model as it stands (predict, predict_proba); copies replace them after.
        self.coefs_, self.intercepts_ = network.coefs, network.intercepts
        self.n_features_in_ = X.shape[1]
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(layer_sizes)
        self.out_activation_ = output
        try:
            loss_curve = train(
                network,
                X,
                targets,
                y_class,
                solver=settings["solver"],
                learning_rate=settings["learning_rate"],
                iterations=settings["iterations"],
                batch_size=settings["batch_size"],
                alpha=settings["alpha"],
                rng=rng,
                callback=settings["callback"],
                callback_every=settings["callback_every"],
                n_iter_no_change=settings["n_iter_no_change"],
                tol=settings["tol"],
            )
        except BaseException:
            for name in FITTED_DURING_TRAINING:  # a failed fit leaves no half-fitted model
                self.__dict__.pop(name, None)
            raise
        # Copies, so that the fitted model does not pin the training buffers.
        self.coefs_ = [W.copy() for W in network.coefs]
        self.intercepts_ = [b.copy() for b in network.intercepts]
        self.loss_curve_ = loss_curve
        self.loss_ = loss_curve[-1]
        self.n_iter_ = len(loss_curve)
        return self

    def _check_fit_input(self, X):
        """Validated settings and X; parameters first, so a bad setting is always reported."""
        settings = validation.training_settings(self.get_params())
        return settings, validation.features(X, settings["dtype"])

    def _output(self, X):
        """Network output for X, shape (n_samples, n_outputs), float64."""
        if not hasattr(self, "coefs_"):
            raise not_fitted_error(self)
        X = validation.features(X, self.coefs_[0].dtype, self.n_features_in_, type(self).__name__)
        loss = LOSS_OF_OUTPUT[self.out_activation_]
        return forward(self.coefs_, self.intercepts_, self.activation, loss, X)


class MLPClassifier(_BaseMLP):
    """Multi-layer perceptron classifier: softmax output (sigmoid for two classes).

    Parameters
    ----------
    hidden_layer_sizes : sequence of int, default (100,)
        Width of each hidden layer; ``()`` gives a linear (logistic regression) model.
    activation : {"identity", "leaky_relu", "relu", "sigmoid", "tanh"}, default "relu"
    learning_rate : float > 0, default 0.01
    iterations : int >= 1, default 200
        Epochs: full-batch steps, or passes over all mini-batches; the cap when
        ``n_iter_no_change`` is set.
    solver : {"gd", "sgd", "momentum", "adam", "normalized"}, default "adam"
    batch_size : int or None, default None (full batch; must be None for ``gd``)
    alpha : float >= 0, default 0.0, L2 penalty on the weights
    init : {"small", "xavier", "he"}, default "xavier"
    init_scale : float > 0, default 0.01, the standard deviation used by ``init="small"``
    random_state : None, int or numpy Generator; the same int gives the same model
    dtype : {"float32", "float64"}, default "float32"
    callback : callable(iteration, loss) or None; an exception raised by it stops training.
        While it runs, the fitted attributes hold the current weights: it may call ``predict``.
    callback_every : int >= 1, default 1
    n_iter_no_change : int >= 1 or None, default None
        Stop when the training loss has not fallen by ``tol`` below its best for more than this
        many epochs in a row (scikit-learn's rule); None: train all ``iterations``.
    tol : float >= 0, default 1e-4

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of ndarray of shape (n_in, n_out)
    intercepts_ : list of ndarray of shape (n_out,)
    n_features_in_ : int
    loss_curve_ : list of float, the training loss of each iteration
    n_iter_ : int
    """

    def fit(self, X, y):
        """Train on X of shape (n_samples, n_features) and labels y of shape (n_samples,)."""
        settings, X = self._check_fit_input(X)
        classes, y_class = validation.class_labels(y, X.shape[0])
        self.classes_ = classes  # set first: a callback may predict while training runs
        if classes.size == 2:
            targets = y_class.astype(X.dtype).reshape(-1, 1)
            fitted = self._fit_network(settings, X, targets, None, 1, "logistic")
        else:
            fitted = self._fit_network(settings, X, None, y_class, classes.size, "softmax")
        return fitted

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        probabilities = self._output(X)
        if probabilities.shape[1] == 1:
            return np.hstack([1.0 - probabilities, probabilities])
        return probabilities

    def predict(self, X):
        """Most probable label for each row of X, shape (n_samples,)."""
        probabilities = self._output(X)
        if probabilities.shape[1] == 1:
            return self.classes_[(probabilities[:, 0] > 0.5).astype(np.intp)]
        return self.classes_[probabilities.argmax(axis=1)]

    def score(self, X, y):
        """Accuracy: the fraction of rows of X whose predicted label equals y."""
        return float(np.mean(self.predict(X) == np.asarray(y).reshape(-1)))


class MLPRegressor(_BaseMLP):
    """Multi-layer perceptron regressor: identity output, squared-error loss.

    Parameters are those of :class:`MLPClassifier`. ``y`` may have shape (n_samples,) or
    (n_samples, n_outputs); ``predict`` returns the same shape.

    Attributes
    ----------
    coefs_, intercepts_, n_features_in_, loss_curve_, n_iter_ : as for MLPClassifier
    """

    def fit(self, X, y):
        """Train on X of shape (n_samples, n_features) and y of shape (n_samples[, n_outputs])."""
        settings, X = self._check_fit_input(X)
        targets, y_ndim = validation.regression_targets(y, X.shape[0], X.dtype)
        self._y_ndim = y_ndim  # set first: a callback may predict while training runs
        return self._fit_network(settings, X, targets, None, targets.shape[1], "identity")

    def predict(self, X):
        """Predictions, shape (n_samples,) or (n_samples, n_outputs) like the training y."""
        output = self._output(X)
        return output.ravel() if self._y_ndim == 1 else output

    def score(self, X, y):
        """Coefficient of determination R² (averaged over outputs), as scikit-learn's."""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        residual = ((y - self.predict(X).reshape(y.shape)) ** 2).sum(axis=0)
        total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        # A constant target: perfect predictions score 1, anything else 0 (scikit-learn's rule).
        safe_total = np.where(total > 0, total, 1.0)
        r2 = np.where(total > 0, 1.0 - residual / safe_total, np.where(residual == 0, 1.0, 0.0))
        return float(r2.mean())


def _same(a, b):
    """Equality for __repr__ that tolerates arrays and odd types."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b

"""The training loop: symmetry breaking, non-linearity, solvers, callbacks, divergence, accuracy."""

import pickle
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris, make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import core
from core.network import Network
from core.training import StalledLoss, train


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def test_equal_weights_keep_hidden_units_identical_random_ones_break_symmetry():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = rng.normal(size=(40, 1))

    def trained_hidden_weights(initial):
        network = Network((3, 5, 1), "tanh", "squared_error", np.float64)
        network.coefs[0][:], network.coefs[1][:] = initial
        train(network, X, Y, solver="gd", learning_rate=0.1, iterations=50)
        return network.coefs[0], network.coefs[1]

    W1, W2 = trained_hidden_weights((np.full((3, 5), 0.3), np.full((5, 1), 0.3)))
    # Every hidden unit got the same gradient at every step: the columns are still equal.
    np.testing.assert_allclose(W1, np.repeat(W1[:, :1], 5, axis=1), rtol=1e-12)
    np.testing.assert_allclose(W2, np.repeat(W2[:1], 5, axis=0), rtol=1e-12)
    assert not np.allclose(W1, 0.3)  # they did learn, just all the same thing

    W1, _ = trained_hidden_weights((rng.normal(0, 0.3, (3, 5)), rng.normal(0, 0.3, (5, 1))))
    assert np.linalg.matrix_rank(W1) == 3  # distinct units


def test_without_nonlinearity_xor_and_moons_cannot_be_learned():
    X_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y_xor = np.array([0, 1, 1, 0])
    X_moons, y_moons = make_moons(300, noise=0.1, random_state=0)
    settings = dict(hidden_layer_sizes=(16, 16), iterations=300, learning_rate=0.05, random_state=0)
    for X, y, linear_ceiling in ((X_xor, y_xor, 0.75), (X_moons, y_moons, 0.9)):
        linear = core.MLPClassifier(activation="identity", **settings).fit(X, y)
        nonlinear = core.MLPClassifier(activation="tanh", **settings).fit(X, y)
        assert linear.score(X, y) <= linear_ceiling
        assert nonlinear.score(X, y) == 1.0


def test_held_out_digits_accuracy(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    model = core.MLPClassifier(hidden_layer_sizes=(64,), iterations=200, random_state=0)
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.97


@pytest.mark.parametrize(
    ("solver", "learning_rate", "batch_size"),
    [
        ("gd", 0.1, None),
        ("sgd", 0.05, 64),
        ("sgd", 0.1, None),
        ("momentum", 0.02, None),
        ("momentum", 0.01, 100),
        ("adam", 0.01, None),
        ("adam", 0.005, 50),
        ("normalized", 0.05, None),
    ],
)
def test_each_solver_reduces_the_loss(digits_split, solver, learning_rate, batch_size):
    X_train, _, y_train, _ = digits_split
    model = core.MLPClassifier(
        hidden_layer_sizes=(32,),
        solver=solver,
        learning_rate=learning_rate,
        batch_size=batch_size,
        iterations=30,
        random_state=0,
    ).fit(X_train[:500], y_train[:500])
    assert len(model.loss_curve_) == model.n_iter_ == 30
    assert model.loss_curve_[-1] < 0.6 * model.loss_curve_[0]


@pytest.mark.parametrize("loss_kind", ["binary", "regression"])
def test_other_losses_train(loss_kind):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    if loss_kind == "binary":
        y = np.where(X[:, 0] * X[:, 1] > 0, "same", "different")
        model = core.MLPClassifier((16,), activation="tanh", iterations=300, random_state=0)
        assert model.fit(X, y).score(X, y) > 0.95
    else:
        y = np.sin(X[:, 0]) + X[:, 1] ** 2
        model = core.MLPRegressor((32,), activation="tanh", iterations=300, random_state=0)
        assert model.fit(X, y).score(X, y) > 0.9
    assert model.loss_curve_[-1] < model.loss_curve_[0]


@pytest.mark.parametrize(
    ("loss", "n_outputs"), [("cross_entropy", 3), ("binary_cross_entropy", 1), ("squared_error", 2)]
)
def test_mini_batches_with_a_short_last_one_see_every_sample_once(loss, n_outputs):
    # With a zero learning rate the weights never move, so each epoch's loss (the mean of the
    # batch losses weighted by their sizes) must equal the full batch's: 23 = 3 x 7 + 2 samples
    # checks the shuffled columns, the targets and the class indices of the short last batch.
    rng = np.random.default_rng(5)
    n_samples = 23
    X = rng.normal(size=(n_samples, 4))
    y_class, Y = None, None
    if loss == "cross_entropy":
        y_class = rng.integers(0, n_outputs, n_samples).astype(np.intp)
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (n_samples, 1)).astype(np.float64)
    else:
        Y = rng.normal(size=(n_samples, n_outputs))

    def epoch_losses(batch_size):
        network = Network((4, 6, 5, n_outputs), "relu", loss, np.float64)
        network.params[:] = np.random.default_rng(0).normal(0.0, 0.5, network.params.size)
        return train(
            network,
            X,
            Y,
            y_class,
            solver="sgd",
            learning_rate=0.0,
            iterations=3,
            batch_size=batch_size,
            rng=np.random.default_rng(1),
        )

    full = epoch_losses(None)
    np.testing.assert_allclose(epoch_losses(7), full, rtol=1e-12)
    assert full[0] > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", sorted(set(core.SOLVERS)))
def test_same_random_state_gives_identical_models(solver, dtype):
    X, y = make_moons(120, noise=0.2, random_state=3)
    batch_size = None if solver == "gd" else 32
    settings = dict(
        hidden_layer_sizes=(8, 8), solver=solver, batch_size=batch_size, iterations=20, dtype=dtype
    )
    first = core.MLPClassifier(random_state=7, **settings).fit(X, y)
    second = core.MLPClassifier(random_state=7, **settings).fit(X, y)
    other = core.MLPClassifier(random_state=8, **settings).fit(X, y)
    for a, b in zip(
        first.coefs_ + first.intercepts_, second.coefs_ + second.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.loss_curve_ == second.loss_curve_
    assert not np.array_equal(first.coefs_[0], other.coefs_[0])


@pytest.mark.parametrize("init", sorted(core.INITIALISERS))
def test_initialisers_scale_and_zero_biases(init):
    X, y = make_moons(50, random_state=0)
    model = core.MLPClassifier((200,), init=init, iterations=1, learning_rate=1e-12, random_state=0)
    W = model.fit(X, y).coefs_[0]
    expected_std = {"small": 0.01, "xavier": np.sqrt(2 / 202), "he": 1.0}[init]
    assert W.std() == pytest.approx(expected_std, rel=0.2)
    assert np.abs(model.intercepts_[0]).max() < 1e-9


def test_callback_is_called_every_k_iterations_and_can_stop_training():
    X, y = make_moons(60, random_state=0)
    calls = []
    model = core.MLPClassifier(
        (4,), iterations=10, callback=lambda i, loss: calls.append((i, loss)), callback_every=3
    ).fit(X, y)
    assert [i for i, _ in calls] == [3, 6, 9]
    assert [loss for _, loss in calls] == [model.loss_curve_[i - 1] for i in (3, 6, 9)]

    class Stop(Exception):
        pass

    def stop_at_four(iteration, loss):
        if iteration == 4:
            raise Stop

    with pytest.raises(Stop):
        core.MLPClassifier((4,), iterations=10, callback=stop_at_four).fit(X, y)


def test_divergence_raises_training_diverged_error_without_warnings():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = 100 * rng.normal(size=50)
    model = core.MLPRegressor((16,), solver="gd", learning_rate=1000.0, iterations=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow must be reported by the exception, not warned
        with pytest.raises(core.TrainingDivergedError) as caught:
            model.fit(X, y)
    error = caught.value
    assert isinstance(error, ArithmeticError) and not isinstance(error, ValueError)
    assert error.learning_rate == 1000.0
    assert 1 <= error.iteration < 100
    assert len(error.loss_curve) == error.iteration - 1
    assert all(np.isfinite(error.loss_curve))
    assert pickle.loads(pickle.dumps(error)).loss_curve == error.loss_curve  # crosses processes
    assert re.fullmatch(
        rf"training diverged at iteration {error.iteration} \(loss=(nan|inf|[0-9.e+]+)\) "
        r"with learning_rate=1000\.0; lower the learning rate",
        str(error),
    )


def test_a_finite_loss_far_above_the_first_one_is_divergence_too():
    # A softmax net under a huge step often keeps a finite loss (dead or saturated units) and
    # would train on to garbage: ten times the first loss stops it.
    X, y = load_iris(return_X_y=True)
    model = core.MLPClassifier((16,), activation="tanh", solver="gd", learning_rate=1000.0)
    with pytest.raises(core.TrainingDivergedError) as caught:
        model.fit(X, y)
    error = caught.value
    assert np.isfinite(error.loss)
    assert error.loss > core.training.DIVERGENCE_FACTOR * error.loss_curve[0]
    # A sane step on the same data never trips the criterion.
    core.MLPClassifier((16,), activation="tanh", solver="gd", learning_rate=0.1).fit(X, y)


def test_divergence_in_a_mini_batch_is_caught_too():
    X, y = make_moons(100, random_state=0)
    model = core.MLPClassifier((32,), solver="sgd", batch_size=10, learning_rate=1e30)
    with pytest.raises(core.TrainingDivergedError) as caught:
        model.fit(X * 1e5, y)
    assert caught.value.iteration == 1


def test_a_stalled_loss_stops_training_by_scikit_learns_rule():
    """n_iter_no_change=k: stop once the loss has not fallen by tol below its best for more than
    k epochs in a row (MLPClassifier's rule with early_stopping=False)."""
    stalled = StalledLoss(patience=2, tol=0.1)
    # best 1.0; 0.95 is not 0.1 below it (1), 0.5 is (reset), 0.45, 0.44, 0.43: 1, 2, 3 > 2.
    stops = [stalled.update(loss) for loss in (1.0, 0.95, 0.5, 0.45, 0.44, 0.43)]
    assert stops == [False, False, False, False, False, True]
    assert not any(StalledLoss(None, 0.1).update(1.0) for _ in range(50))


def test_iterations_cap_a_fit_that_stops_when_its_loss_stalls(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    settings = dict(hidden_layer_sizes=(32,), learning_rate=0.01, batch_size=200, random_state=0)
    capped = core.MLPClassifier(**settings, iterations=400).fit(X_train, y_train)
    stopping = core.MLPClassifier(**settings, iterations=400, n_iter_no_change=10)
    stopping.fit(X_train, y_train)
    assert capped.n_iter_ == 400
    assert 10 < stopping.n_iter_ < 400 == capped.n_iter_
    np.testing.assert_array_equal(stopping.loss_curve_, capped.loss_curve_[: stopping.n_iter_])
    assert stopping.score(X_test, y_test) > 0.95
    short = core.MLPClassifier(**settings, iterations=5, n_iter_no_change=10).fit(X_train, y_train)
    assert short.n_iter_ == 5


def test_a_callback_can_predict_with_the_weights_as_they_stand(digits_split):
    X_train, X_test, y_train, _ = digits_split
    seen = {}

    def look(iteration, loss):
        seen[iteration] = model.predict_proba(X_test[:20])

    model = core.MLPClassifier((16,), iterations=6, callback=look, callback_every=3)
    model.fit(X_train, y_train)
    assert set(seen) == {3, 6}
    assert not np.allclose(seen[3], seen[6])  # live weights, not a snapshot
    np.testing.assert_array_equal(seen[6], model.predict_proba(X_test[:20]))


def test_a_failed_fit_leaves_no_half_fitted_model():
    X = np.random.default_rng(0).normal(size=(30, 3))
    model = core.MLPClassifier((8,), learning_rate=1e30, solver="sgd", batch_size=10)
    with pytest.raises(core.TrainingDivergedError):
        model.fit(X, np.arange(30) % 3)
    with pytest.raises(core.NotFittedError):
        model.predict(X)
    assert not hasattr(model, "coefs_") and not hasattr(model, "classes_")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_confident_softmax_leaves_no_subnormal_deltas(dtype):
    """Probabilities of e^-90 and less, left as they are, make every layer's deltas subnormal
    numbers, on which matrix products run an order of magnitude slower (core.losses)."""
    from core.losses import softmax_cross_entropy

    rng = np.random.default_rng(0)
    n_classes, n = 10, 64
    Z = (rng.normal(size=(n_classes, n)) * 200).astype(dtype)
    y = rng.integers(0, n_classes, size=n)
    reference = Z.astype(np.float64)
    reference -= reference.max(axis=0)
    probabilities = np.exp(reference) / np.exp(reference).sum(axis=0)
    probabilities[y, np.arange(n)] -= 1.0
    softmax_cross_entropy(Z, None, y * n + np.arange(n))
    tiny = np.finfo(dtype).tiny
    assert not np.any((Z != 0) & (np.abs(Z) < tiny))
    np.testing.assert_allclose(Z, probabilities / n, atol=1e-6 / n)

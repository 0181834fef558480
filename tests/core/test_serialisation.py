"""save_model / load_model: exact round trips, no pickle, clear errors on damaged files."""

import io
import json
import zipfile

import numpy as np
import pytest

import core

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))


def fitted(estimator_class, y, **params):
    return estimator_class((6, 4), iterations=10, random_state=0, **params).fit(X, y)


@pytest.mark.parametrize(
    ("estimator_class", "y", "dtype"),
    [
        (core.MLPClassifier, np.arange(40) % 3, "float32"),
        (core.MLPClassifier, np.arange(40) % 3 * 7 - 5, "float64"),
        (core.MLPClassifier, np.where(X[:, 0] > 0, "yes", "no"), "float32"),
        (core.MLPClassifier, np.array(["ant", "bee", "cat", "dog"] * 10, dtype=object), "float32"),
        (core.MLPClassifier, X[:, 1] > 0, "float64"),
        (core.MLPRegressor, X @ [1.0, -2.0, 0.5], "float32"),
        (core.MLPRegressor, np.c_[X[:, 0], X[:, 1] ** 2], "float64"),
    ],
    ids=["int", "negative-int", "str-binary", "object-str", "bool", "regressor", "regressor-2d"],
)
def test_round_trip_predicts_identically(tmp_path, estimator_class, y, dtype):
    model = fitted(estimator_class, y, dtype=dtype, activation="tanh")
    path = tmp_path / "model.npz"
    core.save_model(model, path)
    loaded = core.load_model(path)
    assert type(loaded) is estimator_class
    assert loaded.get_params() == {**model.get_params(), "hidden_layer_sizes": (6, 4)}
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.n_iter_ == model.n_iter_
    if estimator_class is core.MLPClassifier:
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert loaded.classes_.tolist() == model.classes_.tolist()
        expected_kind = "U" if model.classes_.dtype == object else model.classes_.dtype.kind
        assert loaded.classes_.dtype.kind == expected_kind
        assert type(loaded.predict(X)[0]) is type(model.predict(X)[0])
    # Everything in the file loads without pickle.
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float64")], ids=["type", "dtype"])
def test_a_model_given_a_numpy_dtype_saves_its_name(tmp_path, dtype):
    model = fitted(core.MLPClassifier, np.arange(40) % 2, dtype=dtype)
    core.save_model(model, tmp_path / "m.npz")
    loaded = core.load_model(tmp_path / "m.npz")
    assert loaded.get_params()["dtype"] == np.dtype(dtype).name
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_callback_is_not_saved_and_random_state_is(tmp_path):
    model = fitted(core.MLPClassifier, np.arange(40) % 2, callback=lambda i, loss: None)
    core.save_model(model, tmp_path / "m.npz")
    loaded = core.load_model(tmp_path / "m.npz")
    assert loaded.callback is None and loaded.random_state == 0


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    core.save_model(fitted(core.MLPClassifier, np.arange(40) % 3), path)
    return path


def rewrite(path, change):
    """Load every array of the archive, let ``change`` edit the dict, save it back."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    change(arrays)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def set_metadata(arrays, **fields):
    metadata = json.loads(arrays["metadata"].tobytes())
    metadata.update(fields)
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)


CORRUPTIONS = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "not-npz": lambda path: path.write_text("hello, I am not a model\n"),
    "empty": lambda path: path.write_bytes(b""),
    "missing-weights": lambda path: rewrite(path, lambda a: a.pop("coef_1")),
    "missing-metadata": lambda path: rewrite(path, lambda a: a.pop("metadata")),
    "wrong-shape": lambda path: rewrite(path, lambda a: a.update(coef_0=np.zeros((4, 6)))),
    "wrong-dtype": lambda path: rewrite(
        path, lambda a: a.update(coef_0=a["coef_0"].astype(np.float64))
    ),
    "nan-weights": lambda path: rewrite(path, lambda a: a["intercept_0"].fill(np.nan)),
    "bad-json": lambda path: rewrite(
        path, lambda a: a.update(metadata=np.frombuffer(b"{not json", dtype=np.uint8))
    ),
    "json-list": lambda path: rewrite(
        path, lambda a: a.update(metadata=np.frombuffer(b"[1, 2]", dtype=np.uint8))
    ),
    "bad-activation": lambda path: rewrite(
        path, lambda a: set_metadata(a, params={**_params(a), "activation": "evil"})
    ),
    "bad-estimator": lambda path: rewrite(path, lambda a: set_metadata(a, estimator="os.system")),
    "too-few-classes": lambda path: rewrite(path, lambda a: a.update(classes=np.array([1, 2]))),
    "object-classes": lambda path: _save_object_classes(path),
    "metadata-as-text": lambda path: rewrite(path, lambda a: a.update(metadata=np.array("{}"))),
}


def _params(arrays):
    return json.loads(arrays["metadata"].tobytes())["params"]


def _save_object_classes(path):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["classes"] = np.array([0, "a", 2.5], dtype=object)  # would need pickle to load
    with open(path, "wb") as file:
        np.savez(file, allow_pickle=True, **arrays)


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_damaged_files_raise_model_file_error_naming_the_file(saved, corruption):
    CORRUPTIONS[corruption](saved)
    with pytest.raises(core.ModelFileError) as caught:
        core.load_model(saved)
    message = str(caught.value)
    assert str(saved) in message
    assert "\n" not in message


def test_missing_file_raises_model_file_error(tmp_path):
    with pytest.raises(core.ModelFileError, match="no such model file"):
        core.load_model(tmp_path / "absent.npz")


def test_file_like_objects_work():
    model = fitted(core.MLPRegressor, X[:, 0])
    buffer = io.BytesIO()
    core.save_model(model, buffer)
    buffer.seek(0)
    assert zipfile.is_zipfile(buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(core.load_model(buffer).predict(X), model.predict(X))


def test_saving_an_unfitted_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fitted"):
        core.save_model(core.MLPClassifier(), tmp_path / "m.npz")

"""Model artifacts load without pickle; a truncated or tampered file is a clear ModelFileError.

A trial's model (an MLflow pyfunc: models-from-code + ``.npz`` weights) is written the way the
sweep writes it, then each fault is injected into a copy of its ``ensemble/`` folder.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

import core
from pipeline.model.ensemble import FittedNetwork, FoldEnsemble, ModelSpec
from pipeline.model.preprocessing import CATEGORICAL, NUMERIC, Column
from pipeline.tracking.models import save_pyfunc
from tests.helpers import ROOT


class Payload:
    """Unpickling this would write a marker file: the proof that pickle ran."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle ran"))


IRIS = load_iris()
OLD_ENSEMBLE = ROOT / "tests" / "fixtures" / "model_logged_v0_1" / "artifacts" / "ensemble"
NAMES = tuple(IRIS.feature_names)
SPEC = ModelSpec("classification", tuple(Column(name, NUMERIC) for name in NAMES), "accuracy")


@pytest.fixture(scope="module")
def members():
    X, y = IRIS.data, IRIS.target
    kwargs = {"hidden_layer_sizes": (8,), "iterations": 30, "learning_rate": 0.05}
    return [FittedNetwork.fit(SPEC, kwargs, X, y, seed) for seed in (0, 1)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, members):
    X = IRIS.data
    folder = tmp_path_factory.mktemp("model")
    path = save_pyfunc(FoldEnsemble(members), folder, X[:5])
    return path, X, FoldEnsemble(members).predict(X)


def ensemble_dir(model_path: Path) -> Path:
    found = [p.parent for p in model_path.rglob("ensemble.json")]
    assert len(found) == 1
    return found[0]


def hostile_npz(path: Path, marker: Path, **arrays) -> None:
    payload = Payload()
    Payload.marker = marker
    np.savez(path, **arrays, mean=np.array([payload], dtype=object))


def rewrite_npz(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def edit_manifest(path: Path, **changes) -> None:
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


def edit_member(path: Path, **changes) -> None:
    content = json.loads(path.read_text())
    content["member_settings"][0].update(changes)
    path.write_text(json.dumps(content))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


FAULTS = {
    "member-truncated": ("member_0.npz", truncate),
    "member-random-bytes": (
        "member_0.npz",
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)),
    ),
    "member-missing": ("member_0.npz", Path.unlink),
    "member-empty": ("member_0.npz", lambda p: p.write_bytes(b"")),
    "member-pickled-array": (
        "member_0.npz",
        lambda p: hostile_npz(p, p.with_name("PWNED"), coef_0=np.zeros(1)),
    ),
    "member-coef-reshaped": ("member_0.npz", lambda p: rewrite_npz(p, coef_0=np.zeros((3, 3)))),
    "member-nan-weights": (
        "member_0.npz",
        lambda p: rewrite_npz(p, intercept_0=np.full(8, np.nan, dtype=np.float32)),
    ),
    "member-metadata-garbage": (
        "member_0.npz",
        lambda p: rewrite_npz(p, metadata=np.frombuffer(b"{not json", dtype=np.uint8)),
    ),
    "preprocessor-truncated": ("preprocessor_0.npz", truncate),
    "preprocessor-pickled-array": (
        "preprocessor_0.npz",
        lambda p: hostile_npz(p, p.with_name("PWNED")),
    ),
    "preprocessor-wrong-shape": ("preprocessor_0.npz", lambda p: rewrite_npz(p, mean=np.zeros(7))),
    "preprocessor-zero-scale": ("preprocessor_0.npz", lambda p: rewrite_npz(p, scale=np.zeros(4))),
    "preprocessor-nan-median": (
        "preprocessor_0.npz",
        lambda p: rewrite_npz(p, median=np.full(4, np.nan)),
    ),
    "preprocessor-missing": ("preprocessor_1.npz", Path.unlink),
    "manifest-settings-not-a-list": (
        "ensemble.json",
        lambda p: edit_manifest(p, member_settings=3),
    ),
    "manifest-preprocessing-unknown-format": (
        "ensemble.json",
        lambda p: edit_member(p, preprocessor={"format": "other/9", "columns": []}),
    ),
    "manifest-target-scale-zero": ("ensemble.json", lambda p: edit_member(p, target_scale=0.0)),
    "manifest-target-mean-text": ("ensemble.json", lambda p: edit_member(p, target_mean="big")),
    "manifest-garbage": ("ensemble.json", lambda p: p.write_text("members: two")),
    "manifest-empty": ("ensemble.json", lambda p: p.write_text("")),
    "manifest-too-many": ("ensemble.json", lambda p: p.write_text(json.dumps({"members": 5}))),
    "manifest-negative": ("ensemble.json", lambda p: p.write_text(json.dumps({"members": -1}))),
    "manifest-string": ("ensemble.json", lambda p: p.write_text(json.dumps({"members": "2"}))),
    "manifest-names-short": (
        "ensemble.json",
        lambda p: p.write_text(json.dumps({"members": 2, "feature_names": ["a"]})),
    ),
    "manifest-names-not-strings": (
        "ensemble.json",
        lambda p: p.write_text(json.dumps({"members": 2, "feature_names": [1, 2, 3, 4]})),
    ),
}


def test_model_round_trips_through_mlflow_without_pickle(saved):
    path, X, expected = saved
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pickle"))
    model = mlflow.pyfunc.load_model(str(path))
    np.testing.assert_array_equal(model.predict(X), expected)
    np.testing.assert_array_equal(FoldEnsemble.load(ensemble_dir(path)).predict(X), expected)


def test_a_dataframe_is_read_by_column_name_and_an_array_by_position(saved):
    path, X, expected = saved
    model = mlflow.pyfunc.load_model(str(path))
    frame = pd.DataFrame(X, columns=NAMES)
    for rows in (frame, frame[list(reversed(NAMES))], frame.assign(extra=1.0), X, X.tolist()):
        np.testing.assert_array_equal(model.predict(rows), expected)
    np.testing.assert_array_equal(model.predict(pd.DataFrame(X)), expected)  # columns 0..3
    with pytest.raises(ValueError, match=r"^model input: no column 'petal width \(cm\)'; "):
        model.predict(frame.drop(columns="petal width (cm)"))


def test_a_model_saved_without_column_names_reads_dataframes_by_position(members, tmp_path):
    path = save_pyfunc(FoldEnsemble(members), tmp_path, IRIS.data[:5])
    manifest = ensemble_dir(path) / "ensemble.json"
    content = json.loads(manifest.read_text())
    del content["feature_names"]  # as the first models of mlp-sweep 0.1 were saved
    manifest.write_text(json.dumps(content))
    model = mlflow.pyfunc.load_model(str(path))
    frame = pd.DataFrame(IRIS.data, columns=[f"other {n}" for n in NAMES])
    np.testing.assert_array_equal(model.predict(frame), FoldEnsemble(members).predict(IRIS.data))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_damaged_model_file_is_a_clear_error(saved, tmp_path, fault):
    path, _, _ = saved
    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    folder = ensemble_dir(copy)
    name, damage = FAULTS[fault]
    damage(folder / name)
    with pytest.raises(core.ModelFileError) as raised:
        FoldEnsemble.load(folder)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert str(folder) in message
    assert not (folder / "PWNED").exists()


OLD_FORMAT_FAULTS = {
    "scaler-truncated": ("scaler_0.npz", truncate),
    "scaler-pickled-array": ("scaler_0.npz", lambda p: hostile_npz(p, p.with_name("PWNED"))),
    "scaler-wrong-shape": ("scaler_0.npz", lambda p: rewrite_npz(p, mean=np.zeros(7))),
    "scaler-zero-scale": ("scaler_0.npz", lambda p: rewrite_npz(p, scale=np.zeros(4))),
    "scaler-missing": ("scaler_1.npz", Path.unlink),
}


@pytest.mark.parametrize("fault", sorted(OLD_FORMAT_FAULTS))
def test_a_damaged_model_of_the_old_format_is_a_clear_error(tmp_path, fault):
    """Models logged by mlp-sweep 0.1 keep a scaler file per member (no preprocessing file)."""
    folder = tmp_path / "ensemble"
    shutil.copytree(OLD_ENSEMBLE, folder)
    FoldEnsemble.load(folder)  # intact, it loads
    name, damage = OLD_FORMAT_FAULTS[fault]
    damage(folder / name)
    with pytest.raises(core.ModelFileError) as raised:
        FoldEnsemble.load(folder)
    message = str(raised.value)
    assert len(message.splitlines()) == 1 and str(folder) in message
    assert not (folder / "PWNED").exists()


def test_damaged_model_fails_clearly_through_mlflow(saved, tmp_path):
    path, _, _ = saved
    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    truncate(ensemble_dir(copy) / "member_1.npz")
    with pytest.raises(core.ModelFileError, match="member_1.npz"):
        mlflow.pyfunc.load_model(str(copy))


def test_a_regression_on_mixed_columns_round_trips_and_predicts_in_the_targets_units(tmp_path):
    """Text and missing values in, prices out: the preprocessing and the target's scale are
    saved with the network and read back without pickle."""
    rng = np.random.default_rng(0)
    city = Column("city", CATEGORICAL, ("Lyon", "Nice", "Paris"))
    spec = ModelSpec("regression", (Column("area", NUMERIC), city), "rmse")
    area = rng.uniform(20, 120, 300)
    codes = rng.integers(0, 3, 300).astype(float)
    price = 3000 * area + np.array([0.0, 50_000, 150_000])[codes.astype(int)]
    X = np.column_stack([area, codes])
    X[::17, 0] = np.nan  # missing areas become the training median
    kwargs = {"hidden_layer_sizes": (16,), "iterations": 300, "learning_rate": 0.01}
    member = FittedNetwork.fit(spec, kwargs, X, price, 0)
    ensemble = FoldEnsemble([member])
    path = save_pyfunc(ensemble, tmp_path, X[:5])
    model = mlflow.pyfunc.load_model(str(path))
    rows = pd.DataFrame({"city": ["Paris", "Lyon", None, "Berlin"], "area": [50, 50, None, 80]})
    served = model.predict(rows)
    assert served.shape == (4,) and np.isfinite(served).all()
    encoded = np.array([[50, 2], [50, 0], [np.nan, np.nan], [80, -1]], dtype=float)
    np.testing.assert_array_equal(served, ensemble.predict(encoded))
    # In the target's units: Paris costs about 150,000 more than Lyon for the same area.
    assert 100_000 < served[0] - served[1] < 200_000
    assert member.target_scale > 1000  # the network learnt a standardised target

"""pipeline.model.preprocessing: scikit-learn's ColumnTransformer as the reference, the scaler of
earlier versions bit for bit, raw rows read by column name, and saved files checked."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import core
from pipeline.model import ensemble, preprocessing
from pipeline.model.preprocessing import (
    CATEGORICAL,
    NUMERIC,
    UNSEEN,
    Column,
    TablePreprocessor,
    category_text,
    encode_rows,
    standardisation,
)

nan = np.nan
MARKER = "<missing>"  # what the reference's categorical columns hold where a value is missing


# ------------------------------------------------------------------ against scikit-learn


def random_table(rng):
    """columns, the encoded matrix (n_rows, n_columns), and the training rows' indices.

    Numeric columns with gaps (one sometimes all missing in training, one sometimes
    constant); categorical columns whose last category appears only outside the training rows.
    """
    n_rows = int(rng.integers(20, 120))
    train = np.sort(rng.choice(n_rows, size=int(n_rows * 0.7), replace=False))
    outside = np.setdiff1d(np.arange(n_rows), train)
    columns, data = [], []
    for j in range(int(rng.integers(1, 7))):
        if rng.random() < 0.5:
            values = rng.normal(rng.normal(0, 50), rng.uniform(0.1, 20), size=n_rows)
            if rng.random() < 0.2:
                values[:] = 4.25  # constant: scale 1
            values[rng.random(n_rows) < rng.uniform(0, 0.3)] = nan
            if rng.random() < 0.1:
                values[train] = nan  # no value to take a median of: 0
            columns.append(Column(f"n{j}", NUMERIC))
        else:
            k = int(rng.integers(2, 6))
            values = rng.integers(0, k - 1, size=n_rows).astype(float)
            values[rng.choice(outside)] = k - 1  # seen only outside the training rows
            values[rng.random(n_rows) < rng.uniform(0, 0.3)] = nan
            names = tuple(rng.permutation([f"v{i}" for i in range(k)]))  # not sorted
            columns.append(Column(f"c{j}", CATEGORICAL, names))
        data.append(values)
    return columns, np.column_stack(data), train


def as_reference_frame(columns, X) -> pd.DataFrame:
    """The table scikit-learn sees: numeric values, and category names with a marker."""
    frame = {}
    for j, column in enumerate(columns):
        if column.kind == NUMERIC:
            frame[column.name] = X[:, j]
        else:
            names = np.array([*column.categories, MARKER], dtype=object)
            codes = np.where(np.isnan(X[:, j]), len(column.categories), X[:, j]).astype(int)
            frame[column.name] = names[codes]
    return pd.DataFrame(frame)


def reference_transform(columns, X, train) -> tuple[np.ndarray, list[str]]:
    """The reference's output, and each output column's name in our spelling.

    keep_empty_features=True: a column with no value in the training rows is imputed with 0,
    as ours is, instead of being dropped.
    """
    numeric = [c.name for c in columns if c.kind == NUMERIC]
    categorical = [c.name for c in columns if c.kind == CATEGORICAL]
    numeric_steps = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
    )
    transformer = ColumnTransformer(
        [
            ("num", numeric_steps, numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    )
    frame = as_reference_frame(columns, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown categories at transform
        transformer.fit(frame.iloc[train])
        output = transformer.transform(frame)
    names = []
    for name in transformer.get_feature_names_out():
        step, rest = name.split("__", 1)
        if step == "num":
            names.append(rest)
        else:  # cat__c1_v0 -> c1=v0: our column names hold no "_"
            column, category = rest.split("_", 1)
            names.append(f"{column}={category}")
    return output, names


def test_equals_scikit_learns_column_transformer_on_random_mixed_tables():
    """Outputs follow the table's columns (each categorical column's one-hots in code order
    where it stands); the reference puts numeric first and categories sorted by name, so its
    columns are matched by name."""
    rng = np.random.default_rng(2026)
    tried = {"categorical": 0, "indicator": 0, "empty numeric": 0, "constant": 0}
    for _ in range(60):
        columns, X, train = random_table(rng)
        ours = TablePreprocessor.fit(columns, X[train])
        expected, names = reference_transform(columns, X, train)
        assert sorted(ours.output_names) == sorted(names)
        order = [ours.output_names.index(name) for name in names]
        np.testing.assert_allclose(ours.transform(X)[:, order], expected, rtol=0, atol=1e-12)
        for j, column in enumerate(columns):
            training = X[train, j]
            if column.kind == CATEGORICAL:  # its last category has no training row
                tried["categorical"] += 1
                tried["indicator"] += bool(np.isnan(training).any())
            else:
                tried["empty numeric"] += bool(np.isnan(training).all())
                tried["constant"] += bool(np.nanmax(X[:, j]) == np.nanmin(X[:, j]))
    assert min(tried.values()) >= 3, tried  # the loop did try each of these cases


# ------------------------------------------------------------------------- exact behaviour


CITY = Column("city", CATEGORICAL, ("Paris", "Lyon", "Nice", "Lille"))
AGE = Column("age", NUMERIC)


def test_one_hot_in_code_order_with_a_missing_indicator():
    train = np.array([[2.0, 10.0], [0.0, nan], [nan, 30.0], [2.0, 20.0]])
    fitted = TablePreprocessor.fit([CITY, AGE], train)
    # Lyon (1) and Lille (3) have no training row: no column for them.
    assert fitted.output_names == ("city=Paris", "city=Nice", "city=<missing>", "age")
    assert fitted.n_outputs == 4
    served = np.array([[0.0, 20.0], [1.0, nan], [UNSEEN, 10.0], [nan, 30.0], [3.0, 20.0]])
    scale = np.sqrt(50.0)  # age imputed with its median 20: 10, 20, 30, 20
    expected = np.array(
        [
            [1, 0, 0, 0],
            [0, 0, 0, 0],  # Lyon, a category seen only outside training: zeros
            [0, 0, 0, -10 / scale],  # outside the vocabulary
            [0, 0, 1, 10 / scale],  # missing
            [0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(fitted.transform(served), expected, rtol=0, atol=1e-15)


def test_a_missing_value_with_no_indicator_is_all_zeros():
    fitted = TablePreprocessor.fit([CITY], np.array([[0.0], [2.0]]))
    assert fitted.output_names == ("city=Paris", "city=Nice")
    np.testing.assert_array_equal(fitted.transform(np.array([[nan], [2.0]])), [[0, 0], [0, 1]])


def test_a_numeric_column_with_no_training_value_is_imputed_with_zero():
    fitted = TablePreprocessor.fit([AGE], np.array([[nan], [nan]]))
    np.testing.assert_array_equal(fitted.transform(np.array([[nan], [3.0]])), [[0.0], [3.0]])


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n_features", [1, 4, 30])
def test_numeric_tables_without_gaps_are_standardised_bit_for_bit(order, n_features):
    """As ScaledNetwork has always done: mean, scale = standardisation(X_train), then
    (X - mean) / scale. A sweep seeded before this module keeps its exact scores."""
    rng = np.random.default_rng(n_features)
    X = np.asarray(rng.normal(3, 7, size=(997, n_features)) ** 3, order=order)
    train_index = rng.permutation(997)[:700]
    X_train = X[train_index]  # as the fold worker indexes it
    mean, scale = standardisation(X_train)
    columns = [Column(f"x{i}", NUMERIC) for i in range(n_features)]
    fitted = TablePreprocessor.fit(columns, X_train)
    assert np.array_equal(fitted.transform(X), (X - mean) / scale)
    assert np.array_equal(fitted.transform(X_train), (X_train - mean) / scale)
    # the same bits the scaler gives when the numeric columns sit among categorical ones
    mixed = TablePreprocessor.fit([CITY, *columns], np.column_stack([np.zeros(700), X_train]))
    np.testing.assert_allclose(mixed.transform(np.column_stack([np.zeros(997), X]))[:, 1:],
                               (X - mean) / scale, rtol=1e-13, atol=1e-13)  # fmt: skip


def test_standardisation_is_still_importable_where_it_was():
    from pipeline import fitted_model

    assert ensemble.standardisation is preprocessing.standardisation
    assert fitted_model.standardisation is preprocessing.standardisation
    X = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = standardisation(X)
    np.testing.assert_array_equal(mean, [2.0, 5.0])
    np.testing.assert_array_equal(scale, [1.0, 1.0])  # population std 1; constant -> 1


def test_transform_of_a_large_table_is_vectorised():
    """0.2 s of CPU here; a Python loop over the rows would take several seconds. The bound
    leaves room for a loaded machine (CPU time, not wall time)."""
    rng = np.random.default_rng(0)
    columns = [Column(f"x{i}", NUMERIC) for i in range(40)] + [
        Column(f"c{i}", CATEGORICAL, tuple(f"v{j}" for j in range(8))) for i in range(10)
    ]
    X = np.column_stack(
        [rng.normal(size=(100_000, 40)), rng.integers(-1, 8, size=(100_000, 10)).astype(float)]
    )
    X[rng.random(X.shape) < 0.05] = nan
    fitted = TablePreprocessor.fit(columns, np.where(X[:1000] == UNSEEN, 0.0, X[:1000]))
    started = time.process_time()
    out = fitted.transform(X)
    assert time.process_time() - started < 3.0
    assert out.shape == (100_000, fitted.n_outputs)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((3, 3)), r"expected shape \(n_rows, 2\)"),
        (np.zeros((0, 2)), "no training rows"),
        (np.array([[0.0, np.inf]]), "column 'age': infinite value"),
        (np.array([[4.0, 1.0]]), "column 'city': code 4 is not one of"),
        (np.array([[0.5, 1.0]]), "column 'city': code 0.5"),
        (np.array([[UNSEEN, 1.0]]), "column 'city': code -1"),
    ],
)
def test_fit_refuses_what_the_loader_cannot_have_encoded(X, message):
    with pytest.raises(ValueError, match=message):
        TablePreprocessor.fit([CITY, AGE], X)


def test_transform_refuses_a_code_outside_the_vocabulary_that_is_not_unseen():
    fitted = TablePreprocessor.fit([CITY], np.array([[0.0]]))
    with pytest.raises(ValueError, match="column 'city': code 7"):
        fitted.transform(np.array([[7.0]]))
    with pytest.raises(ValueError, match=r"expected shape \(n_rows, 1\)"):
        fitted.transform(np.zeros(3))


def test_columns_are_checked():
    with pytest.raises(ValueError, match="names repeat"):
        TablePreprocessor.fit([AGE, AGE], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="kind must be one of"):
        Column("x", "text")
    with pytest.raises(ValueError, match="distinct"):
        Column("x", CATEGORICAL, ("a", "a"))
    with pytest.raises(ValueError, match="no categories"):
        Column("x", NUMERIC, ("a",))
    assert Column("x", CATEGORICAL, ["a", "b"]).categories == ("a", "b")  # hashable again


# ---------------------------------------------------------------------------- saved files


def fitted_example() -> TablePreprocessor:
    columns = [AGE, CITY, Column("size", NUMERIC), Column("ok", CATEGORICAL, ("False", "True"))]
    X = np.array(
        [[31.0, 0.0, 1.5, 1.0], [nan, 2.0, 2.5, 0.0], [45.0, nan, nan, 1.0], [52.0, 2.0, 0.5, 1.0]]
    )
    return TablePreprocessor.fit(columns, X)


def save(fitted: TablePreprocessor, directory) -> tuple[dict, dict]:
    manifest, arrays = fitted.to_saved()
    (directory / "preprocessing.json").write_text(json.dumps(manifest))
    np.savez(directory / "preprocessing.npz", **arrays)
    return manifest, arrays


def test_a_round_trip_through_json_and_npz_transforms_the_same(tmp_path):
    fitted = fitted_example()
    save(fitted, tmp_path)
    manifest = json.loads((tmp_path / "preprocessing.json").read_text())
    with np.load(tmp_path / "preprocessing.npz", allow_pickle=False) as arrays:
        loaded = TablePreprocessor.from_saved(manifest, arrays)
    assert loaded.columns == fitted.columns
    assert loaded.output_names == fitted.output_names
    served = np.array([[40.0, 1.0, nan, nan], [nan, UNSEEN, 3.0, 0.0], [20.0, 0.0, 1.0, 1.0]])
    assert np.array_equal(loaded.transform(served), fitted.transform(served))
    assert loaded.to_saved()[0] == fitted.to_saved()[0]


def test_the_manifest_is_plain_json():
    manifest, arrays = fitted_example().to_saved()
    assert json.loads(json.dumps(manifest)) == manifest
    assert manifest["columns"][1] == {
        "name": "city",
        "kind": "categorical",
        "categories": ["Paris", "Lyon", "Nice", "Lille"],
        "kept": [0, 2],
        "missing_indicator": True,
    }
    assert sorted(arrays) == ["mean", "median", "scale"]
    assert all(a.dtype == np.float64 and a.shape == (2,) for a in arrays.values())


def damage_manifest(change):
    def damaged(manifest, arrays):
        change(manifest)
        return manifest, arrays

    return damaged


def damage_array(key, value):
    def damaged(manifest, arrays):
        arrays[key] = value
        return manifest, arrays

    return damaged


def drop_array(manifest, arrays):
    del arrays["scale"]
    return manifest, arrays


def city(manifest) -> dict:
    return manifest["columns"][1]


DAMAGES = {
    "format": (damage_manifest(lambda m: m.update(format="other/9")), "format must be"),
    "no columns": (damage_manifest(lambda m: m.update(columns=[])), "non-empty list"),
    "columns not a list": (damage_manifest(lambda m: m.update(columns={})), "non-empty list"),
    "column not an object": (
        damage_manifest(lambda m: m["columns"].__setitem__(0, "age")),
        "column 0 must be an object",
    ),
    "name not a string": (damage_manifest(lambda m: city(m).update(name=3)), "name must be"),
    "unknown kind": (damage_manifest(lambda m: city(m).update(kind="text")), "kind must be"),
    "numeric with categories": (
        damage_manifest(lambda m: m["columns"][0].update(categories=["a"])),
        "'age'.*a numeric column has no categories",
    ),
    "category not a string": (
        damage_manifest(lambda m: city(m).update(categories=["Paris", 2, "Nice", "Lille"])),
        "'city'.*categories must be",
    ),
    "repeated category": (
        damage_manifest(lambda m: city(m).update(categories=["Paris"] * 4)),
        "distinct strings",
    ),
    "kept out of range": (damage_manifest(lambda m: city(m).update(kept=[0, 4])), "kept must"),
    "kept negative": (damage_manifest(lambda m: city(m).update(kept=[-1, 2])), "kept must"),
    "kept not increasing": (damage_manifest(lambda m: city(m).update(kept=[2, 0])), "kept must"),
    "kept a bool": (damage_manifest(lambda m: city(m).update(kept=[True])), "kept must"),
    "kept a float": (damage_manifest(lambda m: city(m).update(kept=[0.0, 2.0])), "kept must"),
    "indicator": (
        damage_manifest(lambda m: city(m).update(missing_indicator="yes")),
        "missing_indicator",
    ),
    "repeated name": (
        damage_manifest(lambda m: m["columns"][2].update(name="age")),
        "column names repeat",
    ),
    "no scale": (drop_array, "no array 'scale'"),
    "short mean": (damage_array("mean", np.zeros(1)), r"mean has shape \(1,\)"),
    "int median": (damage_array("median", np.zeros(2, dtype=np.int64)), "median .*dtype int64"),
    "NaN mean": (damage_array("mean", np.array([0.0, nan])), "mean contains NaN"),
    "infinite median": (damage_array("median", np.array([np.inf, 0.0])), "median contains"),
    "zero scale": (damage_array("scale", np.array([1.0, 0.0])), "scale must be > 0"),
    "negative scale": (damage_array("scale", np.array([-1.0, 2.0])), "scale must be > 0"),
    "not a manifest": (lambda m, a: ([m], a), "format must be"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_each_damaged_save_raises_model_file_error(damage, tmp_path):
    change, message = DAMAGES[damage]
    manifest, arrays = change(*fitted_example().to_saved())
    np.savez(tmp_path / "p.npz", **arrays)  # through the file, as a served model reads it
    with (
        np.load(tmp_path / "p.npz", allow_pickle=False) as saved,
        pytest.raises(core.ModelFileError, match=message),
    ):
        TablePreprocessor.from_saved(json.loads(json.dumps(manifest)), saved)


def test_a_pickled_array_is_refused_not_unpickled(tmp_path):
    manifest, arrays = fitted_example().to_saved()
    arrays["mean"] = np.array([{"evil": 1}, 2.0], dtype=object)
    np.savez(tmp_path / "p.npz", **arrays)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as saved:
        with pytest.raises(core.ModelFileError, match="'mean' is unreadable"):
            TablePreprocessor.from_saved(manifest, saved)


def test_a_corrupted_archive_member_raises_model_file_error(tmp_path):
    manifest, arrays = fitted_example().to_saved()
    path = tmp_path / "p.npz"
    np.savez(path, **arrays)
    content = bytearray(path.read_bytes())
    at = content.index(np.float64(arrays["scale"][0]).tobytes())  # inside the stored member
    content[at : at + 8] = np.float64(7.0).tobytes()  # its CRC no longer matches
    path.write_bytes(bytes(content))
    with np.load(path, allow_pickle=False) as saved:
        with pytest.raises(core.ModelFileError, match="unreadable"):
            TablePreprocessor.from_saved(manifest, saved)


# -------------------------------------------------------------------------------- raw rows


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        (nan, None),
        (np.float32("nan"), None),
        (pd.NA, None),
        (pd.NaT, None),
        ("", None),
        (True, "True"),
        (np.bool_(False), "False"),
        (3, "3"),
        (np.int64(3), "3"),
        (3.0, "3"),
        (np.float64(3.0), "3"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (np.float64(2.5), "2.5"),
        ("Paris", "Paris"),
        (" 3.0 ", " 3.0 "),  # text stays text
    ],
)
def test_category_text(value, text):
    assert category_text(value) == text


COLUMNS = [
    Column("age", NUMERIC),
    Column("city", CATEGORICAL, ("Paris", "Lyon")),
    Column("zip", CATEGORICAL, ("75001", "69001")),
    Column("member", CATEGORICAL, ("False", "True")),
    Column("height", NUMERIC),
]


def served_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],  # not a column of the model: ignored
            "height": [1.5, None, nan, True, "2"],
            "member": [True, False, None, True, pd.NA],
            "zip": [75001.0, nan, 69001.0, 75001.0, 13001.0],  # ints read as floats with a gap
            "city": ["Lyon", None, pd.NA, "Nice", nan],  # Nice: not in the vocabulary
            "age": pd.array([40, None, 30, 20, 10], dtype="Int64"),
        }
    )


def test_encode_rows_reads_a_dataframe_by_column_name():
    expected = np.array(
        [
            [40.0, 1.0, 0.0, 1.0, 1.5],
            [nan, nan, nan, 0.0, nan],
            [30.0, nan, 1.0, nan, nan],
            [20.0, UNSEEN, 0.0, 1.0, 1.0],
            [10.0, nan, UNSEEN, nan, 2.0],
        ]
    )
    np.testing.assert_array_equal(encode_rows(served_frame(), COLUMNS), expected)


def test_encode_rows_gives_the_same_codes_for_every_spelling_of_a_category():
    spellings = {
        "zip": [75001, 75001.0, "75001", np.int64(75001), np.float32(75001)],
        "member": [True, "True", np.bool_(True), True, True],
    }
    as_objects = {k: np.array(v, dtype=object) for k, v in spellings.items()}
    for rows in (spellings, as_objects, pd.DataFrame(spellings)):
        encoded = encode_rows(rows, [COLUMNS[2], COLUMNS[3]])
        np.testing.assert_array_equal(encoded, [[0.0, 1.0]] * 5)


def test_encode_rows_reads_pandas_text_and_categorical_dtypes():
    frame = pd.DataFrame(
        {
            "city": pd.Series(["Paris", None, "Oslo"], dtype="string"),
            "zip": pd.Categorical(["69001", None, "75001"]),
        }
    )
    encoded = encode_rows(frame, [COLUMNS[1], COLUMNS[2]])
    np.testing.assert_array_equal(encoded, [[0.0, 1.0], [nan, nan], [UNSEEN, 0.0]])


@pytest.mark.parametrize(
    "heights", [[1.0, "abc", 2.0], ["1.5", "tall"], pd.Series(["x"], dtype="string")]
)
def test_a_value_that_is_not_a_number_is_named_with_its_column(heights):
    with pytest.raises(ValueError, match="column 'height': '(abc|tall|x)' is not a number"):
        encode_rows({"height": heights}, [COLUMNS[4]])


def test_dates_are_not_numbers():
    dates = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"]))
    with pytest.raises(ValueError, match="column 'height': datetime64"):
        encode_rows({"height": dates}, [COLUMNS[4]])


def test_missing_columns_are_named_up_to_five():
    with pytest.raises(ValueError, match=r"^no column 'city', 'member'$"):
        encode_rows(served_frame().drop(columns=["city", "member"]), COLUMNS)
    many = [Column(f"x{i}", NUMERIC) for i in range(8)]
    with pytest.raises(ValueError, match=r"^no column 'x0', 'x1', 'x2', 'x3', 'x4' and 3 more$"):
        encode_rows({"y": [1.0]}, many)


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="column 'height': 2 values, the others have 1"):
        encode_rows({"age": [1.0], "height": [1.0, 2.0]}, [COLUMNS[0], COLUMNS[4]])


def test_encoded_rows_fit_and_transform_end_to_end():
    """What the loader and the served model do: encode, fit on some rows, transform others."""
    encoded = encode_rows(served_frame(), COLUMNS)
    fitted = TablePreprocessor.fit(COLUMNS, encoded[:3])
    assert fitted.output_names == (
        "age",
        "city=Lyon",
        "city=<missing>",
        "zip=75001",
        "zip=69001",
        "zip=<missing>",
        "member=False",
        "member=True",
        "member=<missing>",
        "height",
    )
    out = fitted.transform(encoded[3:])
    np.testing.assert_array_equal(out[:, 1:9], [[0, 0, 1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0, 0, 1]])

"""Data sets for the sweep: scikit-learn's bundled ones, two moons, or a user's CSV or Parquet
file with numeric, true/false and text columns and missing values.

Everything is checked here, once, before the first trial: a bad file or column raises
:class:`UserInputError` naming it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from pipeline.errors import UserInputError
from pipeline.model.metrics import CLASSIFICATION, REGRESSION
from pipeline.model.preprocessing import CATEGORICAL, NUMERIC, Column, category_text

BUNDLED_LOADERS = {
    "digits": sk_datasets.load_digits,
    "iris": sk_datasets.load_iris,
    "wine": sk_datasets.load_wine,
    "breast_cancer": sk_datasets.load_breast_cancer,
    "diabetes": sk_datasets.load_diabetes,
}
BUNDLED_REGRESSIONS = frozenset({"diabetes"})
TABLE_FORMATS = ("csv", "parquet")  # dataset=csv|parquet: a user's file
# An integer target with at most this many distinct values is taken for class labels; with more,
# for a quantity (a regression), unless dataset.task says otherwise.
MAX_INFERRED_CLASSES = 20
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Dataset:
    """A table to learn from.

    X : ndarray of shape (n_samples, n_columns), float64, encoded as
        :mod:`pipeline.model.preprocessing` reads it: numeric columns hold their values,
        categorical ones their category codes, NaN where a value is missing
    y : ndarray of shape (n_samples,): the original labels (ints or strings) of a
        classification, float64 values of a regression
    columns : the feature columns, in X's order (names, kinds, categories)
    task : "classification" or "regression"
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    columns: tuple[Column, ...]
    task: str = CLASSIFICATION
    # Where the labels come from, for messages: "dataset=iris" or "column 'label' of data.csv".
    label_source: str = "dataset"
    # Why the task is what it is, said once in the output: "inferred: 12 distinct integers".
    task_reason: str = ""

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def n_inputs(self) -> int:
        """The network's input width at most: one per numeric column, one per category (and one
        for a missing value) of each categorical column."""
        return sum(1 if c.kind == NUMERIC else len(c.categories) + 1 for c in self.columns)

    @property
    def n_outputs(self) -> int:
        return len(np.unique(self.y)) if self.task == CLASSIFICATION else 1


@dataclass(frozen=True)
class Split:
    """The training split (searched with k-fold CV) and the held-out test split (scored once)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def load_dataset(cfg, seed: int) -> Dataset:
    """Load the data set described by the ``dataset`` config node."""
    if cfg.name in BUNDLED_LOADERS:
        bunch = BUNDLED_LOADERS[cfg.name]()
        names = tuple(str(n) for n in getattr(bunch, "feature_names", range(bunch.data.shape[1])))
        columns = tuple(Column(name, NUMERIC) for name in names)
        natural = REGRESSION if cfg.name in BUNDLED_REGRESSIONS else CLASSIFICATION
        source = f"dataset={cfg.name}"
        task = cfg.get("task") or natural
        y = target_values(pd.Series(bunch.target), task, source)
        reason = "set by dataset.task" if cfg.get("task") else ""
        X = bunch.data.astype(np.float64)
        return Dataset(cfg.name, X, y, columns, task, source, reason)
    if cfg.name == "moons":
        X, y = sk_datasets.make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=seed)
        columns = (Column("x0", NUMERIC), Column("x1", NUMERIC))
        return Dataset("moons", X, y, columns, CLASSIFICATION, "dataset=moons")
    if cfg.name in TABLE_FORMATS:
        return load_table(cfg)
    raise UserInputError(f"dataset.name: unknown data set {cfg.name!r}")


def load_table(cfg) -> Dataset:
    """A user's CSV or Parquet file: ``cfg.target`` is the column to predict, the others (less
    ``cfg.drop``) are features of any kind, with missing values."""
    path, target = Path(cfg.path), cfg.target
    key = f"dataset.path={path}"
    frame = read_parquet_frame(path, key) if cfg.name == "parquet" else read_csv_frame(path, key)
    frame = leave_out(frame, cfg, target, path)
    labels = target_column(frame, target, path, key)
    source = f"column {target!r} of {path}"
    task, reason = cfg.get("task"), "set by dataset.task"
    if not task:
        task, reason = infer_task(labels)
    y = target_values(labels, task, source)
    columns, X = encode_features(frame, labels, cfg, key)
    return Dataset(path.stem, X, y, columns, task, source, reason)


def read_csv_frame(path: Path, key: str) -> pd.DataFrame:
    """The file as a table with a header of distinct names and at least one data row."""
    if path.is_dir():
        raise UserInputError(f"{key}: is a folder; give the path of a CSV file")
    if not path.is_file():
        raise UserInputError(f"{key}: file not found (give an existing CSV file)")
    try:
        frame = pd.read_csv(path)
        with open(path, newline="", encoding="utf-8") as file:
            header = next(csv.reader(file), [])
    except pd.errors.EmptyDataError:
        raise UserInputError(
            f"{key}: the file is empty; it needs a header row and data rows"
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError, csv.Error, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        with open(path, "rb") as file:
            parquet = file.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
        hint = "; it is a Parquet file: use dataset=parquet" if parquet else ""
        raise UserInputError(f"{key}: cannot be read as CSV ({reason}){hint}") from None
    # pandas renames a repeated name ("x", "x.1"), which would turn a copy of the target or of
    # a feature into a column of another name.
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserInputError(
            f"{key}: column name {repeated[0]!r} appears {header.count(repeated[0])} times in "
            "the header; give each column its own name"
        )
    if frame.empty:
        raise UserInputError(f"{key}: has a header but no data rows")
    return frame


def read_parquet_frame(path: Path, key: str) -> pd.DataFrame:
    """The Parquet file as a table with at least one data row."""
    if path.is_dir():
        raise UserInputError(f"{key}: is a folder; give the path of a Parquet file")
    if not path.is_file():
        raise UserInputError(f"{key}: file not found (give an existing Parquet file)")
    try:
        with open(path, "rb") as file:
            magic = file.read(len(PARQUET_MAGIC))
        if magic != PARQUET_MAGIC:
            raise ValueError("it does not start with Parquet's magic bytes PAR1")
        frame = pd.read_parquet(path)
    except ImportError as error:  # pyarrow is a dependency; an incomplete install says so
        raise UserInputError(f"{key}: reading Parquet needs pyarrow ({error})") from None
    except Exception as error:  # pyarrow's errors have no common base besides Exception
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(f"{key}: cannot be read as Parquet ({reason})") from None
    if frame.empty:
        raise UserInputError(f"{key}: has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def leave_out(frame: pd.DataFrame, cfg, target: str, path: Path) -> pd.DataFrame:
    """``frame`` without ``dataset.drop``; every column named in ``dataset.drop`` and
    ``dataset.categorical`` must exist, and neither may name the target."""
    for key in ("drop", "categorical"):
        for name in cfg.get(key) or ():
            if name == target:
                raise UserInputError(
                    f"dataset.{key}: names the target column {target!r}; give feature columns"
                )
            if name not in frame.columns:
                raise UserInputError(
                    f"dataset.{key}: no column {name!r} in {path} (columns: "
                    f"{', '.join(map(str, frame.columns[:20]))})"
                )
    return frame.drop(columns=list(cfg.get("drop") or ()))


def target_column(frame: pd.DataFrame, target: str, path: Path, key: str) -> pd.Series:
    """The target, taken out of ``frame``: present and complete."""
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20]))
        hint = ""
        if frame.shape[1] == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
            hint = "; the file seems not to be comma-separated: save it with commas"
        raise UserInputError(
            f"dataset.target={target}: no such column in {path} (columns: {columns}){hint}"
        )
    labels = frame.pop(target)
    if labels.isna().any():
        raise UserInputError(
            f"{key}: column {target!r} has missing values in the target; fill or drop those rows"
        )
    return labels


def infer_task(labels: pd.Series) -> tuple[str, str]:
    """Classification or regression, from the target's values, and why (said once in the output):
    text or true/false values are classes; decimal numbers a quantity; integers are classes when
    they take few distinct values (:data:`MAX_INFERRED_CLASSES`), else a quantity."""
    if pd.api.types.is_bool_dtype(labels):
        return CLASSIFICATION, "inferred: true/false values"
    if not pd.api.types.is_numeric_dtype(labels):
        return CLASSIFICATION, "inferred: text values"
    if pd.api.types.is_float_dtype(labels):
        return REGRESSION, "inferred: decimal numbers"
    distinct = labels.nunique()
    if distinct <= MAX_INFERRED_CLASSES:
        return CLASSIFICATION, f"inferred: {distinct} distinct integers"
    return REGRESSION, f"inferred: {distinct} distinct integers"


def target_values(labels: pd.Series, task: str, source: str) -> np.ndarray:
    """The target as the task needs it: class labels (ints, strings) or float64 values.

    Refuses a target with one value, text for a regression, fractions for a classification.
    """
    distinct = labels.unique()
    if len(distinct) < 2:
        what = "one class" if task == CLASSIFICATION else "one value"
        raise UserInputError(
            f"{source}: holds {what} ({str(distinct[0])!r}) in every row; a model needs at least "
            "two, so add rows or choose another target column"
        )
    if task == REGRESSION:
        if pd.api.types.is_bool_dtype(labels) or not pd.api.types.is_numeric_dtype(labels):
            example = labels[pd.to_numeric(labels, errors="coerce").isna()].iloc[0]
            raise UserInputError(
                f"{source}: holds text ({str(example)!r}), not numbers, so it cannot be a "
                "regression target; set dataset.task=classification or choose another column"
            )
        values = labels.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise UserInputError(f"{source}: holds infinite values; clean them")
        check_standardisable(values, source)
        return values
    if pd.api.types.is_float_dtype(labels):
        fractional = np.mod(labels.to_numpy(), 1) != 0
        if fractional.any():
            # scikit-learn's splitters take these for a regression target, not for classes.
            raise UserInputError(
                f"{source}: holds non-integer numbers (e.g. {labels[fractional].iloc[0]}), not "
                "classes; set dataset.task=regression or give class labels"
            )
    # Labels read by pandas may be an object array; a fixed-width string array keeps them
    # storable without pickle, while integer labels stay integers.
    y = labels.to_numpy()
    return y.astype(str) if y.dtype == object else y


def encode_features(
    frame: pd.DataFrame, labels: pd.Series, cfg, key: str
) -> tuple[tuple[Column, ...], np.ndarray]:
    """The feature columns and X encoded for :mod:`pipeline.model.preprocessing`: of shape
    (n_samples, n_columns), float64, NaN where a value is missing.

    Numbers and true/false values are numeric (unless named in ``dataset.categorical``), any
    other column categorical; a categorical column with more than ``dataset.max_categories``
    distinct values is refused (an id or free text would become thousands of one-hot columns).
    """
    if frame.shape[1] == 0:
        raise UserInputError(f"{key}: has no feature columns besides the target {labels.name!r}")
    categorical = set(cfg.get("categorical") or ())
    columns, encoded = [], []
    for name in frame.columns:
        series = frame[name]
        check_not_target(series, labels, key)
        if name in categorical or not (
            pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
        ):
            column, values = categorical_column(str(name), series, cfg.max_categories, key)
        else:
            column, values = numeric_column(str(name), series, key)
        columns.append(column)
        encoded.append(values)
    return tuple(columns), np.column_stack(encoded)


def numeric_column(name: str, series: pd.Series, key: str) -> tuple[Column, np.ndarray]:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        raise UserInputError(f"{key}: column {name!r} has infinite values; clean them")
    if np.isnan(values).all():
        raise UserInputError(
            f"{key}: column {name!r} has no values at all; leave it out with dataset.drop=[{name}]"
        )
    check_standardisable(values, f"{key}: column {name!r}")
    return Column(name, NUMERIC), values


def check_standardisable(values: np.ndarray, what: str) -> None:
    """Standardisation squares the values: ones so large that their variance overflows would
    reach every network as infinities, and every trial would fail."""
    with np.errstate(over="ignore", invalid="ignore"):
        spread = np.nanvar(values)
    if not np.isfinite(spread):
        largest = np.nanmax(np.abs(values))
        raise UserInputError(
            f"{what} holds values too large to standardise (up to {largest:.3g}); rescale it "
            "(divide it by a power of ten) or leave it out"
        )


def categorical_column(
    name: str, series: pd.Series, max_categories: int, key: str
) -> tuple[Column, np.ndarray]:
    """The column's categories (sorted, spelled by :func:`category_text`) and its codes."""
    texts = [category_text(value) for value in series.to_numpy(dtype=object)]
    categories = tuple(sorted({t for t in texts if t is not None}))
    if not categories:
        raise UserInputError(
            f"{key}: column {name!r} has no values at all; leave it out with dataset.drop=[{name}]"
        )
    if len(categories) > max_categories:
        raise UserInputError(
            f"{key}: column {name!r} holds {len(categories)} distinct texts, more than "
            f"dataset.max_categories={max_categories} (an id or free text, not categories); "
            f"leave it out with dataset.drop=[{name}] or raise dataset.max_categories"
        )
    code = {text: float(i) for i, text in enumerate(categories)}
    values = np.array([np.nan if t is None else code[t] for t in texts], dtype=np.float64)
    return Column(name, CATEGORICAL, categories), values


def check_not_target(series: pd.Series, labels: pd.Series, key: str) -> None:
    """A feature that holds the target again would let every trial read the answer."""
    if series.isna().any():
        return  # the target has no missing value, so this column differs from it
    same = series.to_numpy(dtype=object).astype(str) == labels.to_numpy(dtype=object).astype(str)
    numeric = pd.api.types.is_numeric_dtype(series) and pd.api.types.is_numeric_dtype(labels)
    if numeric:
        same = np.asarray(series.to_numpy(dtype=np.float64) == labels.to_numpy(dtype=np.float64))
    if same.all():
        raise UserInputError(
            f"{key}: column {series.name!r} holds the target {labels.name!r} again (the same "
            "value in every row), so every trial would read the answer; drop that column"
        )


def check_targets(data: Dataset, folds: int, test_size: float) -> None:
    """Fail early when the target cannot support the hold-out split and ``folds`` folds:
    stratified, for a classification, with a member of each class in each; plain, for a
    regression, with at least two rows in each fold (R² needs them)."""
    if data.task == CLASSIFICATION:
        check_class_counts(data.y, folds, test_size, data.label_source)
        return
    n_test = int(np.ceil(len(data.y) * test_size))
    n_train = len(data.y) - n_test
    if n_train < 2 * folds:
        raise UserInputError(
            f"cv.folds={folds}: the training split of {data.label_source} has {n_train} rows, "
            "fewer than 2 per fold; lower cv.folds or cv.test_size, or add data"
        )
    if n_test < 2:
        raise UserInputError(
            f"cv.test_size={test_size}: the test split of {data.label_source} would have "
            f"{n_test} row; choose a cv.test_size that leaves it at least 2"
        )


def check_class_counts(
    y: np.ndarray, folds: int, test_size: float, source: str = "dataset"
) -> None:
    """Fail early when the labels cannot support a stratified hold-out and ``folds`` folds.

    y : ndarray of shape (n_samples,); ``source`` says where the labels come from.
    """
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise UserInputError(
            f"{source}: only one class ({str(classes[0])!r}) in the labels; classification "
            "needs at least two, so add rows of another class or choose another target column"
        )
    # scikit-learn's split: ceil(n * test_size) test rows; stratified, it needs one per class.
    n_test = int(np.ceil(len(y) * test_size))
    if n_test < len(classes) or len(y) - n_test < len(classes):
        side, rows = ("test", n_test) if n_test < len(classes) else ("training", len(y) - n_test)
        raise UserInputError(
            f"cv.test_size={test_size}: the {side} split of {source} would have {rows} rows, "
            f"fewer than its {len(classes)} classes; choose a cv.test_size that leaves each "
            "split at least one row per class"
        )
    smallest = int(counts.min())
    train_members = smallest - int(np.ceil(smallest * test_size))
    if train_members < folds:
        label = classes[np.argmin(counts)]
        raise UserInputError(
            f"cv.folds={folds}: class {str(label)!r} of {source} has only {smallest} samples "
            f"({train_members} after the test split); lower cv.folds or add data"
        )


def split_train_test(data: Dataset, test_size: float, seed: int) -> Split:
    """Hold out a test split that no trial ever sees: stratified for a classification, random
    for a regression."""
    stratify = data.y if data.task == CLASSIFICATION else None
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=test_size, stratify=stratify, random_state=seed
    )
    return Split(X_train, y_train, X_test, y_test)

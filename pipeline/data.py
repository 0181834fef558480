"""Data sets for the sweep: scikit-learn's bundled ones, two moons, or a user's CSV file.

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

BUNDLED_LOADERS = {
    "digits": sk_datasets.load_digits,
    "iris": sk_datasets.load_iris,
    "wine": sk_datasets.load_wine,
    "breast_cancer": sk_datasets.load_breast_cancer,
}


@dataclass(frozen=True)
class Dataset:
    """A labelled table.

    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), the original labels (ints or strings)
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    # Where the labels come from, for messages: "dataset=iris" or "column 'label' of data.csv".
    label_source: str = "dataset"


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
        return Dataset(
            cfg.name, bunch.data.astype(np.float64), bunch.target, names, f"dataset={cfg.name}"
        )
    if cfg.name == "moons":
        X, y = sk_datasets.make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=seed)
        return Dataset("moons", X, y, ("x0", "x1"), "dataset=moons")
    if cfg.name == "csv":
        return load_csv(Path(cfg.path), cfg.target)
    raise UserInputError(f"dataset.name: unknown data set {cfg.name!r}")


def load_csv(path: Path, target: str) -> Dataset:
    """Read a CSV file whose ``target`` column holds the labels and all other columns numbers."""
    key = f"dataset.path={path}"
    frame = read_csv_frame(path, key)
    labels = target_column(frame, target, path, key)
    X = feature_matrix(frame, labels, target, key)
    # Labels read by pandas may be an object array; a fixed-width string array keeps them
    # storable without pickle, while integer labels stay integers.
    y = labels.to_numpy()
    if y.dtype == object:
        y = y.astype(str)
    source = f"column {target!r} of {path}"
    return Dataset(path.stem, X, y, tuple(str(c) for c in frame.columns), source)


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
        raise UserInputError(f"{key}: cannot be read as CSV ({reason})") from None
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


def target_column(frame: pd.DataFrame, target: str, path: Path, key: str) -> pd.Series:
    """The labels, taken out of ``frame``: present, complete, class labels."""
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
            f"{key}: column {target!r} has missing labels; fill or drop those rows"
        )
    fractional = np.mod(labels.to_numpy(), 1) != 0 if labels.dtype.kind == "f" else None
    if fractional is not None and fractional.any():
        # scikit-learn's splitters take these for a regression target, and this sweep classifies.
        example = labels[fractional].iloc[0]
        raise UserInputError(
            f"{key}: column {target!r} holds non-integer numbers (e.g. {example}), not classes; "
            "give class labels (integers or strings)"
        )
    return labels


def feature_matrix(frame: pd.DataFrame, labels: pd.Series, target: str, key: str) -> np.ndarray:
    """The feature columns as float64 (n_samples, n_features): numeric, finite, none of them
    the target again."""
    if frame.shape[1] == 0:
        raise UserInputError(f"{key}: has no feature columns besides the target {target!r}")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise UserInputError(
                f"{key}: column {column!r} is not numeric; encode it as numbers or drop it"
            )
    X = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        column = frame.columns[np.argmax(bad.any(axis=0))]
        raise UserInputError(f"{key}: column {column!r} has NaN or infinite values; clean them")
    if pd.api.types.is_numeric_dtype(labels):
        answer = labels.to_numpy(dtype=np.float64)
        copies = [c for i, c in enumerate(frame.columns) if np.array_equal(X[:, i], answer)]
        if copies:
            raise UserInputError(
                f"{key}: column {copies[0]!r} holds the target {target!r} again (the same value "
                "in every row), so every trial would read the answer; drop that column"
            )
    return X


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
    """Hold out a stratified test split that no trial ever sees."""
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=test_size, stratify=data.y, random_state=seed
    )
    return Split(X_train, y_train, X_test, y_test)

"""From an encoded table to network inputs: imputation, one-hot encoding, standardisation.

The data loader encodes a raw table once into a float64 matrix (n_rows, n_columns): a numeric
column holds its values, NaN where missing; a categorical column holds codes 0..k-1 (as floats)
into its vocabulary ``Column.categories``, NaN where missing. :class:`TablePreprocessor` is
fitted on the training rows of a fold only and turns such a matrix into the network's inputs;
:func:`encode_rows` reads raw rows (a served DataFrame) into the same matrix.

NumPy only, like the rest of what runs in a fold process (which imports neither scikit-learn
nor pandas); tests/pipeline/test_preprocessing.py holds it against scikit-learn's
ColumnTransformer. Saved as JSON + arrays, never pickle.
"""

from __future__ import annotations

import math
import numbers
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

import core

NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)
UNSEEN = -1.0  # the code of a category outside the vocabulary (a served row): one-hot zeros
MISSING_NAME = "<missing>"  # output_names: "city=<missing>", the missing-value indicator
SAVED_FORMAT = "table-preprocessor/1"


@dataclass(frozen=True)
class Column:
    """One column of the encoded matrix. CATEGORICAL: code i stands for ``categories[i]``."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"column name must be a string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(
                f"column {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        categories = tuple(self.categories)
        object.__setattr__(self, "categories", categories)
        if self.kind == NUMERIC and categories:
            raise ValueError(f"column {self.name!r}: a numeric column has no categories")
        if not all(isinstance(c, str) for c in categories):
            raise ValueError(f"column {self.name!r}: categories must be strings")
        if len(set(categories)) != len(categories):
            raise ValueError(f"column {self.name!r}: categories must be distinct")


# ------------------------------------------------------------------------------ raw values


def _is_missing(value) -> bool:
    """None, a float NaN, and pandas' NA and NaT (recognised by type, pandas not imported)."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    kind = type(value)
    return kind.__module__.startswith("pandas") and kind.__name__ in ("NAType", "NaTType")


def category_text(value) -> str | None:
    """The one spelling of a category value, used both when the loader builds a vocabulary and
    when a served row is read.

    Missing (None, NaN, pd.NA, pd.NaT, the empty string) -> None; bool -> "True"/"False"; a
    number with an integral value -> its int's text ("3.0" and 3 both -> "3", because pandas
    reads an integer column with a gap as floats); anything else -> str(value). The empty
    string counts as missing because pandas reads an empty CSV cell as NaN, so no vocabulary
    can hold it.
    """
    if _is_missing(value) or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _numeric_value(name: str, value) -> float:
    """A raw value of a numeric column as a float: NaN when missing (None, NaN, pd.NA, an empty
    or blank string), the text of a number as that number, else ValueError naming the column."""
    if _is_missing(value) or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"column {name!r}: {value!r} is not a number") from None


def _column_values(rows, name: str, n_rows: int | None) -> np.ndarray:
    values = rows[name]
    # A list mixing numbers and strings would become an array of strings ("75001.0"); keep
    # its values as they are. Arrays and pandas columns keep their own dtype (the fast path).
    values = np.asarray(values, dtype=object if isinstance(values, list | tuple) else None)
    if values.ndim != 1:
        raise ValueError(f"column {name!r}: expected one value per row, got shape {values.shape}")
    if n_rows is not None and values.shape[0] != n_rows:
        raise ValueError(f"column {name!r}: {values.shape[0]} values, the others have {n_rows}")
    return values


def _encode_numeric(name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    if values.dtype.kind in "Mm":  # dates and durations would pass as their integer ticks
        raise ValueError(f"column {name!r}: {values.dtype} values are not numbers")
    if values.dtype.kind == "O":
        try:  # None -> NaN, numbers and texts of numbers -> floats, in one pass
            return values.astype(np.float64)
        except (TypeError, ValueError):
            pass  # pd.NA, "" or a non-number: value by value, for the message
    return np.array([_numeric_value(name, v) for v in values.tolist()], dtype=np.float64)


def _encode_categorical(column: Column, values: np.ndarray) -> np.ndarray:
    codes = {text: float(code) for code, text in enumerate(column.categories)}

    def code_of(value) -> float:
        text = category_text(value)
        return math.nan if text is None else codes.get(text, UNSEEN)

    if values.dtype.kind in "biufUS":
        # Sortable: look up each distinct value once, not every row.
        distinct, inverse = np.unique(values, return_inverse=True)
        return np.array([code_of(v) for v in distinct], dtype=np.float64)[inverse.reshape(-1)]
    return np.array([code_of(v) for v in values.tolist()], dtype=np.float64)


def encode_rows(rows, columns: Sequence[Column]) -> np.ndarray:
    """Raw rows -> the encoded float64 matrix (n_rows, len(columns)).

    ``rows``: a mapping name -> 1-D array-like, all of one length n_rows (a pandas DataFrame
    works: rows[name]); other names in it are ignored. Numeric: numbers, bools and texts of
    numbers as floats, missing (None, NaN, pd.NA, empty) -> NaN, anything else -> ValueError
    naming the column. Categorical: :func:`category_text`, then its code in ``categories``;
    a category outside them -> UNSEEN, missing -> NaN. Columns absent from ``rows`` ->
    ValueError naming up to 5 of them.
    """
    absent = [column.name for column in columns if not _has_column(rows, column.name)]
    if absent:
        listed = ", ".join(repr(name) for name in absent[:5])
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise ValueError(f"no column {listed}{more}")
    n_rows = None
    encoded = []
    for column in columns:
        values = _column_values(rows, column.name, n_rows)
        n_rows = values.shape[0]
        if column.kind == NUMERIC:
            encoded.append(_encode_numeric(column.name, values))
        else:
            encoded.append(_encode_categorical(column, values))
    if not encoded:
        return np.empty((0, 0), dtype=np.float64)
    return np.column_stack(encoded)


def _has_column(rows, name: str) -> bool:
    try:
        return name in rows
    except TypeError:
        return False


# --------------------------------------------------------------------------- standardisation


def standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of X (n_samples, n_features), each (n_features,).

    scikit-learn's StandardScaler in NumPy alone (this runs in every fold process, which then
    need not import scikit-learn): population std, and scale 1 for a constant column (variance
    within its rounding error of 0, scikit-learn's test), which then maps to 0, not to ±huge.
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples = X.shape[0]
    eps = np.finfo(np.float64).eps
    mean = X.mean(axis=0)
    variance = X.var(axis=0)
    scale = np.sqrt(variance)
    rounding = n_samples * eps * variance + (n_samples * mean * eps) ** 2
    scale[variance <= rounding] = 1.0
    return mean, scale


# ------------------------------------------------------------------------------ preprocessor


@dataclass(frozen=True)
class _OneHot:
    """How one categorical column is encoded: a column per kept code (in code order), then
    the missing indicator if any."""

    kept: tuple[int, ...]  # the codes present in the training rows, increasing
    missing_indicator: bool  # the training rows had a missing value

    @property
    def width(self) -> int:
        return len(self.kept) + int(self.missing_indicator)


class TablePreprocessor:
    """Fitted on training rows only; turns an encoded matrix into network inputs.

    Numeric column: missing -> the training median (0 if all missing), then standardised with
    the training mean and scale of the imputed column (:func:`standardisation`). Categorical
    column: one-hot of the codes present in the training rows (in code order), plus one
    'missing' indicator column if the training rows had a missing value; any other code (a
    category seen only outside training, UNSEEN) -> all zeros, a missing value with no
    indicator -> all zeros. One-hot columns are not standardised.

    The outputs follow the columns: each column's outputs where the column stands, see
    ``output_names`` ("age", "city=Paris", "city=<missing>").
    """

    def __init__(
        self,
        columns: Sequence[Column],
        median: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        one_hot: Sequence[_OneHot],
    ):
        """median, mean, scale : (n_numeric,) in the order of the numeric columns; one_hot :
        one per categorical column, in their order. Use fit or from_saved."""
        self.columns = tuple(columns)
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"columns: names repeat: {names}")
        self._median = np.asarray(median, dtype=np.float64)
        self._mean = np.asarray(mean, dtype=np.float64)
        self._scale = np.asarray(scale, dtype=np.float64)
        self._one_hot = tuple(one_hot)
        kinds = [column.kind for column in self.columns]
        self._numeric = np.array([i for i, k in enumerate(kinds) if k == NUMERIC], dtype=np.intp)
        self._categorical = [i for i, kind in enumerate(kinds) if kind == CATEGORICAL]
        n_numeric = self._numeric.shape[0]
        for name, array in (("median", self._median), ("mean", self._mean), ("scale", self._scale)):
            if array.shape != (n_numeric,):
                raise ValueError(f"{name}: expected shape ({n_numeric},), got {array.shape}")
        if len(self._one_hot) != len(self._categorical):
            raise ValueError(
                f"one_hot: expected {len(self._categorical)} encodings, got {len(self._one_hot)}"
            )
        self._layout()

    def _layout(self) -> None:
        """Where each column's outputs start, and the outputs' names."""
        widths = []
        encodings = iter(self._one_hot)
        names: list[str] = []
        for column in self.columns:
            if column.kind == NUMERIC:
                widths.append(1)
                names.append(column.name)
            else:
                encoding = next(encodings)
                widths.append(encoding.width)
                names += [f"{column.name}={column.categories[code]}" for code in encoding.kept]
                if encoding.missing_indicator:
                    names.append(f"{column.name}={MISSING_NAME}")
        self._starts = np.concatenate([[0], np.cumsum(widths, dtype=np.intp)])
        self.output_names = tuple(names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def median(self) -> np.ndarray:
        """Each numeric column's training median (what a missing value becomes), (n_numeric,)."""
        return self._median.copy()

    @property
    def mean(self) -> np.ndarray:
        """Each numeric column's training mean after imputation, (n_numeric,)."""
        return self._mean.copy()

    @property
    def scale(self) -> np.ndarray:
        """Each numeric column's training standard deviation (1 if constant), (n_numeric,)."""
        return self._scale.copy()

    # ---------------------------------------------------------------------------------- fit

    @classmethod
    def fit(cls, columns: Sequence[Column], X: np.ndarray) -> TablePreprocessor:
        """Fit on the training rows X (n_rows, len(columns)), encoded as the module says.

        ValueError for a matrix of the wrong shape or with no row, an infinite numeric value,
        and a categorical code that is not one of 0..k-1 (or NaN).
        """
        columns = tuple(columns)
        X = _check_matrix(X, len(columns))
        if X.shape[0] == 0:
            raise ValueError("X: no training rows to fit on")
        numeric = [i for i, column in enumerate(columns) if column.kind == NUMERIC]
        median, mean, scale = _fit_numeric(columns, X, numeric)
        one_hot = [
            _fit_one_hot(column, X[:, i])
            for i, column in enumerate(columns)
            if column.kind == CATEGORICAL
        ]
        return cls(columns, median, mean, scale, one_hot)

    # ---------------------------------------------------------------------------- transform

    def transform(self, X: np.ndarray) -> np.ndarray:
        """X (n_rows, len(columns)), encoded as the module says -> (n_rows, n_outputs) float64.

        For numeric columns without missing values this is exactly (X - mean) / scale, bit for
        bit, as the scaler of earlier versions computed it (seeded sweeps keep their scores).
        ValueError for a categorical code that is none of 0..k-1, UNSEEN or NaN.
        """
        X = _check_matrix(X, len(self.columns))
        out = np.zeros((X.shape[0], self.n_outputs), dtype=np.float64)
        if self._numeric.shape[0]:
            values = X if self._numeric.shape[0] == X.shape[1] else X[:, self._numeric]
            missing = np.isnan(values)
            if missing.any():
                values = np.where(missing, self._median, values)
            out[:, self._starts[self._numeric]] = (values - self._mean) / self._scale
        for index, encoding in zip(self._categorical, self._one_hot, strict=True):
            _one_hot_into(out, self._starts[index], self.columns[index], encoding, X[:, index])
        return out

    # ------------------------------------------------------------------------------- saving

    def to_saved(self) -> tuple[dict, dict[str, np.ndarray]]:
        """A JSON-able manifest and the float arrays (for np.savez) that from_saved reads.

        The floats travel as arrays (exact); names, kinds, categories and kept codes as JSON.
        """
        encodings = iter(self._one_hot)
        described = []
        for column in self.columns:
            entry = {"name": column.name, "kind": column.kind}
            if column.kind == CATEGORICAL:
                encoding = next(encodings)
                entry["categories"] = list(column.categories)
                entry["kept"] = list(encoding.kept)
                entry["missing_indicator"] = encoding.missing_indicator
            described.append(entry)
        manifest = {"format": SAVED_FORMAT, "columns": described}
        arrays = {
            "median": self._median.copy(),
            "mean": self._mean.copy(),
            "scale": self._scale.copy(),
        }
        return manifest, arrays

    @classmethod
    def from_saved(cls, manifest: dict, arrays: Mapping[str, np.ndarray]) -> TablePreprocessor:
        """Read what to_saved wrote (arrays as np.load(allow_pickle=False) gives them back).

        Everything is checked, because saved models are read from a disk that may be damaged
        or tampered with: core.ModelFileError naming what is wrong.
        """
        if not isinstance(manifest, dict) or manifest.get("format") != SAVED_FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else manifest
            raise core.ModelFileError(
                f"preprocessing: format must be {SAVED_FORMAT!r}, got {found!r}"
            )
        described = manifest.get("columns")
        if not isinstance(described, list) or not described:
            raise core.ModelFileError("preprocessing: columns must be a non-empty list")
        columns, one_hot = [], []
        for index, entry in enumerate(described):
            column, encoding = _saved_column(index, entry)
            columns.append(column)
            if encoding is not None:
                one_hot.append(encoding)
        names = [column.name for column in columns]
        if len(set(names)) != len(names):
            raise core.ModelFileError(f"preprocessing: column names repeat: {names}")
        n_numeric = sum(column.kind == NUMERIC for column in columns)
        median, mean, scale = (
            _saved_floats(arrays, key, n_numeric) for key in ("median", "mean", "scale")
        )
        if (scale <= 0).any():
            raise core.ModelFileError("preprocessing: scale must be > 0")
        return cls(columns, median, mean, scale, one_hot)


def _check_matrix(X, n_columns: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_columns:
        raise ValueError(f"X: expected shape (n_rows, {n_columns}), got {X.shape}")
    return X


def _fit_numeric(columns, X: np.ndarray, numeric: list[int]):
    """Medians, means and scales (n_numeric,) of the numeric columns, after imputation."""
    # The whole block at once and, when every column is numeric, X itself: standardisation
    # then reduces the same array as the scaler of earlier versions did, so the means agree to
    # the last bit (a column on its own would be summed in another order).
    values = X if len(numeric) == X.shape[1] else X[:, numeric]
    infinite = np.isinf(values).any(axis=0)
    if infinite.any():
        name = columns[numeric[int(np.argmax(infinite))]].name
        raise ValueError(f"column {name!r}: infinite value in the training rows")
    missing = np.isnan(values)
    median = np.zeros(len(numeric), dtype=np.float64)  # 0 where every value is missing
    for j in range(len(numeric)):
        present = values[~missing[:, j], j]
        if present.size:
            median[j] = np.median(present)
    if missing.any():
        values = np.where(missing, median, values)
    mean, scale = standardisation(values)
    return median, mean, scale


def _fit_one_hot(column: Column, codes: np.ndarray) -> _OneHot:
    missing = np.isnan(codes)
    present = codes[~missing]
    _check_codes(column, present)
    kept = np.unique(present).astype(np.int64)
    return _OneHot(tuple(int(code) for code in kept), bool(missing.any()))


def _check_codes(column: Column, codes: np.ndarray, allow_unseen: bool = False) -> None:
    """ValueError unless every code is an integer in 0..k-1 (or UNSEEN when allowed)."""
    valid = (codes >= 0) & (codes < len(column.categories)) & (codes == np.floor(codes))
    if allow_unseen:
        valid |= codes == UNSEEN
    if not valid.all():
        bad = float(codes[np.argmin(valid)])
        raise ValueError(
            f"column {column.name!r}: code {bad:g} is not one of the "
            f"{len(column.categories)} categories' codes 0..{len(column.categories) - 1}"
        )


def _one_hot_into(out: np.ndarray, start: int, column: Column, encoding: _OneHot, codes):
    """Write the one-hot columns of ``codes`` (n_rows,) into out[:, start:start + width]."""
    missing = np.isnan(codes)
    _check_codes(column, codes[~missing], allow_unseen=True)
    # position[code] is the output column of a kept code, -1 for the others (and UNSEEN,
    # which the appended last entry catches through index -1).
    position = np.full(len(column.categories) + 1, -1, dtype=np.intp)
    position[list(encoding.kept)] = np.arange(len(encoding.kept))
    rows = np.flatnonzero(~missing)
    target = position[codes[rows].astype(np.intp)]
    hit = target >= 0
    out[rows[hit], start + target[hit]] = 1.0
    if encoding.missing_indicator:
        out[missing, start + len(encoding.kept)] = 1.0


# ---------------------------------------------------------------------------- saved checks


def _saved_column(index: int, entry) -> tuple[Column, _OneHot | None]:
    where = f"preprocessing: column {index}"
    if not isinstance(entry, dict):
        raise core.ModelFileError(f"{where} must be an object, got {entry!r}")
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str):
        raise core.ModelFileError(f"{where}: name must be a string, got {name!r}")
    where = f"preprocessing: column {index} ({name!r})"
    if kind not in KINDS:
        raise core.ModelFileError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    if kind == NUMERIC:
        extra = sorted(set(entry) - {"name", "kind"})
        if extra:
            raise core.ModelFileError(f"{where}: a numeric column has no {', '.join(extra)}")
        return Column(name, NUMERIC), None
    categories, kept = entry.get("categories"), entry.get("kept")
    indicator = entry.get("missing_indicator")
    if (
        not isinstance(categories, list)
        or not all(isinstance(c, str) for c in categories)
        or len(set(categories)) != len(categories)
    ):
        raise core.ModelFileError(f"{where}: categories must be a list of distinct strings")
    if (
        not isinstance(kept, list)
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in kept)
        or any(c < 0 or c >= len(categories) for c in kept)
        or any(a >= b for a, b in zip(kept, kept[1:], strict=False))
    ):
        raise core.ModelFileError(
            f"{where}: kept must be increasing codes in 0..{len(categories) - 1}, got {kept!r}"
        )
    if not isinstance(indicator, bool):
        raise core.ModelFileError(f"{where}: missing_indicator must be true or false")
    return Column(name, CATEGORICAL, tuple(categories)), _OneHot(tuple(kept), indicator)


def _saved_floats(arrays: Mapping[str, np.ndarray], key: str, length: int) -> np.ndarray:
    """arrays[key] as finite float64 of shape (length,), else ModelFileError."""
    try:
        array = np.asarray(arrays[key])
    except KeyError:
        raise core.ModelFileError(f"preprocessing: no array {key!r}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # a damaged member
        raise core.ModelFileError(f"preprocessing: array {key!r} is unreadable ({error})") from None
    if array.shape != (length,) or array.dtype.kind != "f":
        raise core.ModelFileError(
            f"preprocessing: {key} has shape {array.shape} and dtype {array.dtype}, "
            f"expected ({length},) floats"
        )
    if not np.isfinite(array).all():
        raise core.ModelFileError(f"preprocessing: {key} contains NaN or infinity")
    return array.astype(np.float64)

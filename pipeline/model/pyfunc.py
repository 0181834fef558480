"""MLflow models-from-code entry point: the file that ``mlflow.pyfunc.log_model`` stores.

MLflow runs this file when it loads the model (no cloudpickle): ``set_model`` names the
``PythonModel`` whose ``load_context`` reads the weights from the ``ensemble`` artifact folder.
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST

from pipeline.model.ensemble import FoldEnsemble
from pipeline.model.preprocessing import NUMERIC, Column, encode_rows


def feature_matrix(rows, columns: tuple[Column, ...], by_name: bool = True) -> np.ndarray:
    """``rows`` encoded for the model: a float64 matrix of shape (n_samples, n_columns), in
    training column order (pipeline.model.preprocessing.encode_rows).

    A DataFrame with named columns is read by name (any order; extra columns are ignored): text,
    true/false values and missing values (None, NaN, empty) as they were in the training table.
    An array, or a DataFrame made from one (columns 0, 1, ...), is read by position; so is any
    DataFrame when not ``by_name`` (a model saved without its column names).
    """
    named = isinstance(rows, pd.DataFrame) and not isinstance(rows.columns, pd.RangeIndex)
    if named and by_name:
        return encode_rows(rows, columns)
    values = rows.to_numpy() if isinstance(rows, pd.DataFrame) else np.asarray(rows)
    if all(c.kind == NUMERIC for c in columns) and values.dtype != object:
        return np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(columns):
        return np.asarray(values, dtype=np.float64)  # the width check names the shape
    return encode_rows({c.name: values[:, i] for i, c in enumerate(columns)}, columns)


class ModelInputError(MlflowException, ValueError):
    """Input the model cannot read (a missing column, a wrong width, text): a 400 reply whose
    message is the reason alone.

    MLflow's scoring server replies to any other error from ``predict`` with a generic message
    and the whole stack trace, and to an MlflowException with its message behind a copy of the
    input (``Failed to predict data '...'``, written into ``message``): this message keeps the
    reason and ignores that rewrite, and carries no stack trace.
    """

    def __init__(self, reason: str):
        self._reason = reason
        super().__init__(reason, error_code=BAD_REQUEST)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, value: str) -> None:
        pass  # set by MlflowException.__init__ (the reason), then by the server (input first)


def input_matrix(rows, ensemble: FoldEnsemble) -> np.ndarray:
    """``rows`` read as :func:`feature_matrix` does and checked against the ensemble's width;
    anything unreadable raises :class:`ModelInputError` with the reason."""
    try:
        X = feature_matrix(rows, ensemble.columns, ensemble.feature_names is not None)
    except (ValueError, TypeError, KeyError) as error:  # a missing column; text not a number
        reason = str(error)
        names = ensemble.feature_names
        if reason.startswith("no column") and names is not None:
            listed = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            reason += f"; the model was trained on the {len(names)} columns {listed}"
        prefix = "model input: "
        raise ModelInputError(reason if reason.startswith(prefix) else prefix + reason) from None
    expected = ensemble.n_columns
    if X.ndim != 2 or X.shape[1] != expected:
        raise ModelInputError(
            f"model input: expected rows of {expected} features, shape (n_rows, {expected}); "
            f"got shape {X.shape}"
        )
    return X


class FoldEnsembleModel(mlflow.pyfunc.PythonModel):
    """Predicts the original class labels, or values, from rows of features (DataFrame or
    array)."""

    def load_context(self, context):
        self.ensemble = FoldEnsemble.load(Path(context.artifacts["ensemble"]))

    # The hint is one MLflow infers no schema from: the model reads its input itself.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        return self.ensemble.predict(input_matrix(model_input, self.ensemble))


mlflow.models.set_model(FoldEnsembleModel())

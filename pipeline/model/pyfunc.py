"""MLflow models-from-code entry point: the file that ``mlflow.pyfunc.log_model`` stores.

MLflow runs this file when it loads the model (no cloudpickle): ``set_model`` names the
``PythonModel`` whose ``load_context`` reads the weights from the ``ensemble`` artifact folder.
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from pipeline.model.ensemble import FoldEnsemble


def feature_matrix(rows, feature_names: tuple[str, ...] | None) -> np.ndarray:
    """``rows`` as a float64 matrix of shape (n_samples, n_features), in training column order.

    A DataFrame with named columns is read by name (any order; extra columns are ignored), and
    one missing a training column is refused naming it. An array, or a DataFrame made from one
    (columns 0, 1, ...), is read by position. The ensemble then checks the width.
    """
    if isinstance(rows, pd.DataFrame) and feature_names is not None:
        if not isinstance(rows.columns, pd.RangeIndex):
            missing = [name for name in feature_names if name not in rows.columns]
            if missing:
                raise ValueError(
                    f"model input: no column {', '.join(map(repr, missing[:5]))}"
                    f"{' ...' if len(missing) > 5 else ''}; the model was trained on the "
                    f"{len(feature_names)} columns {', '.join(feature_names[:5])}"
                    f"{' ...' if len(feature_names) > 5 else ''}"
                )
            rows = rows[list(feature_names)]
    if isinstance(rows, pd.DataFrame):
        return rows.to_numpy(dtype=np.float64)
    return np.asarray(rows, dtype=np.float64)


class FoldEnsembleModel(mlflow.pyfunc.PythonModel):
    """Predicts the original class labels from rows of features (DataFrame or array)."""

    def load_context(self, context):
        self.ensemble = FoldEnsemble.load(Path(context.artifacts["ensemble"]))

    # The hint is one MLflow infers no schema from: the model reads its input itself.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        return self.ensemble.predict(feature_matrix(model_input, self.ensemble.feature_names))


mlflow.models.set_model(FoldEnsembleModel())

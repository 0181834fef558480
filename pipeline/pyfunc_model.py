"""MLflow models-from-code entry point: the file that ``mlflow.pyfunc.log_model`` stores.

MLflow runs this file when it loads the model (no cloudpickle): ``set_model`` names the
``PythonModel`` whose ``load_context`` reads the weights from the ``ensemble`` artifact folder.
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from pipeline.fitted_model import FoldEnsemble


class FoldEnsembleModel(mlflow.pyfunc.PythonModel):
    """Predicts the original class labels from rows of features (DataFrame or array)."""

    def load_context(self, context):
        self.ensemble = FoldEnsemble.load(Path(context.artifacts["ensemble"]))

    # The hint is one MLflow infers no schema from: the logged signature does the validation.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy(dtype=np.float64)
        return self.ensemble.predict(np.asarray(model_input, dtype=np.float64))


mlflow.models.set_model(FoldEnsembleModel())

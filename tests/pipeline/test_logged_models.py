"""Models logged by earlier layouts of the package still load and predict.

tests/fixtures/model_logged_v0_1 is a trial model as mlp-sweep 0.1 logged it, before pipeline/
was split into packages: its stored code imports ``FoldEnsemble`` from ``pipeline.fitted_model``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import load_model
from sklearn.datasets import load_iris

from tests.helpers import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
OLD_MODEL = FIXTURES / "model_logged_v0_1"


def test_the_fixture_is_a_model_of_the_old_layout():
    code = (OLD_MODEL / "pyfunc_model.py").read_text()
    assert "from pipeline.fitted_model import FoldEnsemble" in code
    assert (
        "model_code_path: /work/main/pipeline/pyfunc_model.py"
        in (OLD_MODEL / "MLmodel").read_text()
    )


def test_a_model_logged_before_the_split_loads_and_predicts_as_it_did():
    X, _ = load_iris(return_X_y=True, as_frame=True)
    expected = np.load(FIXTURES / "model_logged_v0_1_iris_predictions.npy")
    model = load_model(str(OLD_MODEL))
    np.testing.assert_array_equal(model.predict(X), expected)  # by column name
    np.testing.assert_array_equal(model.predict(X.to_numpy()), expected)  # by position
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(model.predict(pd.DataFrame(shuffled)), expected)

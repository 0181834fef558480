"""Library warnings stay out of the terminal while threads come and go (pipeline.quiet).

MLflow's input-example advice was once ignored in a ``warnings.catch_warnings`` scope on the
thread that writes trials' runs, and dropped whenever the main thread left a scope it had entered
before: the advice then reached the terminal of a sweep that ended on a full disk, whose one-line
error the test of that case reads (tests/e2e/test_reliability.py).
"""

from __future__ import annotations

import threading
import time
import warnings

from sklearn.datasets import load_iris

from pipeline.model.ensemble import FittedNetwork, FoldEnsemble, ModelSpec
from pipeline.model.preprocessing import NUMERIC, Column
from pipeline.quiet import quiet_libraries
from pipeline.tracking.models import save_pyfunc

IRIS = load_iris()
SPEC = ModelSpec(
    "classification", tuple(Column(name, NUMERIC) for name in IRIS.feature_names), "accuracy"
)


def test_models_saved_on_a_thread_stay_quiet_while_the_main_thread_opens_scopes(tmp_path):
    kwargs = {"hidden_layer_sizes": (4,), "iterations": 5, "learning_rate": 0.05}
    ensemble = FoldEnsemble([FittedNetwork.fit(SPEC, kwargs, IRIS.data, IRIS.target, 0)])
    saved = threading.Event()

    def write_models():
        for index in range(3):
            save_pyfunc(ensemble, tmp_path / str(index), IRIS.data[:5])
        saved.set()

    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")  # every warning shown, unless filtered for the process
        quiet_libraries()  # as the sweep does before its threads start
        writer = threading.Thread(target=write_models)
        writer.start()
        scopes = 0
        while not saved.is_set():  # a library's own scopes, on any thread
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                scopes += 1
                time.sleep(0.0005)  # the writer gets the interpreter too
        writer.join()
    advice = [str(w.message) for w in caught if "input example" in str(w.message)]
    assert scopes > 10, "the scopes did not overlap the saves"
    assert advice == []


def test_the_filters_are_installed_once():
    with warnings.catch_warnings():
        quiet_libraries()
        before = warnings.filters
        copy = list(before)
        quiet_libraries()
        assert warnings.filters is before and warnings.filters == copy

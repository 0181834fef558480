"""MLflow's advice that says nothing to a sweep's user, silenced for the whole process.

Kept apart from :mod:`pipeline.tracking.models` so that the sweep can install it before MLflow
is imported (MLflow is imported on a thread, overlapping the first trial).
"""

from __future__ import annotations

import warnings

# MLflow advises an input example; the signature given already says it all, and an input example
# would make MLflow load and run every trial's model.
INPUT_EXAMPLE_ADVICE = r".*An input example was not provided"


def quiet_model_logging() -> None:
    """Ignore MLflow's input-example advice in this whole process, from now on.

    Not a ``warnings.catch_warnings`` scope: the filters are the interpreter's, shared by every
    thread, and a thread leaving such a scope puts back the list it found on entering, dropping
    a filter another thread added meanwhile. Trials' runs are logged on a thread while the trial
    loop enters and leaves its own scopes, so the filter is installed once (the sweep does it
    before starting that thread) and left alone when already there.
    """
    installed = any(
        action == "ignore" and message is not None and message.pattern == INPUT_EXAMPLE_ADVICE
        for action, message, *_ in warnings.filters
    )
    if not installed:
        warnings.filterwarnings("ignore", message=INPUT_EXAMPLE_ADVICE)

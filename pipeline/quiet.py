"""Library warnings that say nothing to a sweep's user, ignored for the whole process.

Installed once and never scoped with ``warnings.catch_warnings``: the filters are the
interpreter's, shared by every thread, and a thread leaving such a scope puts back the list it
found on entering, dropping a filter another thread added meanwhile. A sweep writes its trials'
runs, beats heartbeats and imports modules on threads while its trial loop runs (MLflow's advice
below once reached the one-line error of a sweep that had filled its disk that way). The sweep
installs them before its threads start; the functions that meet these warnings install them too,
for other callers, and change nothing when they are there.
"""

from __future__ import annotations

import re
import warnings

import optuna

# MLflow advises an input example; the signature given already says it all, and an input example
# would make MLflow load and run every trial's model.
INPUT_EXAMPLE_ADVICE = r".*An input example was not provided"
# Matplotlib, on the axis of a parameter with one value (or of one trial): still a fine plot.
FLAT_AXIS_NOTICE = "Attempting to set identical"


def quiet_libraries() -> None:
    """Ignore, from now on: Optuna's experimental-feature warnings (WilcoxonPruner, heartbeats'
    retries, the gRPC proxy: "experimental" only in the sense of a changeable interface),
    MLflow's input-example advice and Matplotlib's flat-axis notice."""
    _ignore(category=optuna.exceptions.ExperimentalWarning)
    _ignore(message=INPUT_EXAMPLE_ADVICE)
    _ignore(message=FLAT_AXIS_NOTICE)


def _ignore(message: str = "", category: type[Warning] = Warning) -> None:
    """``warnings.filterwarnings("ignore", ...)`` unless that very filter is there: adding it
    again would take it out of the list and put it back, a moment without it."""
    entry = ("ignore", re.compile(message, re.I) if message else None, category, None, 0)
    if entry not in warnings.filters:
        warnings.filterwarnings("ignore", message=message, category=category)

"""scikit-learn's side of the estimators: their tags and scikit-learn's exception classes.

The only module of ``core`` that imports scikit-learn, and it is imported lazily: by
``__sklearn_tags__`` when scikit-learn asks for the tags, and by :mod:`core.errors` when
scikit-learn is already loaded. ``core/__init__`` never imports it, so ``import core`` stays
NumPy-only. It imports nothing from ``core``: callers pass what it needs (whether the estimator
is a classifier, which exception class to extend), so the modules that import it lazily are
never imported back and ``core`` keeps an import graph without cycles.
"""

import functools

import sklearn.exceptions
from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags


def estimator_tags(*, classifier):
    """The ``Tags`` scikit-learn reads through ``estimator.__sklearn_tags__()``.

    classifier : bool, True for MLPClassifier, False for MLPRegressor.
    """
    tags = Tags(
        estimator_type="classifier" if classifier else "regressor",
        target_tags=TargetTags(required=True, multi_output=not classifier),
        classifier_tags=ClassifierTags() if classifier else None,
        regressor_tags=None if classifier else RegressorTags(),
    )
    tags.input_tags.allow_nan = False
    tags.input_tags.sparse = False
    return tags


@functools.cache
def _dual_class(core_class, sklearn_class):
    # Created once per pair, so that every raise/warn shares one class (warning filters and
    # their once-only registry match by class).
    return type(core_class.__name__, (core_class, sklearn_class), {"__module__": __name__})


def also_sklearn_class(core_class, message):
    """An instance of ``core_class`` that is also one of scikit-learn's class of the same name.

    core_class : a class of :mod:`core.errors` named like one of ``sklearn.exceptions``
        (``NotFittedError``, ``DataConversionWarning``).
    """
    sklearn_class = getattr(sklearn.exceptions, core_class.__name__)
    return _dual_class(core_class, sklearn_class)(message)

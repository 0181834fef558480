"""scikit-learn tags for the estimators; imported only when scikit-learn asks for them.

``core/__init__`` never imports this module, so ``import core`` stays NumPy-only.
"""

import functools

from sklearn.exceptions import DataConversionWarning as SklearnDataConversionWarning
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

from core.errors import DataConversionWarning, NotFittedError
from core.estimators import MLPClassifier


def estimator_tags(estimator):
    """The ``Tags`` scikit-learn reads through ``estimator.__sklearn_tags__()``."""
    is_classifier = isinstance(estimator, MLPClassifier)
    tags = Tags(
        estimator_type="classifier" if is_classifier else "regressor",
        target_tags=TargetTags(required=True, multi_output=not is_classifier),
        classifier_tags=ClassifierTags() if is_classifier else None,
        regressor_tags=None if is_classifier else RegressorTags(),
    )
    tags.input_tags.allow_nan = False
    tags.input_tags.sparse = False
    return tags


@functools.cache
def _dual_class(core_class, sklearn_class):
    # Created once per pair, so that every raise/warn shares one class (pickling, filters).
    return type(core_class.__name__, (core_class, sklearn_class), {"__module__": __name__})


def sklearn_not_fitted_error(message):
    """A ``core.NotFittedError`` that is also a ``sklearn.exceptions.NotFittedError``."""
    return _dual_class(NotFittedError, SklearnNotFittedError)(message)


def sklearn_data_conversion_warning(message):
    """A ``core.DataConversionWarning`` that is also scikit-learn's ``DataConversionWarning``."""
    return _dual_class(DataConversionWarning, SklearnDataConversionWarning)(message)

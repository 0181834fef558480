"""scikit-learn tags for the estimators; imported only when scikit-learn asks for them.

``core/__init__`` never imports this module, so ``import core`` stays NumPy-only.
"""

from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

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

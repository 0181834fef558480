"""The neural network of the lecture notes in NumPy alone.

A fully connected network (any depth and width; sigmoid, tanh, ReLU, leaky ReLU or identity
hidden units; softmax/sigmoid/identity output), trained by the notes' loop of forward pass, loss,
backpropagation and update, behind scikit-learn-style estimators. Imports NumPy only.
"""

from core.activations import ACTIVATIONS, DERIVATIVES
from core.errors import ModelFileError, NotFittedError, TrainingDivergedError
from core.estimators import MLPClassifier, MLPRegressor
from core.initialisation import INITIALISERS
from core.serialisation import load_model, save_model
from core.solvers import SOLVERS

__all__ = [
    "ACTIVATIONS",
    "DERIVATIVES",
    "INITIALISERS",
    "SOLVERS",
    "MLPClassifier",
    "MLPRegressor",
    "ModelFileError",
    "NotFittedError",
    "TrainingDivergedError",
    "load_model",
    "save_model",
]

"""The predictor a sweep ships: standardisation + core network per fold, the folds as one
ensemble, saved without pickle, and the MLflow models-from-code file that loads it."""

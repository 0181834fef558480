"""Orchestration of mlp-sweep: Hydra configs, Optuna studies, joblib k-fold CV, MLflow tracking.

This package is the only place that knows Hydra, Optuna, MLflow and joblib; the network itself
lives in :mod:`core`, which imports NumPy only.
"""

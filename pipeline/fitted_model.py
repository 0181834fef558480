"""Kept for models logged by mlp-sweep 0.1: their stored code imports ``FoldEnsemble`` from here.

New code imports :mod:`pipeline.model.ensemble`.
"""

from pipeline.model.ensemble import FoldEnsemble, ScaledNetwork, standardisation

__all__ = ["FoldEnsemble", "ScaledNetwork", "standardisation"]

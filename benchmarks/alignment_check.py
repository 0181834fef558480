"""Does a fold's result depend on where its arrays lie in memory? The suspected cause of a seeded
sweep that did not repeat itself: SIMD reductions whose order depends on an array's alignment,
which differs between fold processes with different histories.

    python benchmarks/alignment_check.py

1. Fits one fold (iris, the sweep's fixed settings) with every work array the core allocates
   placed at each float32 offset modulo 64 bytes (0, 4, ..., 60), for each activation and a few
   widths and depths, and compares the loss curves and probabilities bit for bit.
2. Runs NumPy's and OpenBLAS's operations the core and Optuna's TPE use on float32 and float64
   arrays at every offset, and compares their bits.

Prints what differs, if anything; exit code 1 if anything does.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402
import core.estimators  # noqa: E402
import core.losses  # noqa: E402
import core.network  # noqa: E402
import core.solvers  # noqa: E402
import core.training  # noqa: E402
from pipeline.config.settings import fixed_model_params  # noqa: E402
from pipeline.model.ensemble import FittedNetwork, ModelSpec  # noqa: E402
from tests.helpers import compose_config  # noqa: E402

ALIGNMENT = 64  # bytes: one AVX-512 register, one cache line
_offset = [0]
_buffers: list[np.ndarray] = []  # kept alive while the arrays placed in them are used


def placed(shape, dtype=float, fill=None) -> np.ndarray:
    """A new array whose first byte lies ``_offset[0]`` bytes past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + 2 * ALIGNMENT, dtype=np.uint8)
    start = (-buffer.ctypes.data) % ALIGNMENT + _offset[0]
    array = buffer[start : start + size].view(dtype).reshape(shape)
    _buffers.append(buffer)
    if fill is not None:
        array[...] = fill
    return array


def place_core_arrays() -> None:
    """Make the core's modules allocate through :func:`placed`."""

    def copy_placed(a, dtype=None):
        a = np.asarray(a, dtype=dtype)
        out = placed(a.shape, a.dtype)
        out[...] = a
        return out

    numpy = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    numpy.empty = lambda shape, dtype=float, **_: placed(shape, dtype)
    numpy.zeros = lambda shape, dtype=float, **_: placed(shape, dtype, 0)
    numpy.empty_like = lambda a, dtype=None, **_: placed(a.shape, dtype or a.dtype)
    numpy.ascontiguousarray = copy_placed
    for module in (core.network, core.training, core.solvers, core.losses, core.estimators):
        module.np = numpy


def fits_by_offset() -> list[str]:
    X, y = load_iris(return_X_y=True)
    fixed = fixed_model_params(compose_config(["dataset=iris"]))
    differing = []
    for activation in ("relu", "tanh", "sigmoid", "leaky_relu", "identity"):
        for units, layers in ((4, 1), (7, 1), (17, 2), (32, 2)):
            results = set()
            for offset in range(0, ALIGNMENT, 4):
                _offset[0] = offset
                kwargs = {
                    **fixed,
                    "hidden_layer_sizes": (units,) * layers,
                    "activation": activation,
                    "learning_rate": 0.05,
                    "iterations": 40,
                }
                spec = ModelSpec.numeric(X.shape[1])
                model = FittedNetwork.fit(spec, kwargs, X[20:], y[20:], 7001)
                curve = np.asarray(model.network.loss_curve_).tobytes()
                results.add((curve, model.predict_proba(X).tobytes()))
                _buffers.clear()
            if len(results) > 1:
                differing.append(f"fit {activation} {units}x{layers}: {len(results)} results")
    return differing


def operations_by_offset() -> list[str]:
    from scipy.special import erf, logsumexp

    rng = np.random.default_rng(2)
    operations = {
        "sum": lambda a, b: np.sum(a),
        "sum axis 0": lambda a, b: a.sum(0),
        "mean axis 1": lambda a, b: a.mean(1),
        "std": lambda a, b: np.std(a),
        "vdot": lambda a, b: np.vdot(a, a),
        "matmul": lambda a, b: a @ b,
        "einsum ij,jk": lambda a, b: np.einsum("ij,jk->ik", a, b),
        "einsum ij,ij": lambda a, b: np.einsum("ij,ij->i", a, a),
        "exp": lambda a, b: np.exp(a),
        "tanh": lambda a, b: np.tanh(a),
        "logsumexp": lambda a, b: logsumexp(a, axis=1),
        "erf": lambda a, b: erf(a),
    }
    differing = []
    for dtype in (np.float32, np.float64):
        for shape in ((7, 13), (3, 100), (24, 5), (5, 120), (64, 64)):
            A = rng.standard_normal(shape).astype(dtype)
            B = rng.standard_normal(shape[::-1]).astype(dtype)
            for name, operation in operations.items():
                results = set()
                for offset in range(0, ALIGNMENT, np.dtype(dtype).itemsize):
                    _offset[0] = offset
                    a, b = placed(A.shape, dtype), placed(B.shape, dtype)
                    a[...], b[...] = A, B
                    results.add(np.asarray(operation(a, b)).tobytes())
                    _buffers.clear()
                if len(results) > 1:
                    differing.append(f"{name} {np.dtype(dtype).name} {shape}: {len(results)}")
    return differing


def main() -> int:
    operations = operations_by_offset()
    place_core_arrays()
    fits = fits_by_offset()
    for line in operations + fits:
        print("differs by alignment:", line)
    print(f"{len(fits)} of 20 fits and {len(operations)} of 120 operations depend on alignment")
    return 1 if operations or fits else 0


if __name__ == "__main__":
    sys.exit(main())

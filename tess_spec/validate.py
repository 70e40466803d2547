"""Validation of a batch against the network: shapes, finiteness, labels.

Backends call :func:`validate_batch` on the host before converting inputs, so
every backend raises the same errors for the same bad input.
"""

from __future__ import annotations

import numpy as np

from .config import TessConfig
from .errors import DataError, ShapeError

__all__ = ["validate_batch", "is_sequence"]


def is_sequence(config: TessConfig, x: np.ndarray) -> bool:
    """True if ``x`` is ``(B, T, *input_shape)`` (event frames), False if ``(B, *input_shape)``
    (direct input: the same frame at every step)."""
    return x.ndim == len(config.network.input_shape) + 2


def validate_batch(config: TessConfig, x: np.ndarray, y: np.ndarray | None = None) -> None:
    """Raise ``ShapeError`` / ``DataError`` unless ``x`` (and ``y``) fit the network.

    ``x``: ``(B, *input_shape)`` or ``(B, T, *input_shape)`` with finite values and
    B ≥ 1; ``y``: ``(B,)`` integers in ``[0, n_classes)``.
    """
    inp = tuple(config.network.input_shape)
    T = config.train.T
    x = np.asarray(x)
    if x.ndim == len(inp) + 1:
        ok = tuple(x.shape[1:]) == inp
    elif x.ndim == len(inp) + 2:
        ok = tuple(x.shape[2:]) == inp and x.shape[1] == T
    else:
        ok = False
    if not ok:
        raise ShapeError(
            f"input of shape {tuple(x.shape)} does not match the network: expected "
            f"(batch, *{inp}) for direct input or (batch, T={T}, *{inp}) for sequences"
        )
    if x.shape[0] == 0:
        raise DataError("empty batch: x has 0 samples; pass at least one sample")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"input dtype {x.dtype} is not numeric")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x.reshape(-1)))[0]
        raise DataError(
            f"input contains NaN or Inf (first at flat index {bad}: {float(x.reshape(-1)[bad])}); "
            "clean or normalise the data first"
        )
    if y is None:
        return
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ShapeError(f"labels of shape {tuple(y.shape)} do not match the batch: expected ({x.shape[0]},)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be integers, got dtype {y.dtype}")
    n = config.network.n_classes
    bad_y = y[(y < 0) | (y >= n)]
    if bad_y.size:
        raise DataError(f"label {int(bad_y[0])} is outside [0, {n}) for a {n}-class network")

"""Validation of a batch against the network: shapes, finiteness, labels.

Backends call :func:`validate_batch` on the host before converting inputs, so
every backend raises the same errors for the same bad input.
"""

from __future__ import annotations

import numpy as np

from .config import TessConfig
from .errors import DataError, ShapeError

__all__ = ["validate_batch", "validate_finite_in", "is_sequence"]


def is_sequence(config: TessConfig, x: np.ndarray) -> bool:
    """True if ``x`` is ``(B, T, *input_shape)`` (event frames), False if ``(B, *input_shape)``
    (direct input: the same frame at every step)."""
    return x.ndim == len(config.network.input_shape) + 2


def validate_batch(config: TessConfig, x: np.ndarray, y: np.ndarray | None = None, *,
                   dtype: str | np.dtype | None = None) -> None:
    """Raise ``ShapeError`` / ``DataError`` unless ``x`` (and ``y``) fit the network.

    ``x``: ``(B, *input_shape)`` or ``(B, T, *input_shape)`` with finite values and
    B ≥ 1; ``y``: ``(B,)`` integers in ``[0, n_classes)``.  With ``dtype`` (the
    backend's float dtype) the values must also be finite *in that dtype*
    (:func:`validate_finite_in`): ``1e39`` is a finite float64 but ``inf`` in float32.
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
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"input dtype {x.dtype} is not a real number type; pass integer or float arrays")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x.reshape(-1)))[0]
        raise DataError(
            f"input contains NaN or Inf (first at flat index {bad}: {float(x.reshape(-1)[bad])}); "
            "clean or normalise the data first"
        )
    if dtype is not None:
        validate_finite_in(x, dtype)
    if y is None:
        return
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ShapeError(f"labels of shape {tuple(y.shape)} do not match the batch: expected ({x.shape[0]},)")
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"labels must be integers, got dtype {y.dtype}")
    n = config.network.n_classes
    bad_y = y[(y < 0) | (y >= n)]
    if bad_y.size:
        raise DataError(f"label {int(bad_y[0])} is outside [0, {n}) for a {n}-class network")


def validate_finite_in(x: np.ndarray, dtype: str | np.dtype) -> None:
    """Raise ``DataError`` unless every value of ``x`` is finite after conversion to ``dtype``.

    Only a float input wider than ``dtype`` can overflow (float64 → float32: any
    ``|x| > 3.4028235e38`` becomes ``±inf``); integers and narrower floats always fit,
    so for them this costs nothing.  The check is one reduction over ``x``.
    """
    x = np.asarray(x)
    target = np.dtype(dtype)
    if not (np.issubdtype(x.dtype, np.floating) and np.issubdtype(target, np.floating)):
        return
    if x.dtype.itemsize <= target.itemsize or x.size == 0:
        return
    limit = np.finfo(target).max
    peak = np.abs(x).max()
    if not np.isfinite(peak) or peak <= limit:
        return  # non-finite values are reported by validate_batch itself
    with np.errstate(over="ignore"):
        if np.isfinite(np.asarray(peak).astype(target)):
            return  # rounds down to the largest finite value of ``target``
        flat = x.reshape(-1)
        bad = int(np.flatnonzero(~np.isfinite(flat.astype(target)))[0])
        overflowed = float(flat[bad].astype(target))
    raise DataError(
        f"input value {float(flat[bad])!r} (first at flat index {bad}) is not finite in {target.name}: it "
        f"overflows to {overflowed} (the largest {target.name} is {float(limit):.8g}); "
        f"rescale or normalise the data, or train in float64 (--dtype float64)"
    )

"""Array operators the equations are built from: convolution via im2col, pooling
(forward and its vector-Jacobian product), adaptive average pooling, dropout masks.

All are vectorised (im2col + BLAS matmul; no Python loops over pixels or samples)
and preserve dtype.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "im2col",
    "conv2d",
    "conv2d_weight_corr",
    "pool_forward",
    "pool_backward",
    "adaptive_pool_matrix",
    "adaptive_avg_pool",
    "adaptive_avg_pool_backward",
    "flatten_batch",
]


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """Patches of a same-padded, stride-1 ``k×k`` convolution.

    ``x``: ``(B, C, H, W)`` → ``(B·H·W, C·k·k)``; row ``(b, i, j)`` holds the
    zero-padded ``C×k×k`` neighbourhood of pixel ``(i, j)`` of sample ``b``.
    """
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
    win = sliding_window_view(xp, (k, k), axis=(2, 3))  # (B, C, H, W, k, k)
    b, c, h, w = x.shape
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(b * h * w, c * k * k)


def conv2d(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Same-padded, stride-1 cross-correlation ``I = Ŵ ⋆ x`` (no bias).

    ``x``: ``(B, C, H, W)``, ``weight``: ``(F, C, k, k)`` → ``(B, F, H, W)``.
    """
    b, _, h, w = x.shape
    f, _, k, _ = weight.shape
    out = im2col(x, k) @ weight.reshape(f, -1).T
    return out.reshape(b, h, w, f).transpose(0, 3, 1, 2)


def conv2d_weight_corr(delta: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Weight-gradient correlation of a same-padded conv, summed over batch and positions.

    ``G[f, c, a, b] = Σ_{n,i,j} δ[n, f, i, j] · x_pad[n, c, i + a, j + b]``;
    ``delta``: ``(B, F, H, W)``, ``x``: ``(B, C, H, W)`` → ``(F, C, k, k)``.
    """
    b, f, h, w = delta.shape
    d = delta.transpose(0, 2, 3, 1).reshape(b * h * w, f)
    return (d.T @ im2col(x, k)).reshape(f, x.shape[1], k, k)


def _windows(x: np.ndarray, p: int) -> np.ndarray:
    """``(B, C, H, W)`` → ``(B, C, H//p, W//p, p·p)`` (floor-cropped, row-major window order)."""
    b, c, h, w = x.shape
    oh, ow = h // p, w // p
    xc = x[:, :, : oh * p, : ow * p].reshape(b, c, oh, p, ow, p)
    return xc.transpose(0, 1, 2, 4, 3, 5).reshape(b, c, oh, ow, p * p)


def pool_forward(x: np.ndarray, pool: str | None, p: int) -> np.ndarray:
    """Pooling of a block's (dropped-out) spikes: ``None``, ``"max"``/``"avg"`` with
    window = stride = ``p`` (floor), or ``"global_avg"`` (→ ``(B, C, 1, 1)``)."""
    if pool is None:
        return x
    if pool == "global_avg":
        return x.mean(axis=(2, 3), keepdims=True)
    win = _windows(x, p)
    return win.max(axis=-1) if pool == "max" else win.mean(axis=-1)


def pool_backward(g: np.ndarray, x: np.ndarray, pool: str | None, p: int) -> np.ndarray:
    """Vector-Jacobian product of :func:`pool_forward` at input ``x``.

    max: the gradient goes to the FIRST maximal element of each window in
    row-major order (ties are common with binary spikes; this is torch's rule);
    avg: spread evenly, ``g / p²``; global_avg: ``g / (H·W)``.  Cropped rows and
    columns receive zero.
    """
    if pool is None:
        return g
    b, c, h, w = x.shape
    if pool == "global_avg":
        return np.broadcast_to(g / (h * w), x.shape).copy()
    oh, ow = h // p, w // p
    if pool == "max":
        win = _windows(x, p)
        idx = win.argmax(axis=-1)
        spread = (np.arange(p * p) == idx[..., None]).astype(g.dtype) * g[..., None]
    else:
        spread = np.broadcast_to(g[..., None] / (p * p), (b, c, oh, ow, p * p))
    full = np.zeros_like(x, dtype=g.dtype)
    full[:, :, : oh * p, : ow * p] = (
        spread.reshape(b, c, oh, ow, p, p).transpose(0, 1, 2, 4, 3, 5).reshape(b, c, oh * p, ow * p)
    )
    return full


def adaptive_pool_matrix(n: int, k: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Averaging matrix ``P`` (``k × n``) of a 1-D adaptive average pool of ``n`` values to ``k``.

    Bin ``i`` averages indices ``floor(i·n/k) ≤ j < ceil((i+1)·n/k)`` (torch's rule).
    """
    P = np.zeros((k, n), dtype=dtype)
    for i in range(k):  # k bins, not pixels
        s = (i * n) // k
        e = -((-(i + 1) * n) // k)
        P[i, s:e] = 1.0 / (e - s)
    return P


def adaptive_avg_pool(y: np.ndarray, k: int) -> np.ndarray:
    """``a[t]``: adaptive average pool to ``k×k`` (conv, ``(B, C, H, W)``) or to length
    ``k`` (linear, ``(B, N)``), flattened to ``(B, D)`` with D = C·k² or k."""
    if y.ndim == 2:
        return y @ adaptive_pool_matrix(y.shape[1], k, y.dtype).T
    b, c, h, w = y.shape
    ph = adaptive_pool_matrix(h, k, y.dtype)
    pw = adaptive_pool_matrix(w, k, y.dtype)
    return np.einsum("bchw,ih,jw->bcij", y, ph, pw, optimize=True).reshape(b, c * k * k)


def adaptive_avg_pool_backward(g: np.ndarray, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Vector-Jacobian product of :func:`adaptive_avg_pool`: ``(B, D)`` → ``shape``."""
    if len(shape) == 2:
        return g @ adaptive_pool_matrix(shape[1], k, g.dtype)
    b, c, h, w = shape
    ph = adaptive_pool_matrix(h, k, g.dtype)
    pw = adaptive_pool_matrix(w, k, g.dtype)
    return np.einsum("bcij,ih,jw->bchw", g.reshape(b, c, k, k), ph, pw, optimize=True)


def flatten_batch(x: np.ndarray) -> np.ndarray:
    """``(B, ...)`` → ``(B, N)``: how a spatial output enters a linear block."""
    return x.reshape(x.shape[0], -1)

"""Array-namespace-generic operators of the CuPy backend, in channels-last layout.

Every function takes the array namespace ``xp`` (``cupy`` on the GPU, ``numpy``
in the CPU tests) and uses only what both provide.  Activations are kept
channels-last, ``(B, H, W, C)``, inside the backend: the im2col GEMM then yields
the synaptic current directly in the layout of the neuron state (no transpose
per step), and the learning signal's ``(B·H·W, F)`` view feeds the weight
correlation GEMM as is.  Weights keep the spec's ``(F, C, k, k)`` layout.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "im2col_nhwc",
    "pool_nhwc",
    "pool_vjp_nhwc",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "softmax",
    "standardize",
    "standardize_vjp",
    "WS_EPS",
]

WS_EPS = 1e-4
"""ε of weight standardisation (equals :data:`tess_spec.weight_std.WS_EPS`)."""


def nchw_to_nhwc(xp: Any, x: Any) -> Any:
    """``(B, C, H, W)`` → contiguous ``(B, H, W, C)`` (other ranks unchanged)."""
    return xp.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def nhwc_to_nchw(xp: Any, x: Any) -> Any:
    """``(B, H, W, C)`` → contiguous ``(B, C, H, W)`` (other ranks unchanged)."""
    return xp.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def im2col_nhwc(xp: Any, x: Any, k: int) -> Any:
    """Patches of a same-padded, stride-1 ``k×k`` convolution of a channels-last input.

    ``x``: ``(B, H, W, C)`` → ``(B·H·W, C·k·k)``; row ``(b, i, j)`` holds
    ``x_pad[b, i + a, j + c', ch]`` at column ``ch·k² + a·k + c'`` — the column
    order of ``weight.reshape(F, C·k·k)``, so ``cols @ Ŵ2dᵀ`` is the current
    ``(B·H·W, F)`` and ``δᵀ @ cols`` the weight correlation ``(F, C·k·k)``.
    """
    b, h, w, c = x.shape
    p = k // 2
    if p:
        xpad = xp.zeros((b, h + 2 * p, w + 2 * p, c), dtype=x.dtype)
        xpad[:, p : p + h, p : p + w, :] = x
    else:
        xpad = x
    cols = xp.empty((b, h, w, c, k * k), dtype=x.dtype)
    for a in range(k):  # k² strided copies (k = 3: nine), not a loop over pixels
        for c2 in range(k):
            cols[..., a * k + c2] = xpad[:, a : a + h, c2 : c2 + w, :]
    return cols.reshape(b * h * w, c * k * k)


def _windows(x: Any, p: int) -> Any:
    """``(B, H, W, C)`` → ``(B, H//p, W//p, C, p·p)``, window elements in row-major order."""
    b, h, w, c = x.shape
    oh, ow = h // p, w // p
    xc = x[:, : oh * p, : ow * p, :].reshape(b, oh, p, ow, p, c)
    return xc.transpose(0, 1, 3, 5, 2, 4).reshape(b, oh, ow, c, p * p)


def pool_nhwc(xp: Any, x: Any, pool: str | None, p: int) -> Any:
    """Block pooling, channels-last: ``None``; ``"max"``/``"avg"`` (window = stride = p, floor);
    ``"global_avg"`` → ``(B, 1, 1, C)``."""
    if pool is None:
        return x
    if pool == "global_avg":
        return x.mean(axis=(1, 2), keepdims=True)
    win = _windows(x, p)
    return win.max(axis=-1) if pool == "max" else win.mean(axis=-1)


def pool_vjp_nhwc(xp: Any, g: Any, x: Any, pool: str | None, p: int) -> Any:
    """Vector-Jacobian product of :func:`pool_nhwc` at input ``x``.

    max: the whole gradient goes to the FIRST maximal element of each window in
    row-major order (found as the first position whose running count of maxima
    is 1 — no reliance on an ``argmax`` tie rule); avg: ``g / p²``; global
    average: ``g / (H·W)``; cropped rows/columns get zero.
    """
    if pool is None:
        return g
    b, h, w, c = x.shape
    if pool == "global_avg":
        full = xp.empty(x.shape, dtype=g.dtype)
        full[...] = g / (h * w)
        return full
    oh, ow = h // p, w // p
    if pool == "max":
        win = _windows(x, p)
        eq = win == win.max(axis=-1, keepdims=True)
        first = eq & (xp.cumsum(eq.astype(xp.int32), axis=-1) == 1)
        spread = first.astype(g.dtype) * g[..., None]
    else:
        spread = xp.broadcast_to(g[..., None] / (p * p), (b, oh, ow, c, p * p))
    inner = spread.reshape(b, oh, ow, c, p, p).transpose(0, 1, 4, 2, 5, 3).reshape(b, oh * p, ow * p, c)
    if oh * p == h and ow * p == w:
        return xp.ascontiguousarray(inner)
    full = xp.zeros(x.shape, dtype=g.dtype)
    full[:, : oh * p, : ow * p, :] = inner
    return full


def softmax(xp: Any, z: Any) -> Any:
    """Numerically stable softmax over the last axis."""
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _stats(xp: Any, weight: Any) -> tuple[Any, Any, int]:
    f = weight.shape[0]
    w = weight.reshape(f, -1)
    n = w.shape[1]
    d = w - w.mean(axis=1, keepdims=True)
    var = (d * d).sum(axis=1, keepdims=True) / max(n - 1, 1)
    return d, xp.sqrt(var * n + WS_EPS), n


def standardize(xp: Any, weight: Any, gain: Any) -> Any:
    """``Ŵ_c = g_c · (W_c - mean(W_c)) / sqrt(var(W_c) · fan_in + 1e-4)`` (unbiased var), per row c."""
    d, s, _ = _stats(xp, weight)
    return (gain[:, None] * d / s).reshape(weight.shape)


def standardize_vjp(xp: Any, weight: Any, gain: Any, grad_hat: Any) -> tuple[Any, Any]:
    """Pull ``G = ∂L/∂Ŵ`` back to ``(∂L/∂W, ∂L/∂g)`` (see :func:`tess_spec.weight_std.standardize_vjp`)."""
    f = weight.shape[0]
    d, s, n = _stats(xp, weight)
    G = grad_hat.reshape(f, -1)
    dgain = (G * d).sum(axis=1) / s[:, 0]
    gx = gain[:, None] * G
    dot = (gx * d).sum(axis=1, keepdims=True)
    dw = (gx - gx.mean(axis=1, keepdims=True)) / s - dot * n * d / (max(n - 1, 1) * s**3)
    return dw.reshape(weight.shape), dgain

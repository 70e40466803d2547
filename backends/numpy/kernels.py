"""Per-step kernels of the NumPy backend: in-place, dtype-preserving, vectorised.

Each function is one equation of the rule (see :mod:`tess_spec` for the
reference form); the backend composes them in :mod:`.backend`.
"""

from __future__ import annotations

import numpy as np

from tess_spec.ops import im2col, pool_backward, pool_forward

__all__ = [
    "conv_current",
    "lif_inplace",
    "psi_triangle",
    "psi_fast_sigmoid",
    "PSI",
    "decay_add_inplace",
    "corr",
    "pool",
    "pool_vjp",
]


def conv_current(cols: np.ndarray, w2d: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """``I = Ŵ ⋆ x`` from im2col patches: ``cols @ Ŵᵀ`` laid out as ``(B, F, H, W)``."""
    b, f, h, w = shape
    return np.ascontiguousarray((cols @ w2d.T).reshape(b, h, w, f).transpose(0, 3, 1, 2))


def lif_inplace(u: np.ndarray, o: np.ndarray, cur: np.ndarray, leak: float, reset: str, amount: float) -> None:
    """``u ← γ(u - r·o) + I`` (soft) or ``u ← γ·u·(1 - o) + I`` (hard), then ``o ← (u > θ)`` by the caller."""
    if reset == "soft":
        if amount:
            u -= amount * o
    else:
        u *= 1 - o
    u *= leak
    u += cur


def psi_triangle(u: np.ndarray, theta: float) -> np.ndarray:
    """``0.3 · max(0, 1 - |u - θ|)``."""
    r = np.abs(u - theta)
    np.subtract(1, r, out=r)
    np.maximum(r, 0, out=r)
    r *= 0.3
    return r


def psi_fast_sigmoid(u: np.ndarray, theta: float) -> np.ndarray:
    """``1 / (100·|u - θ| + 1)²``."""
    r = np.abs(u - theta)
    r *= 100
    r += 1
    np.square(r, out=r)
    np.reciprocal(r, out=r)
    return r


PSI = {"triangle": psi_triangle, "fast_sigmoid": psi_fast_sigmoid}
"""In-place ψ kernels by name (the names of :data:`tess_spec.config.PSI_NAMES`)."""


def decay_add_inplace(trace: np.ndarray, value: np.ndarray, decay: float) -> None:
    """``trace ← λ · trace + value`` (both eligibility traces have this form)."""
    trace *= decay
    trace += value


def corr(delta: np.ndarray, inp: np.ndarray, kind: str, k: int, cols: np.ndarray | None = None) -> np.ndarray:
    """Outer product summed over the batch (linear) or conv weight-gradient correlation.

    ``cols`` may carry the precomputed im2col patches of ``inp``.
    """
    if kind == "linear":
        return delta.T @ inp
    b, f, h, w = delta.shape
    c = im2col(inp, k) if cols is None else cols
    return (delta.transpose(0, 2, 3, 1).reshape(b * h * w, f).T @ c).reshape(f, inp.shape[1], k, k)


def pool(x: np.ndarray, kind: str | None, p: int) -> np.ndarray:
    """Block pooling (max / avg with window = stride = p, or global average)."""
    return pool_forward(x, kind, p)


def pool_vjp(g: np.ndarray, x: np.ndarray, kind: str | None, p: int) -> np.ndarray:
    """Pooling's vector-Jacobian product (max routes to the first maximal element)."""
    return pool_backward(g, x, kind, p)

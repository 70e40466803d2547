"""Weight standardisation (TESS_RULE.md §2) and its vector-Jacobian product."""

from __future__ import annotations

import numpy as np

__all__ = ["WS_EPS", "standardize", "standardize_vjp"]

WS_EPS = 1e-4
"""The ε inside the standardisation's square root."""


def _stats(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    f = weight.shape[0]
    w = weight.reshape(f, -1)
    n = w.shape[1]
    d = w - w.mean(axis=1, keepdims=True)
    var = (d * d).sum(axis=1, keepdims=True) / max(n - 1, 1)
    s = np.sqrt(var * n + WS_EPS)
    return d, s, n


def standardize(weight: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``Ŵ_c = g_c · (W_c - mean(W_c)) / sqrt(var(W_c) · fan_in + 1e-4)``, per output row c.

    ``var`` is unbiased; ``fan_in`` = elements per row (C·k·k or N).
    """
    d, s, _ = _stats(weight)
    return (gain[:, None] * d / s).reshape(weight.shape)


def standardize_vjp(
    weight: np.ndarray, gain: np.ndarray, grad_hat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pull ``G = ∂L/∂Ŵ`` back to ``(∂L/∂W, ∂L/∂g)``.

    With ``d = W_c - mean``, ``s = sqrt(var·n + ε)``, ``Gx = g_c · G_c``:
    ``∂L/∂g_c = Σ_j G_cj d_j / s``;
    ``∂L/∂W_cj = (Gx_j - mean(Gx)) / s - (Σ_i Gx_i d_i) · n · d_j / ((n-1) · s³)``.
    """
    f = weight.shape[0]
    d, s, n = _stats(weight)
    G = grad_hat.reshape(f, -1)
    dgain = (G * d).sum(axis=1) / s[:, 0]
    gx = gain[:, None] * G
    dot = (gx * d).sum(axis=1, keepdims=True)
    dw = (gx - gx.mean(axis=1, keepdims=True)) / s - dot * n * d / (max(n - 1, 1) * s**3)
    return dw.reshape(weight.shape), dgain

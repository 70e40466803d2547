"""The TESS weight update (TESS_RULE.md §5), per block and step.

``G[t] = α_pre · (m[t] ⊙ ψ[t]) ⊗ q[t]  +  α_post · (m[t] ⊙ h̃[t-1]) ⊗ x[t]``

summed over the learning window ``t ≥ T - n_learn``; ⊗ is the outer product
(summed over the batch) for linear blocks and the weight-gradient correlation
of the convolution for conv blocks.  G is a gradient with respect to the
standardised weight Ŵ; :func:`tess_spec.weight_std.standardize_vjp` chains it to
W and the gain.
"""

from __future__ import annotations

import numpy as np

from .ops import conv2d_weight_corr

__all__ = ["linear_update", "conv_update", "bias_update", "block_update"]


def linear_update(
    m: np.ndarray,
    psi: np.ndarray,
    q: np.ndarray,
    h_tilde: np.ndarray,
    x: np.ndarray,
    alpha_pre: float,
    alpha_post: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear block: causal ``α_pre (m⊙ψ)ᵀ q`` and non-causal ``α_post (m⊙h̃)ᵀ x``.

    ``m, psi, h_tilde``: ``(B, F)``; ``q, x``: ``(B, N)`` → two ``(F, N)`` arrays
    (their sum is G[t]).
    """
    causal = alpha_pre * ((m * psi).T @ q)
    noncausal = alpha_post * ((m * h_tilde).T @ x)
    return causal, noncausal


def conv_update(
    m: np.ndarray,
    psi: np.ndarray,
    q: np.ndarray,
    h_tilde: np.ndarray,
    x: np.ndarray,
    alpha_pre: float,
    alpha_post: float,
    kernel_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Conv block: the same two terms as weight-gradient correlations (summed over
    batch and positions) → two ``(F, C, k, k)`` arrays."""
    causal = alpha_pre * conv2d_weight_corr(m * psi, q, kernel_size)
    noncausal = alpha_post * conv2d_weight_corr(m * h_tilde, x, kernel_size)
    return causal, noncausal


def block_update(
    kind: str,
    m: np.ndarray,
    psi: np.ndarray,
    q: np.ndarray,
    h_tilde: np.ndarray,
    x: np.ndarray,
    alpha_pre: float,
    alpha_post: float,
    kernel_size: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to :func:`linear_update` or :func:`conv_update` by block kind."""
    if kind == "conv":
        return conv_update(m, psi, q, h_tilde, x, alpha_pre, alpha_post, kernel_size)
    return linear_update(m, psi, q, h_tilde, x, alpha_pre, alpha_post)


def bias_update(m: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Bias contribution ``Σ m[t] ⊙ ψ[t]`` summed over batch (and positions) → ``(F,)``."""
    mp = m * psi
    return mp.sum(axis=(0, 2, 3)) if mp.ndim == 4 else mp.sum(axis=0)

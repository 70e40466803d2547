"""Learning-signal generation (TESS_RULE.md §4): a fixed square-wave basis maps each
block's pooled output to class scores; the local cross-entropy's gradient with
respect to the block's spikes is the learning signal m."""

from __future__ import annotations

import numpy as np

from .ops import adaptive_avg_pool, adaptive_avg_pool_backward, pool_backward, pool_forward

__all__ = [
    "basis",
    "softmax",
    "lsg_loss_and_grad",
    "learning_signal",
    "block_output",
]


def basis(n_classes: int, dim: int, omega_min: float = 50.0, omega_max: float = 512.0) -> np.ndarray:
    """Square-wave basis ``B[c, j] = sign(sin(ω_c · j))``, ``ω_c = linspace(ω_min, ω_max, n_classes)[c]``.

    Shape ``(n_classes, dim)``, float64, entries in {-1, 0, 1} (``sign(0) = 0``, so
    column ``j = 0`` is zero).  Fixed, never trained, regenerable from its arguments.
    """
    omega = np.linspace(omega_min, omega_max, n_classes)
    j = np.arange(dim, dtype=np.float64)
    return np.sign(np.sin(omega[:, None] * j[None, :]))


def softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def lsg_loss_and_grad(
    a: np.ndarray, y: np.ndarray, B: np.ndarray, temperature: float = 1.0
) -> tuple[float, np.ndarray]:
    """Local loss and its gradient with respect to the pooled activity ``a``.

    ``z = B̃ · a`` with ``B̃ = B / D``; ``L = mean_batch CE(softmax(z / τ), y)``;
    ``∂L/∂a = B̃ᵀ (softmax(z / τ) - onehot(y)) / (τ · batch)``.
    """
    n, d = a.shape
    Bt = (B / d).astype(a.dtype)
    z = a @ Bt.T
    p = softmax(z / temperature)
    loss = float(-np.mean(np.log(np.maximum(p[np.arange(n), y], np.finfo(p.dtype).tiny))))
    err = p.copy()
    err[np.arange(n), y] -= 1
    return loss, (err / (temperature * n)) @ Bt


def block_output(o: np.ndarray, mask: np.ndarray | None, pool: str | None, pool_size: int) -> np.ndarray:
    """What a block passes on: ``pool(mask ⊙ o)`` (dropout mask fixed over the sequence)."""
    y = o if mask is None else o * mask
    return pool_forward(y, pool, pool_size)


def learning_signal(
    o: np.ndarray,
    y: np.ndarray,
    B: np.ndarray,
    *,
    k: int,
    mask: np.ndarray | None = None,
    pool: str | None = None,
    pool_size: int = 2,
    temperature: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Learning signal ``m[t] = ∂L_l[t] / ∂o[t]`` of one block, and the local loss.

    Chain: ``o → mask ⊙ o → pool → AdaptiveAvgPool_k → a → z = B̃ a → CE``; m is
    the closed-form ∂L/∂a pulled back through the adaptive pool, the pooling
    (max: first maximal element of each window; avg: evenly) and the mask.
    """
    dropped = o if mask is None else o * mask
    out = pool_forward(dropped, pool, pool_size)
    a = adaptive_avg_pool(out, k)
    loss, g_a = lsg_loss_and_grad(a, y, B, temperature)
    g_out = adaptive_avg_pool_backward(g_a, out.shape, k)
    g_dropped = pool_backward(g_out, dropped, pool, pool_size) if out.ndim == 4 else g_out
    m = g_dropped if mask is None else g_dropped * mask
    return m, loss

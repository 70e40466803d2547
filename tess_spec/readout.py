"""The non-spiking linear readout (TESS_RULE.md §6) and its cross-entropy gradient."""

from __future__ import annotations

import numpy as np

from .lsg import softmax

__all__ = ["readout_features", "readout_forward", "readout_grad", "cross_entropy"]


def readout_features(out: np.ndarray) -> np.ndarray:
    """``a_L[t]``: the last block's output, globally average-pooled if spatial → ``(B, F)``."""
    return out.mean(axis=(2, 3)) if out.ndim == 4 else out


def readout_forward(a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``logits[t] = W_r · a_L[t] + b_r``."""
    z = a @ weight.T
    return z if bias is None else z + bias


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of integer labels ``y`` under ``softmax(logits)``."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def readout_grad(a: np.ndarray, logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the per-step readout loss ``mean CE(logits[t], y)``:
    ``∂/∂W_r = (softmax(logits) - onehot(y))ᵀ a / batch``, ``∂/∂b_r = Σ_batch (...) / batch``."""
    n = a.shape[0]
    err = softmax(logits)
    err[np.arange(n), y] -= 1
    err /= n
    return err.T @ a, err.sum(axis=0)

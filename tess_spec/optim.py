"""Optimiser steps (Adam, SGD with momentum) and the reduce-on-plateau schedule (§7).

Each block and the readout has its own optimiser; since both rules act per
parameter, running them on all parameters with a shared step count is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["adam_step", "sgd_step", "PlateauState", "plateau_update"]


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step (``step`` counts from 1), minimising (array-namespace generic:
    only arithmetic operators, so NumPy, torch and CuPy arrays all work):

    ``g ← g + wd·p``; ``m ← β1 m + (1-β1) g``; ``v ← β2 v + (1-β2) g²``;
    ``p ← p - lr · (m / (1-β1^step)) / (sqrt(v / (1-β2^step)) + ε)``.
    """
    b1, b2 = betas
    g = grad + weight_decay * param if weight_decay else grad
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1**step)
    v_hat = v / (1 - b2**step)
    return param - lr * m_hat / (v_hat**0.5 + eps), m, v


def sgd_step(
    param: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray,
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """SGD with momentum (torch semantics, ``buf`` starts at 0; namespace generic):
    ``g ← g + wd·p``; ``buf ← μ·buf + g``; ``p ← p - lr · buf``."""
    g = grad + weight_decay * param if weight_decay else grad
    buf = momentum * buf + g
    return param - lr * buf, buf


@dataclass(frozen=True)
class PlateauState:
    """State of reduce-on-plateau: the current rate, the best loss and the bad-epoch count."""

    lr: float
    best: float = float("inf")
    bad_epochs: int = 0


def plateau_update(
    state: PlateauState,
    loss: float,
    *,
    factor: float = 0.5,
    patience: int = 5,
    threshold: float = 1e-4,
    min_lr: float = 0.0,
) -> PlateauState:
    """After an epoch with monitored ``loss``: an improvement is ``loss < best·(1 - threshold)``;
    after more than ``patience`` epochs without one, ``lr ← max(lr·factor, min_lr)``
    and the count restarts (torch's ReduceLROnPlateau, mode ``min``, ``rel``)."""
    if loss < state.best * (1 - threshold):
        return PlateauState(state.lr, loss, 0)
    bad = state.bad_epochs + 1
    if bad > patience:
        return PlateauState(max(state.lr * factor, min_lr), state.best, 0)
    return PlateauState(state.lr, state.best, bad)

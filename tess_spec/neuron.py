"""LIF neuron, spike function and surrogate derivatives ψ (TESS_RULE.md §2–§3).

Every function is pure and preserves the floating dtype of its inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import PSI_NAMES, LIFConfig
from .errors import ConfigError

__all__ = [
    "lif_step",
    "spike",
    "psi_triangle",
    "psi_fast_sigmoid",
    "psi",
    "PSI_FUNCTIONS",
    "reset_amount",
]


def lif_step(
    u_prev: np.ndarray,
    o_prev: np.ndarray,
    current: np.ndarray,
    *,
    leak: float,
    reset: str,
    amount: float,
) -> np.ndarray:
    """Membrane update of one step.

    Soft reset:  ``u[t] = γ · (u[t-1] - r · o[t-1]) + I[t]``

    Hard reset:  ``u[t] = γ · u[t-1] · (1 - o[t-1]) + I[t]``

    with ``u[-1] = 0``, ``o[-1] = 0``, γ = ``leak``, r = ``amount``, I = ``current``.
    """
    if reset == "soft":
        return leak * (u_prev - amount * o_prev) + current
    if reset == "hard":
        return leak * u_prev * (1 - o_prev) + current
    raise ConfigError(f"reset={reset!r} is invalid: expected 'soft' or 'hard'")


def spike(u: np.ndarray, theta: float) -> np.ndarray:
    """Spike output ``o[t] = 1 if u[t] > θ else 0`` (strict inequality), in u's dtype."""
    return (u > theta).astype(u.dtype)


def psi_triangle(u: np.ndarray, theta: float) -> np.ndarray:
    """Triangular surrogate (conv blocks): ``ψ = 0.3 · max(0, 1 - |u - θ|)``."""
    return 0.3 * np.maximum(0, 1 - np.abs(u - theta))


def psi_fast_sigmoid(u: np.ndarray, theta: float) -> np.ndarray:
    """Fast-sigmoid-squared surrogate (reference linear blocks): ``ψ = 1 / (100 · |u - θ| + 1)²``."""
    return 1 / (100 * np.abs(u - theta) + 1) ** 2


PSI_FUNCTIONS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "triangle": psi_triangle,
    "fast_sigmoid": psi_fast_sigmoid,
}
"""ψ functions by name; the names are :data:`tess_spec.config.PSI_NAMES`."""

assert tuple(PSI_FUNCTIONS) == PSI_NAMES


def psi(name: str, u: np.ndarray, theta: float) -> np.ndarray:
    """Surrogate derivative ψ[t] of the spike at membrane ``u``, selected by ``name``."""
    try:
        fn = PSI_FUNCTIONS[name]
    except KeyError:
        raise ConfigError(f"psi={name!r} is invalid: expected one of {list(PSI_FUNCTIONS)}") from None
    return fn(u, theta)


def reset_amount(lif: LIFConfig, profile: str, kind: str) -> float:
    """Soft-reset amount r of a block (TESS_RULE.md §9).

    An explicit ``lif.reset_amount`` wins.  Otherwise ``"paper"`` uses r = θ for
    every block; ``"reference-code"`` uses r = 1.0 in conv blocks (the public
    implementation's rounded θ) and r = θ in linear blocks.
    """
    if lif.reset_amount is not None:
        return float(lif.reset_amount)
    if profile == "reference-code" and kind == "conv":
        return 1.0
    return float(lif.theta)

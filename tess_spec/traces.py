"""Eligibility traces (TESS_RULE.md §3) and the profile-dependent non-causal trace (§9).

Both traces are O(neurons): there is no per-synapse state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["presynaptic_trace", "postsynaptic_trace", "noncausal_trace"]


def presynaptic_trace(q_prev: np.ndarray, x: np.ndarray, lambda_pre: float) -> np.ndarray:
    """Presynaptic trace, one per input element: ``q[t] = λ_pre · q[t-1] + x[t]``, ``q[-1] = 0``."""
    return lambda_pre * q_prev + x


def postsynaptic_trace(h_prev: np.ndarray, psi: np.ndarray, lambda_post: float) -> np.ndarray:
    """Postsynaptic trace, one per neuron: ``h[t] = λ_post · h[t-1] + ψ[t]``, ``h[-1] = 0``."""
    return lambda_post * h_prev + psi


def noncausal_trace(h_prev: np.ndarray, lambda_post: float, profile: str) -> np.ndarray:
    """The trace h̃[t-1] of the non-causal (post-before-pre) term.

    ``"paper"``: ``h̃[t-1] = λ_post · h[t-1]``;  ``"reference-code"``: ``h̃[t-1] = h[t-1]``.
    """
    if profile == "paper":
        return lambda_post * h_prev
    return h_prev

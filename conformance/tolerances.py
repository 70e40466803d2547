"""The conformance suite's tolerance policy, per quantity and dtype — the one place
where the numbers live (``docs/conformance.md`` explains them).

A backend's value ``a`` matches the reference value ``r`` (the spec run in float64
on the same float-rounded inputs) when, elementwise,

    |a - r| <= rtol * |r| + atol * max|r|

where ``max|r|`` is the largest magnitude of the reference array being compared
(one block's quantity over all compared steps and samples).  The absolute floor is
thus a fraction of the quantity's own scale — it does not grow with the number of
elements or steps.  Spikes are compared exactly; in float32 a spike may differ only
where the reference membrane lies within :func:`spike_band` of θ, and every such
flip is reported (the flipped sample is excluded from later comparisons, and
batch-summed quantities of that case are reported as not compared).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Tolerance", "TOLERANCES", "SPIKE_BAND", "QUANTITIES", "tolerance", "spike_band", "within", "policy_rows"]


@dataclass(frozen=True)
class Tolerance:
    """``|a - r| <= rtol·|r| + atol·max|r|`` (``atol`` is relative to the array's scale)."""

    rtol: float
    atol: float

    def bound(self, ref: np.ndarray, scale: float | None = None) -> np.ndarray:
        """Elementwise allowed error for reference values ``ref``."""
        ref = np.asarray(ref, dtype=np.float64)
        s = float(np.max(np.abs(ref))) if scale is None and ref.size else (scale or 0.0)
        return self.rtol * np.abs(ref) + self.atol * s


QUANTITIES: dict[str, str] = {
    "u": "membrane potential u[t]",
    "psi": "surrogate ψ[t]",
    "q": "presynaptic trace q[t]",
    "h": "postsynaptic trace h[t]",
    "m": "learning signal m[t]",
    "logits": "readout logits[t]",
    "lsg_loss": "local LSG loss L_l[t]",
    "loss": "loss of the time-summed logits",
    "dw": "per-block window-summed updates (causal, non-causal, w.r.t. Ŵ)",
    "grads": "gradients handed to the optimiser (after weight standardisation)",
    "params": "parameters and optimiser moments after one optimiser step",
    "autodiff": "TESS update vs autodiff/finite-difference gradient, m vs ∂L/∂o",
}
"""Every compared quantity and what it is."""

TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "float64": {
        "u": Tolerance(1e-9, 1e-11),
        "psi": Tolerance(1e-9, 1e-10),
        "q": Tolerance(1e-9, 1e-11),
        "h": Tolerance(1e-9, 1e-10),
        "m": Tolerance(1e-9, 1e-10),
        "logits": Tolerance(1e-9, 1e-10),
        "lsg_loss": Tolerance(1e-9, 1e-11),
        "loss": Tolerance(1e-9, 1e-11),
        "dw": Tolerance(1e-8, 1e-9),
        "grads": Tolerance(1e-8, 1e-9),
        "params": Tolerance(1e-9, 1e-11),
        "autodiff": Tolerance(1e-7, 1e-8),
    },
    "float32": {
        "u": Tolerance(1e-4, 1e-5),
        "psi": Tolerance(1e-3, 5e-4),
        "q": Tolerance(1e-5, 1e-6),
        "h": Tolerance(1e-3, 5e-4),
        "m": Tolerance(1e-4, 1e-5),
        "logits": Tolerance(1e-4, 1e-5),
        "lsg_loss": Tolerance(1e-5, 1e-6),
        "loss": Tolerance(1e-5, 1e-6),
        "dw": Tolerance(2e-3, 5e-4),
        "grads": Tolerance(2e-3, 5e-4),
        "params": Tolerance(1e-5, 1e-6),
        "autodiff": Tolerance(2e-3, 5e-4),
    },
}
"""Per dtype, per quantity.  float64: tight (summation order only); float32: rounding
of ~1e-7 per operation, amplified by the steep surrogate and by cancellation in
window sums."""

SPIKE_BAND: dict[str, float] = {"float64": 0.0, "float32": 1e-4}
"""Half-width of the band around θ, relative to ``max(1, θ)``, inside which a spike
may flip.  float64: none — spikes must be equal."""


def tolerance(quantity: str, dtype: str) -> Tolerance:
    """The tolerance of ``quantity`` (a key of :data:`QUANTITIES`) in ``dtype``."""
    return TOLERANCES[dtype][quantity]


def spike_band(theta: float, dtype: str) -> float:
    """Absolute band ``|u_ref - θ| <= band`` in which a float32 spike may flip."""
    return SPIKE_BAND[dtype] * max(1.0, abs(theta))


def within(a: np.ndarray, ref: np.ndarray, quantity: str, dtype: str, scale: float | None = None) -> tuple[bool, str]:
    """Whether ``a`` matches ``ref`` for ``quantity``; a message with the worst element."""
    a = np.asarray(a, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if a.shape != r.shape:
        return False, f"shape {a.shape} != expected {r.shape}"
    if a.size == 0:
        return True, ""
    if not np.all(np.isfinite(a)):
        return False, "non-finite values"
    tol = tolerance(quantity, dtype)
    err = np.abs(a - r)
    bound = tol.bound(r, scale)
    bad = err > bound
    if not bad.any():
        return True, ""
    idx = np.unravel_index(int(np.argmax(np.where(bad, err - bound, -np.inf))), a.shape)
    return False, (
        f"{int(bad.sum())}/{a.size} elements out of tolerance (rtol={tol.rtol:g}, atol={tol.atol:g}·max|ref|); "
        f"worst at {tuple(int(i) for i in idx)}: got {a[idx]!r}, expected {r[idx]!r}, "
        f"max abs error {float(err.max()):.3g}"
    )


def policy_rows(dtype: str) -> list[tuple[str, str, float, float]]:
    """``(quantity, description, rtol, atol)`` rows of ``dtype`` (for reports)."""
    return [(q, QUANTITIES[q], TOLERANCES[dtype][q].rtol, TOLERANCES[dtype][q].atol) for q in QUANTITIES]

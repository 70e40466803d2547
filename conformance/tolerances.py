"""The conformance suite's tolerance policy, per quantity and dtype — the one place
where the numbers live (``docs/conformance.md`` explains them).

A backend's value ``a`` matches the reference value ``r`` (the spec run in float64
on the same float-rounded inputs) when, elementwise,

    |a - r| <= rtol·|r| + atol·S (+ floor·F, oracle comparisons only)

**The scale S is the magnitude of what enters the computation, not of its result.**
Rounding in a sum ``Σ_i a_i b_i`` is bounded by ``n·ε·Σ_i |a_i||b_i|`` — by the size of
the *terms*, whatever the sum cancels to.  A floor relative to the result alone
(``max|r|``) therefore demands, when the terms cancel, an accuracy no arithmetic has:
the drawn case ``input (2,2,2), one conv block of 1 feature, kernel 1, weight
standardisation, T = 1, factors (0,0,0,1)`` has a weight gradient of ~1e-8 that is the
difference of chain-rule terms of ~1e-1 (with fan-in 2, the standardisation removes
almost every direction of W), and float32 cancellation gave a "3 % error" that was
rounding at 1e-8 of the terms; the same network with both input channels equal gives
membranes that cancel to 0 exactly (float32: 0.0, float64: -6e-18), and a result-scaled
floor (1e-23) failed them too.  So ``S`` is the largest of

* ``max|r|`` over the compared array (one block's quantity over all compared steps
  and samples) — it never grows with the number of elements or steps;
* the magnitude of the terms the quantity is made of, computed by the harness
  (:mod:`tess.conformance.harness`) from the reference's own inputs:
  membranes ``ū[t] = γ(ū[t-1] + r·o[t-1]) + |Ŵ|⋆|x[t]| + |b|`` (the recurrence run on
  absolute values); window-summed updates, one term of the sum
  (``|α_pre|·max|m|·max|ψ|·max|q|``); the weight-standardisation chain rule
  ``∂L/∂W = (g·G - mean(g·G))/s - (Σ g·G·d)·n·d/((n-1)s³)``, its two terms
  ``|g|·max|G|/s`` and ``|Σ g·G·d|·n·max|d|/((n-1)s³)`` per row, and ``Σ|G||d|/s`` for
  the gain.

Spikes are compared exactly; in float32 a spike may differ only where the reference
membrane lies within :func:`spike_band` of θ, and every such flip is reported (the
flipped sample is excluded from later comparisons, and batch-summed quantities of
that case are reported as not compared).

**Oracles** (:mod:`tess.conformance.oracles`).  With the ``autodiff`` oracle (torch
autograd, float64) m and the special-case gradient are compared under ``autodiff``.
The ``finite-differences`` oracle is itself in error: a central difference
``D(h) = (F(w+h) - F(w-h)) / 2h`` has truncation error ``h²/6·|F'''|`` and rounding
error up to ``ε·|F|/h`` (ε = 2.2e-16; each F is rounded to about ``ε·|F|``).  With
the steps used — h = 1e-5 on the spikes (F = L_l, a cross-entropy of a linear map of
o, smooth once max pooling's routing is held at the spec's tie rule) and h = 1e-6 on
the weights (F = the window-summed L_l of the linearised spike, smooth) — that is
≤ 2.2e-11·|F| and ≤ 2.2e-10·|F| from rounding, and truncation of the same order or
less.  Measured against autograd on 60 drawn special-case networks: at most
1.1e-11·max(1, |F|) for m and 2.0e-10·max(1, |F|) for the weights.  So
``finite_differences`` is ``autodiff``'s rtol/atol plus ``floor·F`` with
``F = max(1, |F|)`` and floor = 1e-8 — 45× the worst rounding bound, and still 4 to 6
orders of magnitude below any error a wrong rule makes.  (The earlier step h = 1e-9
had a rounding error of 2.2e-7·|F|, which is why m failed ``rtol 1e-7`` without torch.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Tolerance", "TOLERANCES", "SPIKE_BAND", "QUANTITIES", "tolerance", "spike_band", "within", "policy_rows"]


@dataclass(frozen=True)
class Tolerance:
    """``|a - r| <= rtol·|r| + atol·S + floor·F``: ``S`` the scale of what enters the
    computation (at least ``max|r|``), ``F`` a caller-given scale of the oracle's own error."""

    rtol: float
    atol: float
    floor: float = 0.0

    def bound(self, ref: np.ndarray, scale: float | None = None, floor_scale: float = 0.0) -> np.ndarray:
        """Elementwise allowed error for reference values ``ref``."""
        ref = np.asarray(ref, dtype=np.float64)
        s = float(np.max(np.abs(ref))) if scale is None and ref.size else (scale or 0.0)
        return self.rtol * np.abs(ref) + self.atol * s + self.floor * floor_scale


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
    "autodiff": "m vs ∂L/∂o and the TESS update vs the gradient through time, autodiff oracle",
    "finite_differences": "the same two comparisons, finite-difference oracle (+ floor·max(1, |F|))",
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
        "finite_differences": Tolerance(1e-7, 1e-8, floor=1e-8),
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
        "finite_differences": Tolerance(2e-3, 5e-4, floor=1e-8),
    },
}
"""Per dtype, per quantity.  float64: tight (summation order only); float32: rounding
of ~6e-8 per operation, amplified by the steep surrogate and by cancellation in
window sums (measured at the scale of the terms, above)."""

SPIKE_BAND: dict[str, float] = {"float64": 0.0, "float32": 1e-4}
"""Half-width of the band around θ, relative to ``max(1, θ)``, inside which a spike
may flip.  float64: none — spikes must be equal."""


def tolerance(quantity: str, dtype: str) -> Tolerance:
    """The tolerance of ``quantity`` (a key of :data:`QUANTITIES`) in ``dtype``."""
    return TOLERANCES[dtype][quantity]


def spike_band(theta: float, dtype: str) -> float:
    """Absolute band ``|u_ref - θ| <= band`` in which a float32 spike may flip."""
    return SPIKE_BAND[dtype] * max(1.0, abs(theta))


def within(a: np.ndarray, ref: np.ndarray, quantity: str, dtype: str, scale: float | None = None,
           floor_scale: float = 0.0) -> tuple[bool, str]:
    """Whether ``a`` matches ``ref`` for ``quantity``; a message with the worst element.

    ``scale``: S (default ``max|ref|``); ``floor_scale``: F of the quantity's ``floor`` term."""
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
    bound = tol.bound(r, scale, floor_scale)
    bad = err > bound
    if not bad.any():
        return True, ""
    idx = np.unravel_index(int(np.argmax(np.where(bad, err - bound, -np.inf))), a.shape)
    s = float(np.max(np.abs(r))) if scale is None else scale
    floor = f" + {tol.floor:g}·{floor_scale:.3g}" if tol.floor else ""
    return False, (
        f"{int(bad.sum())}/{a.size} elements out of tolerance (rtol={tol.rtol:g}, atol={tol.atol:g}·S, "
        f"S={s:.3g}{floor}); worst at {tuple(int(i) for i in idx)}: got {a[idx]!r}, expected {r[idx]!r}, "
        f"max abs error {float(err.max()):.3g}"
    )


def policy_rows(dtype: str) -> list[tuple[str, str, float, float]]:
    """``(quantity, description, rtol, atol)`` rows of ``dtype`` (for reports)."""
    return [(q, QUANTITIES[q], TOLERANCES[dtype][q].rtol, TOLERANCES[dtype][q].atol) for q in QUANTITIES]

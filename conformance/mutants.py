"""Deliberately broken variants of the NumPy backend, for the suite's mutation
meta-tests (``tests/conformance/test_mutations.py``): a suite that lets any of
them pass has no teeth.

Each is a subclass of the registered ``numpy`` backend (reached through
:func:`tess.registry.backend_class`, not imported) whose kernels substitute ONE
kernel of the engine's protocol (:class:`tess.engine.Kernels`) with a buggy one:
the algorithm around it is the engine's, exactly as a real backend would get it.
The learning window is not a kernel but part of the plan, so that mutant
substitutes the backend's :meth:`~tess.engine.EngineBackend.plan`.  They are
addressable as ``tess.conformance.mutants:<Name>``, e.g.::

    python -m tess.conformance --backend tess.conformance.mutants:LambdaPreDropped
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tess.engine import BlockStep
from tess.registry import backend_class

_Numpy: Any = backend_class("numpy")
_Kernels: Any = _Numpy.kernels_class

__all__ = ["MUTANTS", "NoncausalWrongIndex", "LambdaPreDropped", "PsiCentredOnZero", "WindowOffByOne",
           "MaxPoolNotRouted", "AdamBiasCorrectionBug", "ResetBeforeSpike", "ResetNotLeaked", "SpikeAtThreshold"]


def _mutant(name: str, doc: str, kernels: type | None = None, **methods: Any) -> type:
    """A numpy-backend subclass called ``name`` whose kernels are ``kernels`` (or whose
    backend methods are ``methods``)."""
    attrs: dict[str, Any] = {"__doc__": doc, "name": name, **methods}
    if kernels is not None:
        attrs["kernels_class"] = kernels
    return type(name, (_Numpy,), attrs)


class _NoncausalWrongIndex(_Kernels):
    def noncausal_trace(self, h_prev, h_new, lambda_post, profile):  # noqa: ANN001, ANN201, D102
        return lambda_post * h_new if profile == "paper" else h_new


class _LambdaPreDropped(_Kernels):
    def presynaptic_trace(self, q, x, lambda_pre):  # noqa: ANN001, ANN201, D102
        return q + x


class _PsiCentredOnZero(_Kernels):
    def psi(self, name, u, theta):  # noqa: ANN001, ANN201, D102
        return super().psi(name, u, 0.0)


class _MaxPoolNotRouted(_Kernels):
    def pool_vjp(self, bp, g, x, aux):  # noqa: ANN001, ANN201, D102
        if bp.pool != "max":
            return super().pool_vjp(bp, g, x, aux)
        p = bp.pool_size
        up = g.repeat(p, axis=2).repeat(p, axis=3)
        full = self.zeros(x.shape)
        full[:, :, : up.shape[2], : up.shape[3]] = up
        return full


class _AdamBiasCorrectionBug(_Kernels):
    def optimizer_step(self, oc, params, moments, grads, lr, corrections):  # noqa: ANN001, ANN201, D102
        if corrections is not None:  # (1-β1^step, 1-β2^step) → the bug: (1-β1^step, 1-β1^step)
            corrections = (corrections[0], corrections[0])
        return super().optimizer_step(oc, params, moments, grads, lr, corrections)


class _ResetBeforeSpike(_Kernels):
    def neuron_step(self, plan, bp, s, cur, x, mask, *, traces=True, noncausal=False):  # noqa: ANN001, ANN201, D102
        lif, tc = plan.lif, plan.traces
        u = lif.leak * s.u + cur
        o = self.spike(u, lif.theta, bp.psi)
        u = u - bp.amount * o if lif.reset == "soft" else u * (1 - o)  # the bug: reset within the step
        dropped = o if mask is None else o * mask
        if not traces:
            return BlockStep(u=u, o=o, dropped=dropped)
        psi = self.psi(bp.psi, u, lif.theta)
        h = self.postsynaptic_trace(s.h, psi, tc.lambda_post)
        h_tilde = self.noncausal_trace(s.h, h, tc.lambda_post, plan.profile) if noncausal else None
        return BlockStep(u=u, o=o, q=self.presynaptic_trace(s.q, x, tc.lambda_pre), h=h, psi=psi,
                         h_tilde=h_tilde, dropped=dropped)


class _ResetNotLeaked(_Kernels):
    def lif(self, u, o, cur, leak, reset, amount):  # noqa: ANN001, ANN201, D102
        return leak * u - amount * o + cur if reset == "soft" else leak * u * (1 - o) + cur


class _SpikeAtThreshold(_Kernels):
    def spike(self, u, theta, psi):  # noqa: ANN001, ANN201, D102
        return self.cast(u >= theta)  # the bug: should be u > θ (strict)


def _late_plan(self: Any, config: Any) -> Any:
    plan = _Numpy.plan(self, config)
    return dataclasses.replace(plan, window_start=plan.window_start + 1)


NoncausalWrongIndex = _mutant("mutant-noncausal-index",
                              "Non-causal term uses h[t] (after this step's update) instead of h[t-1].",
                              _NoncausalWrongIndex)
LambdaPreDropped = _mutant("mutant-lambda-pre-dropped", "Presynaptic trace without its decay: q ← q + x.",
                           _LambdaPreDropped)
PsiCentredOnZero = _mutant("mutant-psi-at-zero", "ψ evaluated around 0 instead of θ.", _PsiCentredOnZero)
WindowOffByOne = _mutant("mutant-window-off-by-one", "Learning window starts one step late (T - n_learn + 1).",
                         plan=_late_plan)
MaxPoolNotRouted = _mutant("mutant-maxpool-unrouted",
                           "m not routed through max pooling: every element of a window gets the gradient.",
                           _MaxPoolNotRouted)
AdamBiasCorrectionBug = _mutant("mutant-adam-bias-correction",
                                "Adam's second-moment bias correction uses β1 instead of β2.", _AdamBiasCorrectionBug)
ResetBeforeSpike = _mutant(
    "mutant-reset-before-spike",
    "The reset is applied to u[t] in the same step, before ψ[t] and the recorded u see it: "
    "u ← γu + I; o ← [u > θ]; u ← u - r·o.  (Spikes are unchanged; ψ is not.)", _ResetBeforeSpike)
ResetNotLeaked = _mutant("mutant-reset-not-leaked",
                         "The reset is subtracted after the leak: u ← γu - r·o + I (instead of γ(u - r·o) + I).",
                         _ResetNotLeaked)
SpikeAtThreshold = _mutant("mutant-spike-at-threshold",
                           "Fires at u >= θ instead of u > θ (continuous draws never hit θ exactly: only the "
                           "exactly representable threshold-tie cases catch it).", _SpikeAtThreshold)


MUTANTS: dict[str, str] = {
    "non-causal term with the wrong trace index": "NoncausalWrongIndex",
    "λ_pre decay dropped": "LambdaPreDropped",
    "ψ centred on 0 instead of θ": "PsiCentredOnZero",
    "learning window off by one": "WindowOffByOne",
    "m not routed through max pooling": "MaxPoolNotRouted",
    "Adam bias-correction bug": "AdamBiasCorrectionBug",
    "reset applied before the spike": "ResetBeforeSpike",
    "reset not leaked": "ResetNotLeaked",
    "spike at u >= θ instead of u > θ": "SpikeAtThreshold",
}
"""Bug described → class name in this module (``tess.conformance.mutants:<name>``)."""

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
           "MaxPoolNotRouted", "AdamBiasCorrectionBug", "ResetBeforeSpike", "ResetNotLeaked", "SpikeAtThreshold",
           "BackpropWithoutPsi", "BackpropKernelNotFlipped", "BackpropGlobalPoolUnscaled", "BackpropMaskDropped",
           "READOUT_MUTANTS"]


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


class _BackpropWithoutPsi(_Kernels):
    def block_vjp(self, bp, g_out, st, mask, w_hat, input_shape):  # noqa: ANN001, ANN201, D102
        return super().block_vjp(bp, g_out, st._replace(psi=1.0 + 0 * st.psi), mask, w_hat, input_shape)


class _BackpropKernelNotFlipped(_Kernels):
    def current_vjp(self, bp, g, w_hat):  # noqa: ANN001, ANN201, D102
        if bp.kind == "linear":
            return super().current_vjp(bp, g, w_hat)
        c = bp.input[0]  # the bug: channels transposed, the kernel not flipped in space
        bt = dataclasses.replace(bp, features=c, input=bp.neurons, neurons=(c, *bp.neurons[1:]),
                                 weight=(c, bp.features, *bp.weight[2:]))
        return self.current(bt, self.operand(bt, g), w_hat.transpose(1, 0, 2, 3).copy(), None)


class _BackpropGlobalPoolUnscaled(_Kernels):
    def readout_input_vjp(self, rp, err, out):  # noqa: ANN001, ANN201, D102
        g = super().readout_input_vjp(rp, err, out)
        return g * (out.shape[2] * out.shape[3]) if out.ndim == 4 else g  # the bug: no 1/(H·W)


class _BackpropMaskDropped(_Kernels):
    def block_vjp(self, bp, g_out, st, mask, w_hat, input_shape):  # noqa: ANN001, ANN201, D102
        # the bug: δ = g ⊙ ψ passed down, not (mask ⊙ g) ⊙ ψ
        return super().block_vjp(bp, g_out, st, None, w_hat, input_shape)


def _late_plan(self: Any, config: Any) -> Any:
    """The numpy backend's plan with the learning window one step late."""
    plan = _Numpy.plan(self, config)
    return dataclasses.replace(plan, window_start=plan.window_start + 1)


class NoncausalWrongIndex(_Numpy):
    """Non-causal term uses h[t] (after this step's update) instead of h[t-1]."""

    name = "mutant-noncausal-index"
    kernels_class = _NoncausalWrongIndex


class LambdaPreDropped(_Numpy):
    """Presynaptic trace without its decay: q ← q + x."""

    name = "mutant-lambda-pre-dropped"
    kernels_class = _LambdaPreDropped


class PsiCentredOnZero(_Numpy):
    """ψ evaluated around 0 instead of θ."""

    name = "mutant-psi-at-zero"
    kernels_class = _PsiCentredOnZero


class WindowOffByOne(_Numpy):
    """Learning window starts one step late (T - n_learn + 1): the plan, not a kernel, is substituted."""

    name = "mutant-window-off-by-one"
    plan = _late_plan


class MaxPoolNotRouted(_Numpy):
    """m not routed through max pooling: every element of a window gets the gradient."""

    name = "mutant-maxpool-unrouted"
    kernels_class = _MaxPoolNotRouted


class AdamBiasCorrectionBug(_Numpy):
    """Adam's second-moment bias correction uses β1 instead of β2."""

    name = "mutant-adam-bias-correction"
    kernels_class = _AdamBiasCorrectionBug


class ResetBeforeSpike(_Numpy):
    """The reset is applied to u[t] in the same step, before ψ[t] and the recorded u see
    it: u ← γu + I; o ← [u > θ]; u ← u - r·o.  (Spikes are unchanged; ψ is not.)"""

    name = "mutant-reset-before-spike"
    kernels_class = _ResetBeforeSpike


class ResetNotLeaked(_Numpy):
    """The reset is subtracted after the leak: u ← γu - r·o + I (instead of γ(u - r·o) + I)."""

    name = "mutant-reset-not-leaked"
    kernels_class = _ResetNotLeaked


class SpikeAtThreshold(_Numpy):
    """Fires at u >= θ instead of u > θ (continuous draws never hit θ exactly: only the
    exactly representable threshold-tie cases catch it)."""

    name = "mutant-spike-at-threshold"
    kernels_class = _SpikeAtThreshold


class BackpropWithoutPsi(_Numpy):
    """Readout back-propagation passes m, not m ⊙ ψ, down to the earlier blocks (the later
    blocks' spike derivative dropped)."""

    name = "mutant-backprop-without-psi"
    kernels_class = _BackpropWithoutPsi


class BackpropKernelNotFlipped(_Numpy):
    """The current's input VJP of a conv block uses the channel-transposed kernel without
    flipping it in space (right only for 1×1 kernels)."""

    name = "mutant-backprop-kernel-not-flipped"
    kernels_class = _BackpropKernelNotFlipped


class BackpropGlobalPoolUnscaled(_Numpy):
    """The readout error enters a spatial last block without the 1/(H·W) of the global average."""

    name = "mutant-backprop-global-pool-unscaled"
    kernels_class = _BackpropGlobalPoolUnscaled


class BackpropMaskDropped(_Numpy):
    """Readout back-propagation ignores a block's dropout mask when it passes the error down."""

    name = "mutant-backprop-mask-dropped"
    kernels_class = _BackpropMaskDropped


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
    "readout back-propagation without the later blocks' ψ": "BackpropWithoutPsi",
    "readout back-propagation through an unflipped conv kernel": "BackpropKernelNotFlipped",
    "readout error not scaled by the global average's 1/(H·W)": "BackpropGlobalPoolUnscaled",
    "readout back-propagation ignores the dropout mask": "BackpropMaskDropped",
}
"""Bug described → class name in this module (``tess.conformance.mutants:<name>``)."""

READOUT_MUTANTS: tuple[str, ...] = ("BackpropWithoutPsi", "BackpropKernelNotFlipped", "BackpropGlobalPoolUnscaled",
                                    "BackpropMaskDropped")
"""The mutants of readout back-propagation (TESS_RULE.md §11): invisible to a run with the
LSG signal, so the suite must catch them with its readout-backprop cases."""

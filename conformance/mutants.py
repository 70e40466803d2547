"""Deliberately broken variants of the NumPy backend, for the suite's mutation
meta-tests (``tests/conformance/test_mutations.py``): a suite that lets any of
them pass has no teeth.

Each is a subclass of the registered ``numpy`` backend (reached through
:func:`tess.registry.backend_class`, not imported) that overrides one seam of its
step.  They are addressable as ``tess.conformance.mutants:<Name>``, e.g.::

    python -m tess.conformance --backend tess.conformance.mutants:LambdaPreDropped
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tess.registry import backend_class

_Numpy: Any = backend_class("numpy")

__all__ = ["MUTANTS", "NoncausalWrongIndex", "LambdaPreDropped", "PsiCentredOnZero", "WindowOffByOne",
           "MaxPoolNotRouted", "AdamBiasCorrectionBug", "ResetBeforeSpike", "ResetNotLeaked"]


class NoncausalWrongIndex(_Numpy):
    """Non-causal term uses h[t] (after this step's update) instead of h[t-1]."""

    name = "mutant-noncausal-index"

    def noncausal_trace(self, config, h_prev, h_new):  # noqa: ANN001, ANN201, D102
        lp = config.traces.lambda_post
        return lp * h_new if config.profile == "paper" else h_new.copy()


class LambdaPreDropped(_Numpy):
    """Presynaptic trace without its decay: q ← q + x."""

    name = "mutant-lambda-pre-dropped"

    def trace_step(self, config, s, x, psi):  # noqa: ANN001, ANN201, D102
        s["q"] += x
        s["h"] *= config.traces.lambda_post
        s["h"] += psi


class PsiCentredOnZero(_Numpy):
    """ψ evaluated around 0 instead of θ."""

    name = "mutant-psi-at-zero"

    def surrogate(self, plan, u, theta):  # noqa: ANN001, ANN201, D102
        return super().surrogate(plan, u, 0.0)


class WindowOffByOne(_Numpy):
    """Learning window starts one step late (T - n_learn + 1)."""

    name = "mutant-window-off-by-one"

    def window_start(self, config):  # noqa: ANN001, ANN201, D102
        return config.train.window_start + 1


class MaxPoolNotRouted(_Numpy):
    """m not routed through max pooling: every element of a window gets the gradient."""

    name = "mutant-maxpool-unrouted"

    def pool_vjp(self, g, x, pool, pool_size):  # noqa: ANN001, ANN201, D102
        if pool == "max":
            b, c, h, w = x.shape
            up = np.repeat(np.repeat(g, pool_size, axis=2), pool_size, axis=3)
            full = np.zeros_like(x, dtype=g.dtype)
            full[:, :, : up.shape[2], : up.shape[3]] = up
            return full
        return super().pool_vjp(g, x, pool, pool_size)


class AdamBiasCorrectionBug(_Numpy):
    """Adam's second-moment bias correction uses β1 instead of β2."""

    name = "mutant-adam-bias-correction"

    def optimizer_step(self, config, params, opt_state, grads, lr):  # noqa: ANN001, ANN201, D102
        if config.optimizer.name != "adam":
            return super().optimizer_step(config, params, opt_state, grads, lr)
        oc = config.optimizer
        b1, b2 = oc.betas
        step = int(opt_state["step"]) + 1
        c1, c2 = 1 - b1**step, 1 - b1**step  # the bug: should be 1 - b2**step
        new_p, ms, vs = {}, {}, {}
        for k, p in params.items():
            g = grads[k] + oc.weight_decay * p if oc.weight_decay else grads[k]
            ms[k] = b1 * opt_state["m"][k] + (1 - b1) * g
            vs[k] = b2 * opt_state["v"][k] + (1 - b2) * g * g
            new_p[k] = p - lr * (ms[k] / c1) / (np.sqrt(vs[k] / c2) + oc.eps)
        return new_p, {"step": step, "m": ms, "v": vs}


class ResetBeforeSpike(_Numpy):
    """The reset is applied to u[t] in the same step, before ψ[t] and the recorded u see
    it: u ← γu + I; o ← [u > θ]; u ← u - r·o.  (Spikes are unchanged; ψ is not.)"""

    name = "mutant-reset-before-spike"

    def neuron_step(self, config, plan, s, cur):  # noqa: ANN001, ANN201, D102
        lif = config.lif
        s["u"] *= lif.leak
        s["u"] += cur
        s["o"] = (s["u"] > lif.theta).astype(self.dtype)
        if lif.reset == "soft":
            s["u"] -= plan.amount * s["o"]
        else:
            s["u"] *= 1 - s["o"]


class ResetNotLeaked(_Numpy):
    """The reset is subtracted after the leak: u ← γu - r·o + I (instead of γ(u - r·o) + I)."""

    name = "mutant-reset-not-leaked"

    def neuron_step(self, config, plan, s, cur):  # noqa: ANN001, ANN201, D102
        lif = config.lif
        if lif.reset == "soft":
            s["u"] *= lif.leak
            s["u"] -= plan.amount * s["o"]
        else:
            s["u"] *= lif.leak * (1 - s["o"])
        s["u"] += cur
        s["o"] = (s["u"] > lif.theta).astype(self.dtype)


MUTANTS: dict[str, str] = {
    "non-causal term with the wrong trace index": "NoncausalWrongIndex",
    "λ_pre decay dropped": "LambdaPreDropped",
    "ψ centred on 0 instead of θ": "PsiCentredOnZero",
    "learning window off by one": "WindowOffByOne",
    "m not routed through max pooling": "MaxPoolNotRouted",
    "Adam bias-correction bug": "AdamBiasCorrectionBug",
    "reset applied before the spike": "ResetBeforeSpike",
    "reset not leaked": "ResetNotLeaked",
}
"""Bug described → class name in this module (``tess.conformance.mutants:<name>``)."""

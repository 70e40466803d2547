"""The BPTT baseline (TESS_RULE.md §10) as a method of the torch backend:
``tess.get_backend("torch", method="bptt")`` or ``tess.Model(config, "torch", method="bptt")``.

The same network, LIF dynamics and kernels as TESS (the engine's forward pass:
current, neuron step, pooling, weight standardisation, readout), trained end to end
by autograd through time:

* the spike ``o = H(u - θ)`` (strict) is :class:`SpikeFunction`, whose derivative is
  the block's surrogate ψ (the engine's :meth:`~tess.engine.Kernels.psi`);
* the loss is the cross-entropy of the time-summed readout logits
  ``L = CE(Σ_t logits[t], y)``, and every parameter is trained from it by the
  engine's optimiser step (the same Adam/SGD as TESS, with the config's settings);
* the soft reset is differentiated through (``detach_reset=False``).

Its memory grows linearly with T (autograd keeps every step's activations); that
is the point of comparison.  It has no record (``record=True`` is an error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from tess.backend import TrainOutput
from tess.engine import adam_corrections, params_from_flat, params_to_flat, predict
from tess_spec import TessConfig
from tess_spec.errors import ConfigError
from tess_spec.plan import NetworkPlan

from .kernels import TorchKernels

if TYPE_CHECKING:  # pragma: no cover
    from .backend import TorchBackend

__all__ = ["SpikeFunction", "BPTTKernels", "loss_and_gradients", "train_batch"]


class SpikeFunction(torch.autograd.Function):
    """``o = 1[u > θ]`` forward; ``∂o/∂u := ψ(u)`` backward (the surrogate gradient).

    Call as ``SpikeFunction.apply(u, theta, psi_name, kernels)`` (``kernels`` supplies ψ).
    """

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, theta: float, psi_name: str, kernels: TorchKernels) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(u)
        ctx.theta, ctx.psi_name, ctx.kernels = theta, psi_name, kernels
        return (u > theta).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None, None]:  # noqa: D102
        (u,) = ctx.saved_tensors
        return grad * ctx.kernels.psi(ctx.psi_name, u, ctx.theta), None, None, None


class BPTTKernels(TorchKernels):
    """:class:`~.kernels.TorchKernels` whose spike has the surrogate derivative (so autograd
    through the engine's forward pass is surrogate BPTT); ``detach_reset`` treats the
    reset term as a constant."""

    detach_reset: bool = False

    def spike(self, u: torch.Tensor, theta: float, psi: str) -> torch.Tensor:
        """:class:`SpikeFunction` (forward: the strict Heaviside)."""
        return SpikeFunction.apply(u, theta, psi, self)

    def lif(self, u: torch.Tensor, o: torch.Tensor, cur: torch.Tensor, leak: float, reset: str,
            amount: float) -> torch.Tensor:
        """The engine's LIF update, with ``o[t-1]`` detached when :attr:`detach_reset`."""
        return super().lif(u, o.detach() if self.detach_reset else o, cur, leak, reset, amount)


def loss_and_gradients(
    K: TorchKernels, plan: NetworkPlan, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
    masks: list[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """``(L, Σ_t logits, ∂L/∂θ)`` with ``L = CE(Σ_t logits[t], y)`` (mean over the batch),
    by autograd through the engine's forward pass (:func:`tess.engine.predict`).

    A direct input is fed as a sequence of T identical frames (a view, no copy): the
    baseline recomputes block 0's current every step, as BPTT is written and costed
    (:mod:`tess.complexity`), rather than TESS's compute-once."""
    if x.dim() == len(plan.config.network.input_shape) + 1:
        x = x.unsqueeze(1).expand(x.shape[0], plan.T, *x.shape[1:])
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad():
        summed = predict(K, plan, params_from_flat(plan, leaves), x, masks)
        loss = F.cross_entropy(summed, y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), summed.detach(), dict(zip(leaves, grads))


def train_batch(
    backend: "TorchBackend", config: TessConfig, params: dict[str, torch.Tensor], opt_state: dict[str, Any],
    x: torch.Tensor, y: np.ndarray, masks: list[torch.Tensor | None], lr: float, record: bool,
) -> TrainOutput:
    """One mini-batch of BPTT: the gradient of the loss above, then the engine's optimiser step.

    ``TrainOutput.state`` is empty (BPTT keeps no eligibility state)."""
    if record:
        raise ConfigError("record=True records TESS's per-step quantities; the BPTT method has none to record")
    K = backend.kernels
    plan = backend.plan(config)
    yt = K.labels(y)
    loss, summed, grads = loss_and_gradients(K, plan, params, x, yt, masks)
    step = int(opt_state["step"]) + 1
    with torch.no_grad():
        new_params, new_moments = K.optimizer_step(
            config.optimizer, params_from_flat(plan, params), backend.moments(plan, opt_state),
            params_from_flat(plan, grads), lr, adam_corrections(config.optimizer, step))
        n_correct = int((summed.argmax(dim=1) == yt).sum())
    opt = {"step": step, **{k: params_to_flat(plan, v) for k, v in new_moments.items()}}
    return TrainOutput(params_to_flat(plan, new_params), opt, float(loss), n_correct, [], None)

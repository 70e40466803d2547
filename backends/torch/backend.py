"""The PyTorch backend: TESS's full train step on torch tensors (CPU or CUDA).

The TESS path uses the spec's closed-form updates, never autograd: every step
runs under :func:`torch.no_grad`, no graph is built, and nothing proportional to
T is kept — the per-block state ``u, o, q, h`` is updated in place and the
window sums of the update are accumulated in place.  Currents use
``torch.nn.functional.conv2d`` / ``linear``; the weight-gradient correlations
use torch's convolution-backward kernel; max pooling keeps torch's argmax
indices (the first maximal element of each window, row-major — the spec's
routing) for the learning signal's pull-back.  The LSG's adaptive pool and basis
are fused into one ``(n_classes × outputs)`` matrix per block, and a direct
(static) input's first-block current is computed once per sequence.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from tess.backend import Backend, TrainOutput
from tess_spec import TessConfig, state_shapes
from tess_spec.errors import ConfigError
from tess_spec.reference import BlockPlan, block_plans, chain_grads, new_record
from tess_spec.reference import optimizer_step as spec_optimizer_step

from . import kernels as K
from .device import torch_device, torch_dtype

__all__ = ["TorchBackend", "BlockPlan"]

log = logging.getLogger(__name__)


class TorchBackend(Backend):
    """TESS on PyTorch. Options: ``dtype`` ("float32" | "float64"), ``device`` ("cpu" | "cuda" | "cuda:N"),
    ``threads`` (if given, ``torch.set_num_threads(threads)`` — process-wide — for CPU runs on shared cores).

    A CUDA device on a machine without one raises
    :class:`~tess.errors.BackendUnavailableError`.
    """

    name = "torch"
    devices = ("cpu", "cuda")

    def __init__(self, *, dtype: str = "float32", device: str | None = None, threads: int | None = None) -> None:
        super().__init__(dtype=dtype, device=device)
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ConfigError(f"threads={threads!r} is invalid: expected a positive integer")
            torch.set_num_threads(threads)
        self.torch_device: torch.device = torch_device(self.device)
        self.torch_dtype: torch.dtype = torch_dtype(dtype)
        self._plans: dict[int, tuple[TessConfig, list[BlockPlan]]] = {}

    # -- conversions -----------------------------------------------------------
    def asarray(self, a: np.ndarray) -> torch.Tensor:
        """A tensor of this backend's dtype on its device holding ``a``.

        On the CPU a contiguous, writeable array of the right dtype is shared, not
        copied (an input sequence is O(T) data; copying it would make the step's
        memory grow with T); the backend never writes into its inputs or parameters.
        """
        a = np.asarray(a)
        if (
            self.torch_device.type == "cpu"
            and a.dtype == np.dtype(self.dtype)
            and a.flags.c_contiguous
            and a.flags.writeable
        ):
            return torch.from_numpy(a)
        return torch.as_tensor(np.ascontiguousarray(a, dtype=self.dtype), device=self.torch_device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy of a tensor (moved to the host)."""
        if isinstance(a, torch.Tensor):
            return a.detach().to("cpu").numpy().copy()
        return np.array(a, copy=True)

    def init_state(self, config: TessConfig, batch: int) -> list[dict[str, torch.Tensor]]:
        """Zero per-block state ``[{u, o, q, h}, ...]`` on the device."""
        return [
            {k: self._zeros(s) for k, s in d.items()}
            for d in state_shapes(config.network, batch)
        ]

    def _zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, dtype=self.torch_dtype, device=self.torch_device)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, torch version and (CPU) intra-op thread count."""
        extra = {"torch": torch.__version__, "threads": str(torch.get_num_threads())}
        if self.torch_device.type == "cuda":
            extra["gpu"] = torch.cuda.get_device_name(self.torch_device)
        return {**super().info(), **extra}

    # -- planning ----------------------------------------------------------------
    def plan(self, config: TessConfig) -> list[BlockPlan]:
        """Per-block constants (cached per config object)."""
        hit = self._plans.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
        plans = [
            replace(p, lsg_matrix=torch.as_tensor(p.lsg_matrix, dtype=self.torch_dtype, device=self.torch_device))
            for p in block_plans(config)
        ]
        self._plans[id(config)] = (config, plans)
        return plans

    # -- pieces ------------------------------------------------------------------
    def effective_weight(self, config: TessConfig, params: dict[str, torch.Tensor], i: int) -> torch.Tensor:
        """Ŵ of block i (weight standardisation when the block asks for it)."""
        w = params[f"blocks.{i}.weight"]
        return K.standardize(w, params[f"blocks.{i}.gain"]) if config.network.blocks[i].weight_std else w

    def learning_signal(
        self, plan: BlockPlan, out: torch.Tensor, dropped_shape: tuple[int, ...], idx: torch.Tensor | None,
        err_scale: float, onehot: torch.Tensor, mask: torch.Tensor | None, temperature: float, want_loss: bool,
    ) -> tuple[torch.Tensor, float]:
        """``m = ∂L_l/∂o``: ``z = M·out`` (M = B̃ ∘ adaptive pool), ``∂L/∂out = Mᵀ(softmax(z/τ) - onehot)/(τ·B)``,
        pulled back through the pooling and the dropout mask.  The local loss is computed
        only when ``want_loss`` (it needs a device sync)."""
        n = out.shape[0]
        z = out.reshape(n, -1) @ plan.lsg_matrix.t()
        logp = torch.log_softmax(z / temperature, dim=1)
        loss = float(-(logp * onehot).sum() / n) if want_loss else 0.0
        err = logp.exp_().sub_(onehot).mul_(err_scale)
        g_out = (err @ plan.lsg_matrix).view(out.shape)
        g = K.pool_vjp(g_out, dropped_shape, plan.pool, plan.pool_size, idx) if out.dim() == 4 else g_out
        return (g if mask is None else g.mul_(mask)), loss

    def optimizer_step(
        self, config: TessConfig, params: dict[str, torch.Tensor], opt_state: dict[str, Any],
        grads: dict[str, torch.Tensor], lr: float,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Adam (bias-corrected) or SGD with momentum, into new tensors (the inputs are not modified)."""
        return spec_optimizer_step(config, dict(params), dict(opt_state), dict(grads), lr)

    # -- the train step --------------------------------------------------------------
    def _train_batch(
        self, config: TessConfig, params: dict[str, torch.Tensor], opt_state: dict[str, Any], x: torch.Tensor,
        y: np.ndarray, masks: list[torch.Tensor | None], lr: float, record: bool,
    ) -> TrainOutput:
        with torch.no_grad():
            return self._train_batch_nograd(config, params, opt_state, x, y, masks, lr, record)

    def _train_batch_nograd(
        self, config: TessConfig, params: dict[str, torch.Tensor], opt_state: dict[str, Any], x: torch.Tensor,
        y: np.ndarray, masks: list[torch.Tensor | None], lr: float, record: bool,
    ) -> TrainOutput:
        net, tc, lif = config.network, config.traces, config.lif
        T = config.train.T
        start = config.train.window_start
        dev, dt = self.torch_device, self.torch_dtype
        n = x.shape[0]
        plans = self.plan(config)
        sequence = x.dim() == len(net.input_shape) + 2
        yt = torch.as_tensor(y, dtype=torch.int64, device=dev)
        onehot = torch.nn.functional.one_hot(yt, net.n_classes).to(dt)
        temp = config.lsg.temperature
        w_hat = [self.effective_weight(config, params, i) for i in range(len(net.blocks))]
        biases = [params.get(f"blocks.{i}.bias") for i in range(len(net.blocks))]
        state = self.init_state(config, n)
        causal = [torch.zeros(pl.weight_shape, dtype=dt, device=dev) for pl in plans]
        noncausal = [torch.zeros(pl.weight_shape, dtype=dt, device=dev) for pl in plans]
        dbias = [torch.zeros((b.features,), dtype=dt, device=dev) for b in net.blocks]
        ro_w = params["readout.weight"]
        ro_b = params.get("readout.bias")
        d_ro_w = torch.zeros_like(ro_w)
        d_ro_b = torch.zeros((net.n_classes,), dtype=dt, device=dev)
        summed = torch.zeros((n, net.n_classes), dtype=dt, device=dev)
        rec = new_record(config, n, self.dtype) if record else None
        static_cur: torch.Tensor | None = None
        lp = tc.lambda_post

        for t in range(T):
            learn = t >= start
            inp = x[:, t] if sequence else x
            for i, (b, pl) in enumerate(zip(net.blocks, plans)):
                s = state[i]
                xi = inp.reshape(n, -1) if b.kind == "linear" else inp
                if i == 0 and not sequence and static_cur is not None:
                    cur = static_cur
                else:
                    cur = K.current(b.kind, xi, w_hat[i], biases[i])
                    if i == 0 and not sequence:
                        static_cur = cur
                need_nc = learn and tc.alpha_post != 0
                h_tilde = None
                if need_nc:
                    h_tilde = s["h"] * lp if config.profile == "paper" else s["h"].clone()
                K.lif_inplace(s["u"], s["o"], cur, lif.leak, lif.reset, pl.amount)
                K.spike_into(s["o"], s["u"], lif.theta)
                ps = K.PSI[pl.psi](s["u"], lif.theta)
                K.decay_add_inplace(s["q"], xi, tc.lambda_pre)
                K.decay_add_inplace(s["h"], ps, lp)
                mask = masks[i]
                dropped = s["o"] if mask is None else s["o"] * mask
                out, idx = K.pool(dropped, b.pool, b.pool_size)
                m = None
                if learn:
                    m, loss = self.learning_signal(
                        pl, out, tuple(dropped.shape), idx, 1.0 / (temp * n), onehot, mask, temp, rec is not None
                    )
                    mp = m * ps
                    if tc.alpha_pre != 0:
                        causal[i].add_(K.corr(mp, s["q"], b.kind, pl.weight_shape), alpha=tc.alpha_pre)
                    if need_nc:
                        assert h_tilde is not None
                        noncausal[i].add_(K.corr(m * h_tilde, xi, b.kind, pl.weight_shape), alpha=tc.alpha_post)
                    if b.bias:
                        dbias[i].add_(mp.sum(dim=(0, 2, 3)) if mp.dim() == 4 else mp.sum(dim=0))
                if rec is not None:
                    for key, val in (("u", s["u"]), ("o", s["o"]), ("psi", ps), ("q", s["q"]), ("h", s["h"])):
                        rec[key][i][t] = self.to_numpy(val)
                    if m is not None:
                        rec["m"][i][t] = self.to_numpy(m)
                        rec["lsg_loss"][t, i] = loss
                inp = out
            feats = inp.mean(dim=(2, 3)) if inp.dim() == 4 else inp
            logits = torch.nn.functional.linear(feats, ro_w, ro_b)
            summed.add_(logits)
            if rec is not None:
                rec["logits"][t] = self.to_numpy(logits)
            if learn:
                err = torch.softmax(logits, dim=1).sub_(onehot).div_(n)
                d_ro_w.add_(err.t() @ feats)
                d_ro_b.add_(err.sum(dim=0))

        grads = chain_grads(config, params, causal, noncausal, dbias, d_ro_w, d_ro_b, ws_vjp=K.standardize_vjp)
        new_params, new_opt = self.optimizer_step(config, params, opt_state, grads, lr)
        logp = torch.log_softmax(summed, dim=1)
        loss_t = -(logp * onehot).sum() / n
        correct_t = (summed.argmax(dim=1) == yt).sum()
        loss, n_correct = float(loss_t), int(correct_t)
        if rec is not None:
            rec.update(
                dw_causal=[self.to_numpy(c) for c in causal],
                dw_noncausal=[self.to_numpy(c) for c in noncausal],
                grads={k: self.to_numpy(v) for k, v in grads.items()},
                loss=loss,
                n_correct=n_correct,
                state=[{k: self.to_numpy(v) for k, v in s.items()} for s in state],
            )
        return TrainOutput(new_params, new_opt, loss, n_correct, state, rec)

    # -- inference -------------------------------------------------------------------
    def _predict(self, config: TessConfig, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            net, lif = config.network, config.lif
            n = x.shape[0]
            plans = self.plan(config)
            sequence = x.dim() == len(net.input_shape) + 2
            w_hat = [self.effective_weight(config, params, i) for i in range(len(net.blocks))]
            u = [self._zeros((n, *pl.neurons)) for pl in plans]
            o = [torch.zeros_like(v) for v in u]
            summed = torch.zeros((n, net.n_classes), dtype=self.torch_dtype, device=self.torch_device)
            static_cur = None
            for t in range(config.train.T):
                inp = x[:, t] if sequence else x
                for i, (b, pl) in enumerate(zip(net.blocks, plans)):
                    if i == 0 and not sequence and static_cur is not None:
                        cur = static_cur
                    else:
                        xi = inp.reshape(n, -1) if b.kind == "linear" else inp
                        cur = K.current(b.kind, xi, w_hat[i], params.get(f"blocks.{i}.bias"))
                        if i == 0 and not sequence:
                            static_cur = cur
                    K.lif_inplace(u[i], o[i], cur, lif.leak, lif.reset, pl.amount)
                    K.spike_into(o[i], u[i], lif.theta)
                    inp, _ = K.pool(o[i], b.pool, b.pool_size)
                feats = inp.mean(dim=(2, 3)) if inp.dim() == 4 else inp
                summed.add_(torch.nn.functional.linear(feats, params["readout.weight"], params.get("readout.bias")))
            return summed

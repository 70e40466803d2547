"""The NumPy backend: TESS's full train step on NumPy arrays (float32 by default).

Speed-minded but plain: im2col patches are computed once per block and step and
shared by the forward current and the non-causal update; a direct (static)
input's first-block current is computed once per sequence; the LSG's adaptive
pool and basis are fused into one ``(n_classes × outputs)`` matrix per block.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tess.backend import Backend, TrainOutput
from tess_spec import TessConfig
from tess_spec.lsg import softmax
from tess_spec.ops import im2col
from tess_spec.reference import BlockPlan, block_plans, chain_grads, new_record
from tess_spec.reference import optimizer_step as spec_optimizer_step
from tess_spec.weight_std import standardize

from . import kernels as K

__all__ = ["NumpyBackend", "BlockPlan"]


class NumpyBackend(Backend):
    """TESS on NumPy (CPU). Options: ``dtype`` ("float32" | "float64")."""

    name = "numpy"
    devices = ("cpu",)

    def __init__(self, *, dtype: str = "float32", device: str | None = None) -> None:
        super().__init__(dtype=dtype, device=device)
        self._plans: dict[int, tuple[TessConfig, list[BlockPlan]]] = {}

    def asarray(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, dtype=self.dtype, copy=True)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.array(a, copy=True)

    def info(self) -> dict[str, str]:
        return {**super().info(), "numpy": np.__version__}

    # -- planning ------------------------------------------------------------
    def plan(self, config: TessConfig) -> list[BlockPlan]:
        """Per-block constants (cached per config)."""
        hit = self._plans.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
        plans = [replace(p, lsg_matrix=p.lsg_matrix.astype(self.dtype)) for p in block_plans(config)]
        self._plans[id(config)] = (config, plans)
        return plans

    # -- pieces a variant can override ----------------------------------------
    def effective_weight(self, config: TessConfig, params: dict[str, np.ndarray], i: int) -> np.ndarray:
        """Ŵ of block i."""
        w = params[f"blocks.{i}.weight"]
        return standardize(w, params[f"blocks.{i}.gain"]) if config.network.blocks[i].weight_std else w

    def learning_signal(
        self, plan: BlockPlan, o: np.ndarray, dropped: np.ndarray, out: np.ndarray, y: np.ndarray,
        mask: np.ndarray | None, temperature: float,
    ) -> tuple[np.ndarray, float]:
        """``m = ∂L_l/∂o`` through mask, pooling and the fused adaptive-pool·basis matrix."""
        n = o.shape[0]
        z = out.reshape(n, -1) @ plan.lsg_matrix.T
        p = softmax(z / temperature)
        loss = float(-np.mean(np.log(np.maximum(p[np.arange(n), y], np.finfo(p.dtype).tiny))))
        p[np.arange(n), y] -= 1
        p /= temperature * n
        g_out = (p @ plan.lsg_matrix).reshape(out.shape)
        g = self.pool_vjp(g_out, dropped, plan.pool, plan.pool_size) if out.ndim == 4 else g_out
        return (g if mask is None else g * mask), loss

    def neuron_step(self, config: TessConfig, plan: BlockPlan, s: dict[str, np.ndarray], cur: np.ndarray) -> None:
        """LIF step in place: ``u ← γ(u - r·o) + I`` (or the hard reset), then ``o ← (u > θ)``."""
        lif = config.lif
        K.lif_inplace(s["u"], s["o"], cur, lif.leak, lif.reset, plan.amount)
        s["o"] = (s["u"] > lif.theta).astype(self.dtype)

    def surrogate(self, plan: BlockPlan, u: np.ndarray, theta: float) -> np.ndarray:
        """ψ[t] of the block's selected surrogate at membrane ``u``."""
        return K.PSI[plan.psi](u, theta)

    def trace_step(self, config: TessConfig, s: dict[str, np.ndarray], x: np.ndarray, psi: np.ndarray) -> None:
        """Traces in place: ``q ← λ_pre·q + x``, ``h ← λ_post·h + ψ``."""
        K.decay_add_inplace(s["q"], x, config.traces.lambda_pre)
        K.decay_add_inplace(s["h"], psi, config.traces.lambda_post)

    def pool_vjp(self, g: np.ndarray, x: np.ndarray, pool: str | None, pool_size: int) -> np.ndarray:
        """Pooling's vector-Jacobian product (max routes to the first maximal element)."""
        return K.pool_vjp(g, x, pool, pool_size)

    def noncausal_trace(self, config: TessConfig, h_prev: np.ndarray, h_new: np.ndarray) -> np.ndarray:
        """h̃[t-1] from the trace before this step's update (profile-dependent)."""
        lp = config.traces.lambda_post
        return lp * h_prev if config.profile == "paper" else h_prev.copy()

    def window_start(self, config: TessConfig) -> int:
        """First learning step ``T - n_learn``."""
        return config.train.window_start

    def optimizer_step(
        self, config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any],
        grads: dict[str, np.ndarray], lr: float,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Adam (bias-corrected) or SGD with momentum, on copies of the arrays."""
        return spec_optimizer_step(config, dict(params), dict(opt_state), dict(grads), lr)

    # -- the train step -------------------------------------------------------
    def _train_batch(
        self, config: TessConfig, params: dict[str, np.ndarray], opt_state: dict[str, Any], x: np.ndarray,
        y: np.ndarray, masks: list[np.ndarray | None], lr: float, record: bool,
    ) -> TrainOutput:
        net, tc, lif = config.network, config.traces, config.lif
        T = config.train.T
        start = self.window_start(config)
        dt = self.dtype
        n = x.shape[0]
        plans = self.plan(config)
        sequence = x.ndim == len(net.input_shape) + 2
        w_hat = [self.effective_weight(config, params, i) for i in range(len(net.blocks))]
        w2d = [w.reshape(w.shape[0], -1) for w in w_hat]
        state = self.init_state(config, n)
        causal = [np.zeros(w.shape, dt) for w in w_hat]
        noncausal = [np.zeros(w.shape, dt) for w in w_hat]
        dbias = [np.zeros((b.features,), dt) for b in net.blocks]
        ro_w = params["readout.weight"]
        ro_b = params.get("readout.bias")
        d_ro_w = np.zeros_like(ro_w)
        d_ro_b = np.zeros((net.n_classes,), dt)
        summed = np.zeros((n, net.n_classes), dt)
        rec = new_record(config, n, dt) if record else None
        static_cols: np.ndarray | None = None
        static_cur: np.ndarray | None = None

        for t in range(T):
            learn = t >= start
            inp = x[:, t] if sequence else x
            for i, (b, pl) in enumerate(zip(net.blocks, plans)):
                s = state[i]
                xi = inp.reshape(n, -1) if b.kind == "linear" else inp
                cols = None
                if i == 0 and not sequence and static_cur is not None:
                    cur, cols = static_cur, static_cols
                else:
                    if b.kind == "conv":
                        cols = im2col(xi, b.kernel_size)
                        cur = K.conv_current(cols, w2d[i], (n, *pl.neurons))
                    else:
                        cur = xi @ w2d[i].T
                    bias = params.get(f"blocks.{i}.bias")
                    if bias is not None:
                        cur = cur + (bias[None, :, None, None] if b.kind == "conv" else bias)
                    if i == 0 and not sequence:
                        static_cur, static_cols = cur, cols
                need_nc = learn and tc.alpha_post != 0
                h_prev = s["h"].copy() if need_nc else None
                self.neuron_step(config, pl, s, cur)
                ps = self.surrogate(pl, s["u"], lif.theta)
                self.trace_step(config, s, xi, ps)
                mask = masks[i]
                dropped = s["o"] if mask is None else s["o"] * mask
                out = K.pool(dropped, b.pool, b.pool_size)
                if learn:
                    m, loss = self.learning_signal(pl, s["o"], dropped, out, y, mask, config.lsg.temperature)
                    mp = m * ps
                    if tc.alpha_pre != 0:
                        causal[i] += tc.alpha_pre * K.corr(mp, s["q"], b.kind, b.kernel_size)
                    if need_nc:
                        assert h_prev is not None
                        h_t = self.noncausal_trace(config, h_prev, s["h"])
                        noncausal[i] += tc.alpha_post * K.corr(m * h_t, xi, b.kind, b.kernel_size, cols)
                    if b.bias:
                        dbias[i] += mp.sum(axis=(0, 2, 3)) if mp.ndim == 4 else mp.sum(axis=0)
                if rec is not None:
                    for key, val in (("u", s["u"]), ("o", s["o"]), ("psi", ps), ("q", s["q"]), ("h", s["h"])):
                        rec[key][i][t] = val
                    if learn:
                        rec["m"][i][t] = m
                        rec["lsg_loss"][t, i] = loss
                inp = out
            feats = inp.mean(axis=(2, 3)) if inp.ndim == 4 else inp
            logits = feats @ ro_w.T
            if ro_b is not None:
                logits += ro_b
            summed += logits
            if rec is not None:
                rec["logits"][t] = logits
            if learn:
                err = softmax(logits)
                err[np.arange(n), y] -= 1
                err /= n
                d_ro_w += err.T @ feats
                d_ro_b += err.sum(axis=0)

        grads = chain_grads(config, params, causal, noncausal, dbias, d_ro_w, d_ro_b)
        new_params, new_opt = self.optimizer_step(config, params, opt_state, grads, lr)
        zs = summed - summed.max(axis=1, keepdims=True)
        logp = zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))
        loss = float(-logp[np.arange(n), y].mean())
        n_correct = int((summed.argmax(axis=1) == y).sum())
        if rec is not None:
            rec.update(dw_causal=causal, dw_noncausal=noncausal, grads=grads, loss=loss, n_correct=n_correct,
                       state=[{k: v.copy() for k, v in s.items()} for s in state])
        return TrainOutput(new_params, new_opt, loss, n_correct, state, rec)

    def _predict(self, config: TessConfig, params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        net, lif = config.network, config.lif
        n = x.shape[0]
        plans = self.plan(config)
        sequence = x.ndim == len(net.input_shape) + 2
        w2d = [self.effective_weight(config, params, i).reshape(b.features, -1) for i, b in enumerate(net.blocks)]
        u = [np.zeros((n, *pl.neurons), self.dtype) for pl in plans]
        o = [np.zeros((n, *pl.neurons), self.dtype) for pl in plans]
        summed = np.zeros((n, net.n_classes), self.dtype)
        static_cur = None
        for t in range(config.train.T):
            inp = x[:, t] if sequence else x
            for i, (b, pl) in enumerate(zip(net.blocks, plans)):
                if i == 0 and not sequence and static_cur is not None:
                    cur = static_cur
                else:
                    if b.kind == "conv":
                        cur = K.conv_current(im2col(inp, b.kernel_size), w2d[i], (n, *pl.neurons))
                    else:
                        cur = inp.reshape(n, -1) @ w2d[i].T
                    bias = params.get(f"blocks.{i}.bias")
                    if bias is not None:
                        cur = cur + (bias[None, :, None, None] if b.kind == "conv" else bias)
                    if i == 0 and not sequence:
                        static_cur = cur
                K.lif_inplace(u[i], o[i], cur, lif.leak, lif.reset, pl.amount)
                o[i] = (u[i] > lif.theta).astype(self.dtype)
                inp = K.pool(o[i], b.pool, b.pool_size)
            feats = inp.mean(axis=(2, 3)) if inp.ndim == 4 else inp
            summed += feats @ params["readout.weight"].T
            if "readout.bias" in params:
                summed += params["readout.bias"]
        return summed

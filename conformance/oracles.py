"""Independent oracles for the rule's properties: the gradient of a block's local
loss (TESS_RULE.md §4) with respect to its spikes, and — in the exact-gradient
special case of §5 (α_post = 0, λ_pre = γ, reset treated as a constant) — with
respect to its weights through time.

Both are computed with PyTorch autograd in float64 when torch is importable, else
by central finite differences in float64 on a straight-through relaxation of the
spike (value = the recorded spike, slope = ψ); max-pool ties are broken towards
the first element of each window (the spec's routing rule) by a tiny ramp.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from tess_spec import TessConfig
from tess_spec.lsg import basis
from tess_spec.neuron import psi as spec_psi
from tess_spec.neuron import reset_amount
from tess_spec.ops import adaptive_avg_pool, conv2d, pool_forward
from tess_spec.shapes import block_shapes
from tess_spec.weight_std import WS_EPS

__all__ = ["have_torch", "BlockProblem", "lsg_grad", "local_loss_weight_grad", "ORACLE_NAME"]


def have_torch() -> bool:
    """Whether PyTorch is importable (then autograd is the oracle)."""
    return importlib.util.find_spec("torch") is not None


ORACLE_NAME = "torch autograd (float64)" if have_torch() else "finite differences (float64)"
"""Which oracle this process uses."""


@dataclass
class BlockProblem:
    """One block of a recorded run, everything float64 NumPy.

    ``x``: the block's input per step ``(T, B, *input)``; ``o``: recorded spikes
    ``(T, B, *neurons)``; ``mask``: dropout mask or ``None``; ``y``: labels.
    """

    config: TessConfig
    index: int
    x: np.ndarray
    o: np.ndarray
    mask: np.ndarray | None
    y: np.ndarray

    @property
    def block(self):  # noqa: ANN201 - BlockConfig
        """The block's config."""
        return self.config.network.blocks[self.index]

    def basis_scaled(self) -> np.ndarray:
        """``B̃ = B / D`` of the block."""
        k = self.config.lsg_pool(self.index)
        out = block_shapes(self.config.network)[self.index].output
        dim = out[0] * k * k if len(out) == 3 else k
        B = basis(self.config.network.n_classes, dim, self.config.lsg.omega_min, self.config.lsg.omega_max)
        return B / dim


# ---------------------------------------------------------------- torch oracle
def _torch_local_loss(torch, prob: BlockProblem, o):  # noqa: ANN001, ANN202
    F = torch.nn.functional
    b = prob.block
    k = prob.config.lsg_pool(prob.index)
    y = torch.as_tensor(prob.y, dtype=torch.int64)
    dropped = o if prob.mask is None else o * torch.as_tensor(prob.mask, dtype=torch.float64)
    if dropped.ndim == 4:
        if b.pool == "max":
            pooled = F.max_pool2d(dropped, b.pool_size)
        elif b.pool == "avg":
            pooled = F.avg_pool2d(dropped, b.pool_size)
        elif b.pool == "global_avg":
            pooled = dropped.mean(dim=(2, 3), keepdim=True)
        else:
            pooled = dropped
        a = F.adaptive_avg_pool2d(pooled, k).flatten(1)
    else:
        a = F.adaptive_avg_pool1d(dropped[:, None, :], k)[:, 0, :]
    z = a @ torch.as_tensor(prob.basis_scaled(), dtype=torch.float64).T
    return F.cross_entropy(z / prob.config.lsg.temperature, y)


def _torch_lsg_grad(prob: BlockProblem, t: int) -> tuple[float, np.ndarray]:
    import torch

    o = torch.tensor(prob.o[t], dtype=torch.float64, requires_grad=True)
    loss = _torch_local_loss(torch, prob, o)
    loss.backward()
    return float(loss.detach()), o.grad.numpy().copy()


def _torch_weight_grad(prob: BlockProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    cfg, i, b = prob.config, prob.index, prob.block
    lif = cfg.lif
    r = reset_amount(lif, cfg.profile, b.kind)
    theta = lif.theta
    psi_name = cfg.psi_name(i)
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in params.items() if k.startswith(f"blocks.{i}.")}
    W = leaves[f"blocks.{i}.weight"]
    if b.weight_std:
        f = W.shape[0]
        w2 = W.reshape(f, -1)
        n = w2.shape[1]
        d = w2 - w2.mean(dim=1, keepdim=True)
        var = (d * d).sum(dim=1, keepdim=True) / max(n - 1, 1)
        W_hat = (leaves[f"blocks.{i}.gain"][:, None] * d / torch.sqrt(var * n + WS_EPS)).reshape(W.shape)
    else:
        W_hat = W
    bias = leaves.get(f"blocks.{i}.bias")

    class _Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, o_fixed):  # noqa: ANN001, ANN205
            ctx.save_for_backward(u)
            return o_fixed.clone()

        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205
            (u,) = ctx.saved_tensors
            if psi_name == "triangle":
                ps = 0.3 * torch.clamp(1 - torch.abs(u - theta), min=0)
            else:
                ps = 1 / (100 * torch.abs(u - theta) + 1) ** 2
            return g * ps, None

    T = cfg.train.T
    start = cfg.train.window_start
    u = torch.zeros(prob.o.shape[1:], dtype=torch.float64)
    o_prev = torch.zeros_like(u)
    total = torch.zeros((), dtype=torch.float64)
    for t in range(T):
        x = torch.as_tensor(prob.x[t], dtype=torch.float64)
        if b.kind == "conv":
            cur = torch.nn.functional.conv2d(x, W_hat, bias, padding=b.kernel_size // 2)
        else:
            cur = x @ W_hat.T + (0 if bias is None else bias)
        u = lif.leak * (u - r * o_prev) + cur  # o_prev is a constant: the reset is detached
        o = _Spike.apply(u, torch.as_tensor(prob.o[t], dtype=torch.float64))
        if t >= start:
            total = total + _torch_local_loss(torch, prob, o)
        o_prev = torch.as_tensor(prob.o[t], dtype=torch.float64)
    total.backward()
    return {k: v.grad.numpy().copy() if v.grad is not None else np.zeros(v.shape) for k, v in leaves.items()}


# ------------------------------------------------------ finite-difference oracle
def _np_local_loss(prob: BlockProblem, o: np.ndarray) -> float:
    b = prob.block
    k = prob.config.lsg_pool(prob.index)
    dropped = o if prob.mask is None else o * prob.mask
    if dropped.ndim == 4 and b.pool == "max":
        p = b.pool_size
        ii, jj = np.meshgrid(np.arange(dropped.shape[2]), np.arange(dropped.shape[3]), indexing="ij")
        ramp = -((ii % p) * p + (jj % p)) * 1e-7  # first element of each window wins ties
        dropped = dropped + ramp
    pooled = pool_forward(dropped, b.pool, b.pool_size) if dropped.ndim == 4 else dropped
    a = adaptive_avg_pool(pooled, k)
    z = a @ prob.basis_scaled().T / prob.config.lsg.temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(prob.y)), prob.y].mean())


def _fd(f, x: np.ndarray, h: float) -> np.ndarray:  # noqa: ANN001
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + h
        fp = f()
        flat[j] = old - h
        fm = f()
        flat[j] = old
        gf[j] = (fp - fm) / (2 * h)
    return g


def _fd_lsg_grad(prob: BlockProblem, t: int) -> tuple[float, np.ndarray]:
    o = prob.o[t].astype(np.float64).copy()
    return _np_local_loss(prob, o), _fd(lambda: _np_local_loss(prob, o), o, 1e-9)


def _antiderivative(name: str, u: np.ndarray, theta: float) -> np.ndarray:
    d = u - theta
    if name == "triangle":
        c = np.clip(d, -1, 1)
        return 0.3 * (c - np.sign(c) * c * c / 2)
    return np.sign(d) * (1 - 1 / (100 * np.abs(d) + 1)) / 100


def _fd_weight_grad(prob: BlockProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from tess_spec.weight_std import standardize

    cfg, i, b = prob.config, prob.index, prob.block
    lif = cfg.lif
    r = reset_amount(lif, cfg.profile, b.kind)
    psi_name = cfg.psi_name(i)
    own = {k: v.astype(np.float64).copy() for k, v in params.items() if k.startswith(f"blocks.{i}.")}

    def membranes() -> list[np.ndarray]:
        W = own[f"blocks.{i}.weight"]
        W_hat = standardize(W, own[f"blocks.{i}.gain"]) if b.weight_std else W
        bias = own.get(f"blocks.{i}.bias")
        u = np.zeros(prob.o.shape[1:])
        us = []
        for t in range(cfg.train.T):
            if b.kind == "conv":
                cur = conv2d(prob.x[t], W_hat)
                cur = cur if bias is None else cur + bias[None, :, None, None]
            else:
                cur = prob.x[t] @ W_hat.T + (0 if bias is None else bias)
            o_prev = prob.o[t - 1] if t else 0.0
            u = lif.leak * (u - r * o_prev) + cur
            us.append(u)
        return us

    base = membranes()

    def loss() -> float:
        us = membranes()
        total = 0.0
        for t in range(cfg.train.window_start, cfg.train.T):
            o = prob.o[t] + (_antiderivative(psi_name, us[t], lif.theta) - _antiderivative(psi_name, base[t], lif.theta))
            total += _np_local_loss(prob, o)
        return total

    return {k: _fd(loss, v, 1e-7) for k, v in own.items()}


# ----------------------------------------------------------------------- API
def lsg_grad(prob: BlockProblem, t: int) -> tuple[float, np.ndarray]:
    """``(L_l[t], ∂L_l[t]/∂o[t])`` of block ``prob.index`` at its recorded spikes."""
    return _torch_lsg_grad(prob, t) if have_torch() else _fd_lsg_grad(prob, t)


def local_loss_weight_grad(prob: BlockProblem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradient of ``Σ_{t in window} L_l[t]`` w.r.t. the block's parameters through
    time (reset detached, spike slope ψ), keyed like ``params``."""
    return _torch_weight_grad(prob, params) if have_torch() else _fd_weight_grad(prob, params)


def block_inputs(config: TessConfig, x: np.ndarray, record: dict, masks: list) -> list[np.ndarray]:
    """Every block's input per step ``(T, B, *input)`` rebuilt from the batch and the
    record's spikes (``pool(mask ⊙ o)`` of the previous block; flattened for linear)."""
    T = config.train.T
    seq = x.ndim == len(config.network.input_shape) + 2
    frames = np.stack([x[:, t] if seq else x for t in range(T)]).astype(np.float64)
    out = []
    cur = frames
    for i, b in enumerate(config.network.blocks):
        xi = cur.reshape(T, cur.shape[1], -1) if b.kind == "linear" else cur
        out.append(xi)
        o = np.asarray(record["o"][i], dtype=np.float64)
        m = masks[i] if masks is not None else None
        dropped = o if m is None else o * np.asarray(m, dtype=np.float64)[None]
        cur = np.stack([pool_forward(dropped[t], b.pool, b.pool_size) if dropped.ndim == 5 else dropped[t]
                        for t in range(T)])
    return out


__all__ += ["block_inputs", "spec_psi"]

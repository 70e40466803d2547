"""Plans: the constants a backend's step needs that depend only on the config.

Not part of the oracle.  :mod:`tess_spec.reference` composes the spec's functions
plainly, step by step; an implementation precomputes what does not change over a
run — each block's kind, pooling, reset amount, ψ and shapes, the learning
window, and the LSG's fixed basis composed with its adaptive pool into one matrix
— from the same rules.  Everything here is static (hashable) except the LSG
matrices, which are data (float64 NumPy) that a backend converts to its arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import LIFConfig, TessConfig, TraceConfig
from .lsg import basis
from .neuron import reset_amount
from .ops import adaptive_avg_pool_backward
from .shapes import block_shapes

__all__ = ["lsg_bases", "lsg_matrices", "BlockPlan", "NetworkPlan", "block_plans", "network_plan"]


def lsg_bases(config: TessConfig) -> list[np.ndarray]:
    """The fixed basis B of every block, ``(n_classes, D_l)`` with ``D_l = C_l·k_l²`` or ``k_l``."""
    out = []
    for i, bs in enumerate(block_shapes(config.network)):
        k = config.lsg_pool(i)
        dim = bs.output[0] * k * k if len(bs.output) == 3 else k
        out.append(basis(config.network.n_classes, dim, config.lsg.omega_min, config.lsg.omega_max))
    return out


def lsg_matrices(config: TessConfig) -> list[np.ndarray]:
    """Per block, the basis B̃ = B / D composed with the adaptive average pool, as one
    float64 array ``M`` of shape ``(n_classes, *output)`` (the block output's NCHW layout).

    Both maps are linear, so ``z[t] = B̃ · AdaptiveAvgPool_k(out[t]) = M_flat · out_flat[t]``
    and ``∂L/∂out = reshape((softmax(z/τ) - onehot(y)) / (τ·batch) · M_flat)``: a backend
    can form the learning signal with two matrix products instead of pooling.
    """
    mats = []
    for i, (bs, B) in enumerate(zip(block_shapes(config.network), lsg_bases(config))):
        bt = B / B.shape[1]
        mats.append(adaptive_avg_pool_backward(bt, (bt.shape[0], *bs.output), config.lsg_pool(i)))
    return mats


@dataclass(frozen=True)
class BlockPlan:
    """Everything static a block's step needs (derived from the config only).

    Attributes:
        kind: ``"conv"`` or ``"linear"``.
        kernel_size: conv kernel size (odd; same padding, stride 1).
        k: the block's LSG pool size.
        pool: block pooling (``None``, ``"max"``, ``"avg"``, ``"global_avg"``).
        pool_size: pooling window (= stride).
        amount: soft-reset amount r (:func:`tess_spec.neuron.reset_amount`).
        psi: name of the block's ψ.
        weight_std: Ŵ is the standardised W (with a gain).
        bias: the block has a bias.
        features: output channels / units F.
        input: per-sample input shape as the block sees it (flattened for a linear block).
        neurons: per-sample neuron shape (u, o, ψ, h, m).
        output: per-sample output shape (after dropout and pooling).
        weight: shape of W.
        flatten_input: a linear block whose input is spatial: it flattens ``(C, H, W)``
            in that order first.
    """

    kind: str
    kernel_size: int
    k: int
    pool: str | None
    pool_size: int
    amount: float
    psi: str
    weight_std: bool
    bias: bool
    features: int
    input: tuple[int, ...]
    neurons: tuple[int, ...]
    output: tuple[int, ...]
    weight: tuple[int, ...]
    flatten_input: bool


def block_plans(config: TessConfig) -> list[BlockPlan]:
    """The :class:`BlockPlan` of every block, in order."""
    plans = []
    prev = tuple(config.network.input_shape)
    for i, (b, bs) in enumerate(zip(config.network.blocks, block_shapes(config.network))):
        plans.append(BlockPlan(
            kind=b.kind, kernel_size=b.kernel_size, k=config.lsg_pool(i), pool=b.pool, pool_size=b.pool_size,
            amount=reset_amount(config.lif, config.profile, b.kind), psi=config.psi_name(i),
            weight_std=b.weight_std, bias=b.bias, features=b.features, input=bs.input, neurons=bs.neurons,
            output=bs.output, weight=bs.weight, flatten_input=b.kind == "linear" and len(prev) > 1,
        ))
        prev = bs.output
    return plans


@dataclass(frozen=True)
class NetworkPlan:
    """The config with its per-block plans and the learning window resolved.

    Attributes:
        config: the run's config.
        blocks: one :class:`BlockPlan` per block.
        window_start: first step of the learning window, ``T - n_learn``.
    """

    config: TessConfig
    blocks: tuple[BlockPlan, ...]
    window_start: int

    @property
    def T(self) -> int:  # noqa: N802 - the rule's notation
        """Time steps per sequence."""
        return self.config.train.T

    @property
    def n_classes(self) -> int:
        """Readout classes."""
        return self.config.network.n_classes

    @property
    def lif(self) -> LIFConfig:
        """The LIF settings (leak γ, threshold θ, reset)."""
        return self.config.lif

    @property
    def traces(self) -> TraceConfig:
        """The trace factors ``λ_post, λ_pre, α_post, α_pre``."""
        return self.config.traces

    @property
    def profile(self) -> str:
        """``"paper"`` or ``"reference-code"``."""
        return self.config.profile


def network_plan(config: TessConfig) -> NetworkPlan:
    """The :class:`NetworkPlan` of ``config``."""
    return NetworkPlan(config, tuple(block_plans(config)), config.train.window_start)

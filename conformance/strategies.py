"""Hypothesis strategies of the conformance suite — all of them, in one module.

:func:`configs` draws small networks (flat or image input; conv blocks with max,
avg or global-average pooling, linear blocks, dropout, weight standardisation,
bias), trace factors, θ, leak, reset mode and amount, ψ, profile, window and
optimiser; :func:`cases` adds parameters, optimiser state, inputs (direct or
event sequences), labels and dropout masks, drawn from the spec's RNG with a
Hypothesis-chosen seed.  Scales are drawn so that some cases spike and some do
not (``tess.conformance.test_strategies`` checks that they do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tess_spec import (
    BlockConfig,
    LIFConfig,
    LSGConfig,
    NetworkConfig,
    OptimizerConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
    block_shapes,
    draw_dropout_masks,
    init_opt_state,
    init_params,
    make_rng,
)

__all__ = ["Case", "configs", "cases", "autodiff_cases", "make_case", "trace_factors", "case_features"]


@dataclass
class Case:
    """One drawn train step: config, float64 parameters and optimiser state, batch, masks, lr."""

    config: TessConfig
    params: dict[str, np.ndarray]
    opt_state: dict[str, Any]
    x: np.ndarray
    y: np.ndarray
    masks: list[np.ndarray | None]
    lr: float | None

    def __repr__(self) -> str:
        net = self.config.network
        blocks = ", ".join(
            f"{b.kind}{b.features}" + (f"/{b.pool}{b.pool_size}" if b.pool else "") + ("/ws" if b.weight_std else "")
            + (f"/drop{b.dropout}" if b.dropout else "") + ("/bias" if b.bias else "") for b in net.blocks
        )
        return (f"Case(input={net.input_shape}, blocks=[{blocks}], classes={net.n_classes}, x={self.x.shape}, "
                f"T={self.config.train.T}, n_learn={self.config.train.n_learn}, profile={self.config.profile}, "
                f"learning_signal={self.config.learning_signal}, "
                f"lif={self.config.lif}, factors={self.config.traces.factors}, psi={self.config.traces.psi}, "
                f"opt={self.config.optimizer.name}, step={self.opt_state['step']})")


def _unit(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def trace_factors() -> st.SearchStrategy[tuple[float, float, float, float]]:
    """``(λ_post, λ_pre, α_post, α_pre)`` including the edge values 0 and 1."""
    lam = st.one_of(st.sampled_from([0.0, 0.2, 0.5, 1.0]), _unit(0.0, 1.0))
    # |α| >= 0.01 or exactly 0: a vanishing α only measures float32 underflow
    alpha = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.builds(lambda s, a: s * a, st.sampled_from([-1.0, 1.0]),
                                                                     _unit(0.01, 2.0)))
    return st.tuples(lam, lam, alpha, alpha)


@st.composite
def _blocks(draw: st.DrawFn, input_shape: tuple[int, ...]) -> tuple[tuple[BlockConfig, ...], tuple[int, ...]]:
    blocks: list[BlockConfig] = []
    cur = input_shape
    if len(input_shape) == 3:
        for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2]))):
            c, h, w = cur
            pools: list[Any] = [None, "global_avg"]
            for p in (2, 3):
                if min(h, w) >= p:
                    pools += [("max", p), ("avg", p)]
            choice = draw(st.sampled_from(pools))
            pool, psz = (choice if isinstance(choice, tuple) else (choice, 2))
            b = BlockConfig(
                "conv", draw(st.integers(1, 4)), kernel_size=draw(st.sampled_from([3, 3, 1])), pool=pool,
                pool_size=psz, dropout=draw(st.sampled_from([0.0, 0.0, 0.3])), weight_std=draw(st.booleans()),
                bias=draw(st.booleans()), psi=draw(st.sampled_from([None, None, "triangle", "fast_sigmoid"])),
            )
            blocks.append(b)
            cur = block_shapes(NetworkConfig(input_shape, 2, tuple(blocks)))[-1].output
    n_lin = draw(st.integers(0 if blocks else 1, 2))
    for _ in range(n_lin):
        blocks.append(BlockConfig(
            "linear", draw(st.integers(1, 6)), dropout=draw(st.sampled_from([0.0, 0.0, 0.3])),
            weight_std=draw(st.booleans()), bias=draw(st.booleans()),
            psi=draw(st.sampled_from([None, None, "triangle", "fast_sigmoid"])),
        ))
    return tuple(blocks), cur


@st.composite
def configs(draw: st.DrawFn, dtype: str = "float64", *, autodiff: bool = False,
            signal: str | None = None) -> TessConfig:
    """A small, valid :class:`TessConfig`.

    ``autodiff=True`` draws the special case of TESS_RULE.md §5 in which the update
    is an exact gradient: α_post = 0, λ_pre = γ, soft reset (treated as constant).
    ``signal``: the learning signal (:data:`tess_spec.LEARNING_SIGNALS`); ``None`` draws it
    (``"lsg"`` half of the time) — except with ``autodiff``, where it is ``"lsg"``.
    """
    if draw(st.booleans()):
        input_shape: tuple[int, ...] = (draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    else:
        input_shape = (draw(st.integers(1, 12)),)
    blocks, _ = draw(_blocks(input_shape))
    net = NetworkConfig(input_shape, draw(st.integers(2, 4)), blocks,
                        )
    shapes = block_shapes(net)
    ks = []
    for b, bs in zip(blocks, shapes):
        if len(bs.output) == 3:
            ks.append(draw(st.integers(1, min(3, bs.output[1], bs.output[2]))))
        else:
            ks.append(draw(st.integers(1, bs.output[0])))
    theta = draw(st.one_of(st.sampled_from([0.6, 1.0]), _unit(0.1, 1.5)))
    leak = draw(st.one_of(st.sampled_from([0.5, 1.0]), _unit(0.2, 1.0)))
    reset = "soft" if autodiff else draw(st.sampled_from(["soft", "hard"]))
    amount = draw(st.one_of(st.none(), _unit(0.0, 1.5)))
    factors = draw(trace_factors())
    if autodiff:
        factors = (factors[0], leak, 0.0, draw(st.sampled_from([1.0, 0.5, 2.0])))
    T = draw(st.integers(1, 6))
    n_learn = draw(st.integers(1, T))
    opt = draw(st.sampled_from(["adam", "adam", "sgd"]))
    return TessConfig(
        network=net,
        lif=LIFConfig(theta=theta, leak=leak, reset=reset, reset_amount=amount),
        traces=TraceConfig(factors=factors, psi=draw(st.sampled_from(["triangle", "fast_sigmoid"]))),
        lsg=LSGConfig(pool_sizes=tuple(ks), temperature=draw(st.sampled_from([1.0, 1.0, 0.5, 2.0]))),
        optimizer=OptimizerConfig(name=opt, lr=draw(st.sampled_from([1e-3, 1e-2])),
                                  weight_decay=draw(st.sampled_from([0.0, 0.0, 1e-2]))),
        train=TrainConfig(T=T, n_learn=n_learn, batch_size=4, dtype=dtype),
        profile=draw(st.sampled_from(["paper", "reference-code"])),
        learning_signal=signal if signal is not None else
        ("lsg" if autodiff else draw(st.sampled_from(["lsg", "lsg", "readout-backprop", "released"]))),
    )


def make_case(config: TessConfig, seed: int, *, batch: int = 3, sequence: bool = False, binary: bool = False,
              input_scale: float = 1.0, weight_scale: float = 1.0, warm_steps: int = 0) -> Case:
    """A :class:`Case` for ``config`` with everything drawn from ``make_rng(seed)``.

    ``warm_steps > 0`` gives a non-zero optimiser state at that step count (so the
    bias correction and momentum are exercised beyond the first step).
    """
    rng = make_rng(seed)
    params = init_params(config, rng)
    params = {k: (v * weight_scale if k.endswith(".weight") else v) for k, v in params.items()}
    for k in params:
        if k.endswith(".gain") or k.endswith(".bias"):
            params[k] = params[k] + rng.normal(0, 0.1, params[k].shape)
    opt = init_opt_state(config, params)
    if warm_steps:
        opt["step"] = warm_steps
        for key in ("m", "buf"):
            if key in opt:
                opt[key] = {k: rng.normal(0, 0.01, v.shape) for k, v in opt[key].items()}
        if "v" in opt:
            opt["v"] = {k: rng.uniform(0, 1e-4, v.shape) for k, v in opt["v"].items()}
    shape = (batch, config.train.T, *config.network.input_shape) if sequence else (batch, *config.network.input_shape)
    x = (rng.random(shape) < 0.3).astype(np.float64) if binary else rng.random(shape)
    x = x * input_scale
    y = rng.integers(0, config.network.n_classes, size=batch)
    masks = draw_dropout_masks(config, batch, rng)
    return Case(config, params, opt, x, y, masks, None)


@st.composite
def cases(draw: st.DrawFn, dtype: str = "float64", *, autodiff: bool = False, signal: str | None = None) -> Case:
    """A :class:`Case` on a drawn config: batch 1–4, direct or sequence input, binary
    or continuous values, input/weight scales from "silent" to "saturated"; ``signal`` as
    in :func:`configs`."""
    config = draw(configs(dtype, autodiff=autodiff, signal=signal))
    return make_case(
        config, draw(st.integers(0, 2**32 - 1)), batch=draw(st.integers(1, 4)), sequence=draw(st.booleans()),
        binary=draw(st.booleans()), input_scale=draw(st.sampled_from([0.2, 1.0, 2.0, 4.0])),
        weight_scale=draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
        warm_steps=draw(st.sampled_from([0, 0, 3])),
    )


def autodiff_cases(dtype: str = "float64", signal: str = "lsg") -> st.SearchStrategy[Case]:
    """Cases of the exact-gradient special case (α_post = 0, λ_pre = γ, soft reset), for the
    local loss (``signal="lsg"``) or the readout loss (``"readout-backprop"``)."""
    return cases(dtype, autodiff=True, signal=signal)


def case_features(case: Case, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a case exercises (for the strategies' meta-tests); with a reference
    ``record``, also which blocks spiked."""
    c = case.config
    f: dict[str, Any] = {
        "conv": any(b.kind == "conv" for b in c.network.blocks),
        "linear": any(b.kind == "linear" for b in c.network.blocks),
        "max_pool": any(b.pool == "max" for b in c.network.blocks),
        "avg_pool": any(b.pool == "avg" for b in c.network.blocks),
        "global_avg": any(b.pool == "global_avg" for b in c.network.blocks),
        "dropout": any(b.dropout > 0 for b in c.network.blocks),
        "weight_std": any(b.weight_std for b in c.network.blocks),
        "bias": any(b.bias for b in c.network.blocks),
        "fast_sigmoid": any(c.psi_name(i) == "fast_sigmoid" for i in range(len(c.network.blocks))),
        "triangle": any(c.psi_name(i) == "triangle" for i in range(len(c.network.blocks))),
        "hard_reset": c.lif.reset == "hard",
        "soft_reset": c.lif.reset == "soft",
        "paper": c.profile == "paper",
        "reference_code": c.profile == "reference-code",
        "sequence": case.x.ndim == len(c.network.input_shape) + 2,
        "direct": case.x.ndim == len(c.network.input_shape) + 1,
        "partial_window": c.train.n_learn < c.train.T,
        "alpha_post_zero": c.traces.alpha_post == 0,
        "alpha_post_nonzero": c.traces.alpha_post != 0,
        "sgd": c.optimizer.name == "sgd",
        "warm_optimizer": case.opt_state["step"] > 0,
        "multi_block": len(c.network.blocks) > 1,
        "signal_lsg": c.learning_signal == "lsg",
        "signal_readout_backprop": c.learning_signal == "readout-backprop",
        "signal_released": c.learning_signal == "released",
    }
    if record is not None:
        spikes = [float(np.asarray(o).sum()) for o in record["o"]]
        f["spikes_everywhere"] = all(s > 0 for s in spikes)
        f["silent_block"] = any(s == 0 for s in spikes)
        f["some_spikes"] = any(s > 0 for s in spikes)
    return f
